"""@retry, @catch and @timeout against failures an executor reports, scripted by `FakeExecutor`.

No real worker processes die and no real deadline passes: the fake executor ends the scripted
attempts with the errors the real executors report, so these tests pin down what the scheduler
and its failure policy make of them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aioflow import FlowFailed, FlowSpec, catch, current, retry, step, timeout
from aioflow.events import Event, TaskFailed, TaskFinished, TaskRetrying
from aioflow.exceptions import AioflowException
from aioflow.runtime.executors import InlineExecutor, registry
from aioflow.testing import run_in_temp_store
from tests.runtime.fakes import Dies, Raises, Script, SetupFails, TimesOut, scripted


class RetriedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @retry(times=2)
    @timeout(seconds=5)
    @step
    def work(self):
        self.attempt = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass


class CaughtFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @catch(var="err")
    @retry(times=1)
    @timeout(seconds=5)
    @step
    def work(self):
        self.reached = True
        self.next(self.end)

    @step
    def end(self):
        pass


class PlainFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def failures(events: list[Event]) -> list[tuple[str, int, str, bool, bool]]:
    """(step, attempt, exception type, retrying, caught) of every TaskFailed event."""
    return [
        (e.step_name, e.attempt, e.exception_type, e.retrying, e.caught)
        for e in events
        if isinstance(e, TaskFailed)
    ]


async def test_a_dead_worker_is_retried_and_the_next_attempt_succeeds(aioflow_root: Path) -> None:
    events: list[Event] = []
    with scripted({("work", 0): Dies()}) as fake:
        run = await run_in_temp_store(RetriedFlow, aioflow_root, listeners=[events.append])
    assert run.successful
    assert fake.attempts == [("start", 0), ("work", 0), ("work", 1), ("end", 0)]
    assert run["work"].task.data.attempt == 1
    assert failures(events) == [("work", 0, "WorkerDied", True, False)]
    retrying = [e for e in events if isinstance(e, TaskRetrying)]
    assert [(e.step_name, e.attempt) for e in retrying] == [("work", 1)]
    died = next(e for e in events if isinstance(e, TaskFailed))
    assert "of step *work* was killed by SIGKILL" in died.message


async def test_a_task_whose_retries_run_out_fails_the_run_with_its_last_error(
    aioflow_root: Path,
) -> None:
    events: list[Event] = []
    script: Script = {("work", 0): Dies(), ("work", 1): TimesOut(), ("work", 2): Dies(exitcode=3)}
    with scripted(script) as fake, pytest.raises(FlowFailed) as info:
        await run_in_temp_store(RetriedFlow, aioflow_root, listeners=[events.append])
    assert fake.attempts == [("start", 0), ("work", 0), ("work", 1), ("work", 2)]
    assert info.value.pathspec is not None and info.value.pathspec.endswith("/work/2")
    assert failures(events) == [
        ("work", 0, "WorkerDied", True, False),
        ("work", 1, "TimeoutException", True, False),
        ("work", 2, "WorkerDied", False, False),
    ]
    assert info.value.run is not None
    error = info.value.run["work"].task.exception
    assert error is not None and error.type == "aioflow.exceptions.WorkerDied"
    assert "exited with status 3" in error.exception


async def test_a_timeout_after_the_last_retry_is_caught(aioflow_root: Path) -> None:
    events: list[Event] = []
    with scripted({("work", 0): TimesOut(), ("work", 1): TimesOut()}) as fake:
        run = await run_in_temp_store(CaughtFlow, aioflow_root, listeners=[events.append])
    assert run.successful
    assert fake.attempts == [("start", 0), ("work", 0), ("work", 1), ("end", 0)]
    assert failures(events) == [
        ("work", 0, "TimeoutException", True, False),
        ("work", 1, "TimeoutException", False, True),
    ]
    work = run["work"].task
    assert work.data.err.type == "aioflow.exceptions.TimeoutException"
    assert "timed out after 0 hours, 0 minutes, 5 seconds" in work.data.err.exception
    assert "reached" not in work  # the body never ran
    assert run["end"].task.successful


async def test_an_error_caught_on_the_last_attempt_stores_it_in_the_catch_variable(
    aioflow_root: Path,
) -> None:
    script = {("work", 0): Raises(ValueError("first")), ("work", 1): Raises(KeyError("last"))}
    with scripted(script):
        run = await run_in_temp_store(CaughtFlow, aioflow_root)
    err = run["work"].task.data.err
    assert err.type == "builtins.KeyError" and "last" in err.exception


async def test_a_worker_that_cannot_load_the_flow_is_neither_retried_nor_caught(
    aioflow_root: Path,
) -> None:
    events: list[Event] = []
    with scripted({("work", 0): SetupFails()}) as fake, pytest.raises(FlowFailed):
        await run_in_temp_store(CaughtFlow, aioflow_root, listeners=[events.append])
    assert fake.attempts == [("start", 0), ("work", 0)]
    assert failures(events) == [("work", 0, "WorkerSetupError", False, False)]


async def test_a_failure_without_retry_or_catch_fails_the_run_at_once(aioflow_root: Path) -> None:
    boom = Raises(RuntimeError("boom"))
    with scripted({("work", 0): boom}) as fake, pytest.raises(FlowFailed) as info:
        await run_in_temp_store(PlainFlow, aioflow_root)
    assert fake.attempts == [("start", 0), ("work", 0)]
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.run is not None and "end" not in info.value.run


# -- the inline executor and the registry -----------------------------------------------------


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(5))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input * self.input
        self.thread = threading.get_ident()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(i.value for i in inputs)
        self.threads = {i.thread for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_the_inline_executor_runs_sync_bodies_on_the_loop_thread(
    aioflow_root: Path,
) -> None:
    with registry.overriding(thread=InlineExecutor):
        run = await run_in_temp_store(ForeachFlow, aioflow_root, max_workers=4)
    join = run["join"].task.data
    assert join.values == [0, 1, 4, 9, 16]
    assert join.threads == {threading.get_ident()}


async def test_overriding_an_executor_is_undone_when_the_block_ends() -> None:
    real = registry.factory("thread")
    with registry.overriding(thread=InlineExecutor):
        assert registry.factory("thread") is InlineExecutor
        with registry.overriding(process=InlineExecutor):
            assert registry.factory("thread") is InlineExecutor  # outer override still holds
            assert registry.factory("process") is InlineExecutor
        assert registry.factory("process") is not InlineExecutor
    assert registry.factory("thread") is real


def test_every_executor_a_step_can_name_is_registered() -> None:
    from aioflow.decorators import EXECUTORS

    assert set(registry.names()) >= {"loop", *EXECUTORS}


def test_an_unknown_executor_name_is_a_clear_error() -> None:
    with pytest.raises(AioflowException, match=r"No executor named 'ray'; the registered"):
        registry.factory("ray")


async def test_a_retried_task_finishes_once(aioflow_root: Path) -> None:
    # The failed attempt ends with TaskFailed(retrying=True); TaskFinished is for the task.
    events: list[Event] = []
    with scripted({("work", 0): Dies()}):
        await run_in_temp_store(RetriedFlow, aioflow_root, listeners=[events.append])
    finished = [e.step_name for e in events if isinstance(e, TaskFinished)]
    assert finished == ["start", "work", "end"]
