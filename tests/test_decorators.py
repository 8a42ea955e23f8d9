"""Step decorators: @retry, @catch, @timeout, @resources, @environment, `--with`, and misuse.

Flows that need several behaviours at once run them in parallel branches of one run. Thread
steps synchronise with the test through threading Events, worker processes through marker files,
always with a deadline; nothing waits for a fixed time to let something else happen.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aioflow import (
    FlowFailed,
    FlowSpec,
    Parameter,
    Task,
    catch,
    current,
    environment,
    resources,
    retry,
    run_flow,
    step,
    timeout,
)
from aioflow.client import Run
from aioflow.decorators import MAX_RETRIES, parse_with
from aioflow.events import Event, TaskFailed, TaskRetrying
from aioflow.exceptions import FlowDefinitionError, ParameterError
from aioflow.runtime.resources import ResourcePool
from aioflow.runtime.task import TaskSpec, timeout_error
from aioflow.store import Store
from aioflow.store.serde import unpack
from aioflow.testing import run_in_temp_store
from tests.helpers import aioflow_command
from tests.helpers import wait_for_marker as wait_for

pytestmark = pytest.mark.timeout(90)

DEADLINE = 30.0
TIMEOUT_TYPE = "aioflow.exceptions.TimeoutException"

#: What the flows of one test share with the test (thread steps run in this process).
STATE = types.SimpleNamespace()


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    STATE.__dict__.clear()
    yield
    for value in list(STATE.__dict__.values()):  # let any parked worker thread go
        if isinstance(value, threading.Event):
            value.set()


def mark(folder: str, name: str, text: str = "") -> None:
    tmp = Path(folder) / f".{name}.tmp"
    tmp.write_text(text)
    tmp.rename(Path(folder) / name)


async def wait_event(event: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(event.wait, DEADLINE), "event never set"


def rows_of(root: Path, run: Run, step_name: str) -> list[tuple]:
    return Store(root).db.task_attempts(int(run.id), step_name)


def row_value(root: Path, row: tuple, name: str) -> Any:
    return Store(root).load(unpack(row[9])[name])


def row_stdout(root: Path, row: tuple) -> str:
    return "".join(line + "\n" for _, line in Store(root).load(row[10])) if row[10] else ""


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


# -- @retry --------------------------------------------------------------------------------------


class RetryFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky, self.flaky_async)

    @retry(times=3, minutes_between_retries=0)
    @step
    def flaky(self):
        self.seen = current.retry_count
        print(f"attempt {current.retry_count}")
        if current.retry_count < 2:
            raise ValueError(f"fail {current.retry_count}")
        self.next(self.join)

    @retry(times=1)
    @step
    async def flaky_async(self):
        self.seen_async = current.retry_count
        if current.retry_count == 0:
            raise RuntimeError("the first async attempt fails")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = inputs.flaky.seen
        self.seen_async = inputs.flaky_async.seen_async
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_retry_runs_new_attempts_of_the_same_task_and_keeps_each(aioflow_root: Path) -> None:
    events: list[Event] = []
    run = await run_in_temp_store(RetryFlow, aioflow_root, listeners=[events.append])
    assert run.successful
    task = run["flaky"].task
    rows = rows_of(aioflow_root, run, "flaky")
    assert [(r[1], r[2], r[4]) for r in rows] == [
        (int(task.id), 0, "failed"),
        (int(task.id), 1, "failed"),
        (int(task.id), 2, "succeeded"),
    ]
    # Every attempt's artifacts, logs and error are stored with it.
    assert [row_value(aioflow_root, r, "seen") for r in rows] == [0, 1, 2]
    assert [row_stdout(aioflow_root, r) for r in rows] == [f"attempt {i}\n" for i in range(3)]
    assert [unpack(r[12])["message"] for r in rows[:2]] == ["fail 0", "fail 1"]
    assert rows[2][12] is None
    # Readers see the latest attempt.
    assert task.successful and task.exception is None
    assert task.data.seen == 2
    assert task.stdout == "attempt 2\n"
    assert run["join"].task.data.seen_async == 1
    retrying = sorted((e.step_name, e.attempt) for e in events if isinstance(e, TaskRetrying))
    assert retrying == [("flaky", 1), ("flaky", 2), ("flaky_async", 1)]


class AlwaysFailsFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        self.tries = current.retry_count
        raise ValueError(f"attempt {current.retry_count} failed")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_retries_exhausted_fail_the_run_with_the_last_attempt(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(AlwaysFailsFlow, aioflow_root)
    assert str(info.value.__cause__) == "attempt 2 failed"
    run = info.value.run
    assert [r[4] for r in rows_of(aioflow_root, run, "start")] == ["failed"] * 3
    task = run["start"].task
    assert task.data.tries == 2
    assert task.exception.exception == "attempt 2 failed"


class SlowRetryFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        self.seen = current.retry_count
        if current.retry_count == 0:
            raise ValueError("the first attempt fails")
        STATE.run_id = current.run_id
        STATE.in_retry.set()
        assert STATE.release.wait(DEADLINE)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_readers_see_the_latest_finished_attempt_while_a_retry_runs(
    aioflow_root: Path,
) -> None:
    STATE.in_retry = threading.Event()
    STATE.release = threading.Event()
    result: dict[str, Run] = {}

    async def go() -> None:
        result["run"] = await run_in_temp_store(SlowRetryFlow, aioflow_root)

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await wait_event(STATE.in_retry)
        store = Store(aioflow_root)
        deadline = time.monotonic() + DEADLINE
        while not any(r[2] == 1 for r in store.db.task_attempts(int(STATE.run_id), "start")):
            assert time.monotonic() < deadline, "the retry's row was never committed"
            await anyio.sleep(0.005)  # polling interval of the database
        pathspec = f"SlowRetryFlow/{STATE.run_id}/start/1"
        for task in (Task(pathspec, _store=store), Run(pathspec.rsplit("/", 2)[0])["start"].task):
            assert task.data.seen == 0  # attempt 1 is running: attempt 0 is what readers see
            assert task.exception.exception == "the first attempt fails"
            assert not task.successful
        STATE.release.set()
    task = result["run"]["start"].task
    assert task.data.seen == 1 and task.successful


def test_at_most_four_retries() -> None:
    assert MAX_RETRIES == 4
    assert retry(times=4).attributes["times"] == 4
    limit = r"^The maximum number of retries is @retry\(times=4\)\.$"
    with pytest.raises(FlowDefinitionError, match=limit):
        retry(times=5)
    with pytest.raises(ParameterError, match=r"The maximum number of retries is @retry\(times=4\)"):
        parse_with(["retry:times=5"])


# -- @catch --------------------------------------------------------------------------------------


class CatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.bad, self.good, self.quiet, self.proc_bad)

    @catch(var="err")
    @step
    def bad(self):
        self.kept = "set before the failure"
        raise ValueError("bad value")
        self.next(self.join)

    @catch(var="err")
    @step
    async def good(self):
        self.fine = True
        self.next(self.join)

    @retry(times=2, minutes_between_retries=0)
    @catch(var="err", print_exception=False)
    @step
    def quiet(self):
        self.tries = current.retry_count
        raise KeyError("missing")
        self.next(self.join)

    @catch(var="err")
    @step(executor="process")
    def proc_bad(self):
        self.kept = "set in a worker"
        self.ratio = 1 / 0
        self.next(self.join)

    @step
    def join(self, inputs):
        self.caught = sorted(i.err.type for i in inputs if i.err is not None)
        self.next(self.end)

    @catch
    @step
    def end(self):
        self.done = True


async def test_catch_stores_the_exception_and_the_flow_continues(aioflow_root: Path) -> None:
    events: list[Event] = []
    run = await run_in_temp_store(CatchFlow, aioflow_root, listeners=[events.append])
    assert run.successful
    assert run["end"].task.data.done is True

    bad = run["bad"].task
    err = bad.data.err
    assert err.type == "builtins.ValueError"
    assert err.exception == "bad value" and err.message == "bad value"
    assert 'raise ValueError("bad value")' in err.stacktrace
    assert "ValueError: bad value" in err.stacktrace
    assert bad.data.kept == "set before the failure"
    assert bad.successful is False
    assert bad.exception is None  # as in Metaflow: the exception is the catch variable

    good = run["good"].task
    assert good.successful and good.data.err is None and good.data.fine is True

    quiet = run["quiet"].task
    assert quiet.data.err.type == "builtins.KeyError"
    assert quiet.data.tries == 2  # retries come first, then @catch
    assert [r[4] for r in rows_of(aioflow_root, run, "quiet")] == ["failed", "failed", "caught"]

    proc = run["proc_bad"].task
    assert proc.data.err.type == "builtins.ZeroDivisionError"
    assert proc.data.err.exception == "division by zero"
    assert proc.data.kept == "set in a worker"
    assert "ratio" not in proc

    assert run["join"].task.data.caught == [
        "builtins.KeyError",
        "builtins.ValueError",
        "builtins.ZeroDivisionError",
    ]
    caught = {e.step_name: e for e in events if isinstance(e, TaskFailed) and e.caught}
    assert set(caught) == {"bad", "quiet", "proc_bad"}
    assert caught["quiet"].traceback == ""  # print_exception=False
    assert "bad value" in caught["bad"].traceback


CATCH_FOREACH = """
from aioflow import FlowSpec, catch, step


class CatchForeachFlow(FlowSpec):
    @catch(var="err")
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

CATCH_SWITCH = """
from aioflow import FlowSpec, catch, step


class CatchSwitchFlow(FlowSpec):
    @catch
    @step
    def start(self):
        self.mode = "a"
        self.next({"a": self.a, "b": self.b}, condition="mode")

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_catch_is_refused_on_foreach_and_switch_steps(
    aioflow_root: Path, make_flow: Callable[[str], type[FlowSpec]]
) -> None:
    with pytest.raises(FlowDefinitionError) as info:
        await run_in_temp_store(make_flow(CATCH_FOREACH), aioflow_root)
    assert str(info.value) == (
        "@catch is defined for the step *start* but @catch is not supported in foreach split steps."
    )
    with pytest.raises(FlowDefinitionError) as info:
        await run_in_temp_store(make_flow(CATCH_SWITCH), aioflow_root)
    assert str(info.value) == (
        "@catch is defined for the step *start* but @catch is not supported in conditional "
        "switch steps."
    )
    assert not (aioflow_root / "metadata.db").exists() or not Store(aioflow_root).db.flows()


# -- @timeout ------------------------------------------------------------------------------------


class TimeoutFlow(FlowSpec):
    marks = Parameter("marks", default="")

    @step(executor="process")  # starts a worker, so t_proc's deadline is not spent starting one
    def start(self):
        self.next(self.t_async, self.t_thread, self.t_proc, self.t_retry, self.t_own)

    @catch(var="err")
    @timeout(seconds=0.3)
    @step
    async def t_async(self):
        self.before = "kept"
        try:
            await anyio.Event().wait()  # never set
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.next(self.join)

    @catch(var="err")
    @timeout(seconds=0.3)
    @step
    def t_thread(self):
        self.before = "kept: set before the timeout"
        print("printed before the timeout")
        STATE.thread_started.set()
        STATE.release_thread.wait(DEADLINE)
        self.after = "lost: set after the timeout"
        STATE.thread_done.set()
        self.next(self.join)

    @catch(var="err")
    @timeout(seconds=1)
    @step(executor="process")
    def t_proc(self):
        mark(self.marks, "proc", str(os.getpid()))
        wait_for(self.marks, "never", timeout=60)
        self.next(self.join)

    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=0.3)
    @step
    async def t_retry(self):
        self.attempt = current.retry_count
        if current.retry_count == 0:
            await anyio.Event().wait()
        self.next(self.join)

    @catch(var="err")
    @timeout(seconds=30)
    @step
    async def t_own(self):
        raise TimeoutError("the step's own timeout")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_timeouts_on_every_executor(aioflow_root: Path, marks: Path) -> None:
    STATE.thread_started = threading.Event()
    STATE.release_thread = threading.Event()
    STATE.thread_done = threading.Event()
    started = time.monotonic()
    run = await run_in_temp_store(TimeoutFlow, aioflow_root, marks=str(marks))
    assert time.monotonic() - started < DEADLINE / 2  # nothing waited for its blocked body
    assert run.successful

    # async: cancelled at the deadline; what it set before (even while cancelled) is kept.
    t_async = run["t_async"].task
    assert not t_async.successful
    assert t_async.data.err.type == TIMEOUT_TYPE
    assert t_async.data.err.exception.startswith(
        "Step t_async timed out after 0 hours, 0 minutes, 0.3 seconds"
    )
    assert t_async.data.before == "kept" and t_async.data.cancelled is True

    # thread: abandoned (it is still blocked now), reported, and the run went on without it.
    t_thread = run["t_thread"].task
    message = t_thread.data.err.exception
    assert message.startswith("Step t_thread timed out after 0 hours, 0 minutes, 0.3 seconds")
    assert "abandoned" in message and 'executor="process"' in message
    assert STATE.thread_started.is_set() and not STATE.thread_done.is_set()
    # As Metaflow: what it set and printed before the timeout is kept.
    assert t_thread.data.before == "kept: set before the timeout"
    assert t_thread.stdout == "printed before the timeout\n"
    STATE.release_thread.set()
    await wait_event(STATE.thread_done)
    t_thread = Run(run.pathspec, _store=Store(aioflow_root))["t_thread"].task
    assert not t_thread.successful and "after" not in t_thread  # its late result is ignored
    assert t_thread.data.before == "kept: set before the timeout"

    # process: the worker running the body was terminated.
    t_proc = run["t_proc"].task
    assert t_proc.data.err.exception.startswith(
        "Step t_proc timed out after 0 hours, 0 minutes, 1 seconds"
    )
    assert not is_alive(int((marks / "proc").read_text()))

    # retry + timeout: the timed-out attempt is retried like any failure.
    t_retry = run["t_retry"].task
    assert t_retry.successful and t_retry.data.attempt == 1
    rows = rows_of(aioflow_root, run, "t_retry")
    assert [r[4] for r in rows] == ["failed", "succeeded"]
    assert unpack(rows[0][12])["type"] == TIMEOUT_TYPE

    # A TimeoutError the step raises itself is not a @timeout.
    own = run["t_own"].task.data.err
    assert own.type == "builtins.TimeoutError"
    assert own.exception == "the step's own timeout"


def test_timeout_durations_add_up_and_are_worded_like_metaflow() -> None:
    assert timeout(hours=1, minutes=2, seconds=5.5).seconds == 3725.5
    spec = TaskSpec(7, "train", (), (), {}, attempt=1)
    assert str(timeout_error(spec, 3725.5)) == (
        "Step train timed out after 1 hours, 2 minutes, 5.5 seconds (@timeout; task 7, attempt 1)."
    )
    assert "after 0 hours, 1 minutes, 30 seconds" in str(timeout_error(spec, 90))


# -- @resources ----------------------------------------------------------------------------------


class Meter:
    """Bodies inside at once (any thread); `overlapped` is set when two are inside together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.overlapped = threading.Event()

    def __enter__(self) -> Meter:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            if self.inside >= 2:
                self.overlapped.set()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.inside -= 1


async def test_resource_pool_runs_tasks_needing_every_cpu_one_at_a_time() -> None:
    pool = ResourcePool(cpu=2, memory=1000)
    entered: list[str] = []
    holding = anyio.Event()
    release = anyio.Event()
    cpu_inside = 0
    cpu_peak = 0

    async def task(name: str, **amounts: float) -> None:
        nonlocal cpu_inside, cpu_peak
        async with pool.reserve(**amounts):
            cpu_inside += "cpu" in amounts
            cpu_peak = max(cpu_peak, cpu_inside)
            entered.append(name)
            if name == "a":
                holding.set()
                await release.wait()
            await anyio.lowlevel.checkpoint()  # while holding: the others may try to enter
            cpu_inside -= "cpu" in amounts

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(task, "a", cpu=2))
        await holding.wait()
        tg.start_soon(functools.partial(task, "b", cpu=2))
        tg.start_soon(functools.partial(task, "c", cpu=1))
        tg.start_soon(functools.partial(task, "d", memory=400))  # memory is free: runs now
        await anyio.wait_all_tasks_blocked()
        assert entered == ["a", "d"]
        assert pool.free["cpu"] == 0
        release.set()
    assert sorted(entered) == ["a", "b", "c", "d"]
    assert cpu_peak == 1  # a, b (2 CPUs each) and c (1 CPU) never held CPUs together
    assert pool.free == pool.capacity


async def test_resource_pool_shares_what_fits_and_clamps_what_does_not() -> None:
    pool = ResourcePool(cpu=2, memory=1000, gpu=0)
    async with pool.reserve(cpu=1), pool.reserve(cpu=1, gpu=1):
        assert pool.free["cpu"] == 0  # two one-CPU tasks run together; no GPU: not refused
    async with pool.reserve(cpu=8, memory=10**6):  # larger than the machine: runs alone
        assert pool.free["cpu"] == 0 and pool.free["memory"] == 0
    assert pool.free == pool.capacity


async def test_resource_pool_gives_back_what_a_cancelled_task_held() -> None:
    pool = ResourcePool(cpu=2)
    holding = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def hold() -> None:
            async with pool.reserve(cpu=2):
                holding.set()
                await anyio.Event().wait()

        async def wait_then_cancelled() -> None:
            async with pool.reserve(cpu=1):
                raise AssertionError("must not get the CPU")

        tg.start_soon(hold)
        await holding.wait()
        tg.start_soon(wait_then_cancelled)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert pool.free == pool.capacity


class ResourcesFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.heavy, self.light)

    @step
    def heavy(self):
        self.next(self.heavy_work, foreach="items")

    @resources(cpu=2)
    @step
    def heavy_work(self):
        with STATE.heavy:
            # Any other task of this step entering now would set the event at once.
            self.overlapped = STATE.heavy.overlapped.wait(0.25)
        self.next(self.heavy_join)

    @step
    def heavy_join(self, inputs):
        self.overlaps = [i.overlapped for i in inputs]
        self.next(self.join)

    @step
    def light(self):
        self.next(self.light_work, foreach="items")

    @resources(cpu=1)
    @step
    def light_work(self):
        with STATE.light:
            self.overlapped = STATE.light.overlapped.wait(DEADLINE)
        self.next(self.light_join)

    @step
    def light_join(self, inputs):
        self.overlaps = [i.overlapped for i in inputs]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.heavy = inputs.heavy_join.overlaps
        self.light = inputs.light_join.overlaps
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_resources_limit_how_many_tasks_run_at_once(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # the run's pool: a 2-core machine
    STATE.heavy = Meter()
    STATE.light = Meter()
    run = await run_in_temp_store(ResourcesFlow, aioflow_root)
    data = run["join"].task.data
    assert STATE.heavy.peak == 1 and data.heavy == [False, False, False]
    # The control: one-CPU tasks of the same shape do run two at a time.
    assert STATE.light.peak == 2 and data.light == [True, True, True]


# -- @environment --------------------------------------------------------------------------------


class EnvFlow(FlowSpec):
    marks = Parameter("marks", default="")

    @step
    def start(self):
        self.parent_pid = os.getpid()
        self.next(self.with_env, self.watch)

    @environment(vars={"AIOFLOW_DECO_TEST": "from the step", "AIOFLOW_DECO_NUM": 3})
    @step
    def with_env(self):
        self.pid = os.getpid()
        self.value = os.environ.get("AIOFLOW_DECO_TEST")
        self.num = os.environ.get("AIOFLOW_DECO_NUM")
        mark(self.marks, "env-running")
        wait_for(self.marks, "parent-checked")
        self.next(self.after)

    @step(executor="process")
    def after(self):
        self.pid = os.getpid()
        self.value = os.environ.get("AIOFLOW_DECO_TEST")
        self.next(self.join)

    @step
    def watch(self):
        wait_for(self.marks, "env-running")
        self.parent_value = os.environ.get("AIOFLOW_DECO_TEST")
        mark(self.marks, "parent-checked")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.async_env)

    @environment(vars={"AIOFLOW_DECO_TEST": "async"})
    @step
    async def async_env(self):
        self.pid = os.getpid()
        self.value = os.environ.get("AIOFLOW_DECO_TEST")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_environment_sets_variables_in_a_worker_process_only(
    aioflow_root: Path, marks: Path
) -> None:
    assert "AIOFLOW_DECO_TEST" not in os.environ
    run = await run_in_temp_store(EnvFlow, aioflow_root, marks=str(marks))
    parent = run["start"].task.data.parent_pid
    with_env = run["with_env"].task.data
    assert with_env.pid != parent  # a sync step with @environment runs in a process
    assert with_env.value == "from the step" and with_env.num == "3"
    assert run["watch"].task.data.parent_value is None  # unset in the parent meanwhile
    after = run["after"].task.data
    assert after.pid == with_env.pid and after.value is None  # the worker was restored
    async_env = run["async_env"].task.data
    assert async_env.pid != parent and async_env.value == "async"
    assert "AIOFLOW_DECO_TEST" not in os.environ


# -- --with --------------------------------------------------------------------------------------


class WithFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.plain)

    @step
    def plain(self):
        self.tries = current.retry_count
        raise ValueError("plain fails")
        self.next(self.own_catch)

    @catch(var="mine")
    @step
    def own_catch(self):
        self.tries = current.retry_count
        raise ValueError("own_catch fails")
        self.next(self.own_retry)

    @retry(times=0)
    @step
    async def own_retry(self):
        self.tries = current.retry_count
        raise ValueError("own_retry fails")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_with_attaches_decorators_to_steps_that_lack_them(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed):  # without --with, `plain` fails the run
        await run_in_temp_store(WithFlow, aioflow_root)

    specs = ["retry:times=2,minutes_between_retries=0", "catch:var=err"]
    run = await run_in_temp_store(WithFlow, aioflow_root, with_decorators=specs)
    assert run.successful
    plain = run["plain"].task
    assert plain.data.tries == 2 and plain.data.err.exception == "plain fails"
    own_catch = run["own_catch"].task
    assert own_catch.data.tries == 2  # --with retry attached: it declares no @retry
    assert own_catch.data.mine.exception == "own_catch fails"  # its own @catch kept
    # `err` is only what it inherited from `plain`: --with catch was not attached to it.
    assert own_catch.manifest["err"] == plain.manifest["err"]
    own_retry = run["own_retry"].task
    assert own_retry.data.tries == 0  # its own @retry(times=0) kept
    assert own_retry.data.err.exception == "own_retry fails"
    assert [len(rows_of(aioflow_root, run, s)) for s in ("plain", "own_catch", "own_retry")] == [
        3,
        3,
        1,
    ]
    assert run["start"].task.data.err is None  # a step that succeeded stores None


async def test_with_refuses_unknown_decorators_and_attributes(aioflow_root: Path) -> None:
    with pytest.raises(ParameterError) as info:
        await run_flow(WithFlow, root=aioflow_root, quiet=True, with_decorators=["retyr"])
    assert str(info.value) == (
        "Invalid value for '--with': unknown decorator 'retyr'. Valid decorators: batch, card, "
        "catch, conda, environment, kubernetes, pypi, resources, retry, secrets, timeout."
    )
    with pytest.raises(ParameterError) as info:
        await run_flow(WithFlow, root=aioflow_root, quiet=True, with_decorators=["retry:tries=2"])
    assert "@retry takes times, minutes_between_retries (as attr=value)" in str(info.value)
    with pytest.raises(ParameterError, match="@catch takes var, print_exception"):
        parse_with(["catch:var"])
    with pytest.raises(ParameterError, match="times must be a number"):
        parse_with(["retry:times=lots"])
    assert not (aioflow_root / "metadata.db").exists() or not Store(aioflow_root).db.flows()


WITH_FLOW_FILE = """
from aioflow import FlowSpec, current, step


class CliWithFlow(FlowSpec):
    @step
    def start(self):
        self.tries = current.retry_count
        if current.retry_count == 0:
            raise ValueError("first attempt fails")
        self.next(self.end)

    @step
    def end(self):
        raise RuntimeError("end always fails")
"""


def test_with_on_the_command_line(aioflow_root: Path, write_flow: Callable[..., Path]) -> None:
    path = write_flow(WITH_FLOW_FILE)

    def aioflow(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [*aioflow_command(), "run", str(path), "--quiet", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    proc = aioflow("--with", "retry:times=1,minutes_between_retries=0", "--with", "catch:var=err")
    assert proc.returncode == 0, proc.stderr
    store = Store(aioflow_root)
    run = Run(f"CliWithFlow/{store.db.latest_run_id('CliWithFlow')}", _store=store)
    assert run.successful is False  # `end` was caught: the run went on, its end task did not
    assert run.status == "succeeded"
    assert run["start"].task.data.tries == 1
    assert [r[4] for r in rows_of(aioflow_root, run, "end")] == ["failed", "caught"]
    assert run["end"].task.data.err.exception == "end always fails"

    proc = aioflow("--with", "retyr")
    assert proc.returncode == 2
    assert "unknown decorator 'retyr'. Valid decorators: batch, card, catch, conda, " in (
        proc.stderr
    )
    proc = aioflow("--with", "timeout:secs=3")
    assert proc.returncode == 2
    assert "@timeout takes seconds, minutes, hours (as attr=value)" in proc.stderr


# -- misuse --------------------------------------------------------------------------------------


def test_a_decorator_below_step_is_refused() -> None:
    with pytest.raises(FlowDefinitionError) as info:

        class Below(FlowSpec):
            @step
            @retry
            def start(self):
                self.next(self.end)

    assert str(info.value) == (
        "@retry can be applied only to steps (functions decorated with @step): put @step "
        "closest to the definition of 'start'."
    )


def test_a_decorator_applied_twice_is_refused() -> None:
    with pytest.raises(FlowDefinitionError, match=r"^@catch is applied twice to step \*start\*\.$"):

        class Twice(FlowSpec):
            @catch(var="a")
            @catch(var="b")
            @step
            def start(self):
                self.next(self.end)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: retry(times="x"), "@retry(times='x'): times must be a number."),
        (lambda: retry(times=1.5), "@retry(times=1.5): times must be a whole number."),
        (lambda: retry(times=-1), "@retry(times=-1): times must not be negative."),
        (lambda: retry(tries=2), "@retry does not take tries; it takes times, "),
        (lambda: catch(var="not a name"), "@catch(var='not a name'): var must be an attribute"),
        (lambda: timeout(), "Specify a duration for @timeout."),
        (lambda: timeout(seconds=-5), "@timeout(seconds=-5): seconds must not be negative."),
        (lambda: timeout(minutes="soon"), "@timeout(minutes='soon'): minutes must be a number."),
        (lambda: resources(cpu="lots"), "@resources(cpu='lots'): cpu must be a number."),
        (lambda: environment(vars=["A=1"]), "@environment(vars=...) takes a dict of name"),
    ],
)
def test_bad_attribute_values_are_refused(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(FlowDefinitionError) as info:
        make()
    assert str(info.value).startswith(message)


def test_decorators_take_keyword_arguments_only() -> None:
    with pytest.raises(TypeError, match="@retry takes keyword arguments only"):
        retry(3)
