"""Running flows from code: errors as on the CLI, cancellation, threads, loops, no blocking.

`run_flow` inside a running loop, `run_flow_sync` from threads with and without loops, the
cancelled run stored whole and resumable, no signal handlers, no blocking call on the loop
(blockbuster), and the graph cache that makes a short run cheap.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from blockbuster import blockbuster_ctx

from aioflow import (
    FlowFailed,
    FlowSpec,
    Parameter,
    Run,
    current,
    step,
)
from aioflow.cli import main_for_flow
from aioflow.events import Event, RunFinished
from aioflow.exceptions import LintError, ParameterError
from aioflow.runtime import graphs
from aioflow.store import SMALL, Store
from aioflow.testing import FlowRunner

pytestmark = pytest.mark.timeout(60)


class ScoreFlow(FlowSpec):
    """Scores some values (sync and async steps, a foreach)."""

    scale = Parameter("scale", default=1.0, help="Multiplier")
    label = Parameter("label", required=True, help="A name")

    @step
    def start(self):
        self.values = [1, 2, 3]
        self.next(self.score, foreach="values")

    @step
    async def score(self):
        self.scored = self.input * self.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.scored for i in inputs)
        self.next(self.end)

    @step
    async def end(self):  # on the loop: in the thread that called run_flow_sync
        self.thread = threading.get_ident()
        self.run_id = current.run_id
        print(f"{self.label}: {self.total}")


# -- parameters: the CLI's checks and messages ---------------------------------------------------


# A flow parameter's error names it as it was given: an option on the command line, a keyword
# argument in Python (`python_words`: the CLI's words -> Python's); so does a run option's.
@pytest.mark.parametrize(
    ("kwargs", "argv", "python_words"),
    [
        ({}, [], {"option '--label'.": "keyword argument 'label': the parameter is required."}),
        ({"label": "x", "scale": "big"}, ["--label", "x", "--scale", "big"],
         {"'--scale'": "keyword argument 'scale'"}),
        ({"label": "x", "max_workers": 0}, ["--label", "x", "--max-workers", "0"],
         {"'--max-workers'": "keyword argument 'max_workers'"}),
        ({"label": "x", "max_num_splits": 0}, ["--label", "x", "--max-num-splits", "0"],
         {"'--max-num-splits'": "keyword argument 'max_num_splits'"}),
        ({"label": "x", "tags": [""]}, ["--label", "x", "--tag", ""],
         {"'--tag'": "keyword argument 'tags'"}),
    ],
    ids=["missing", "bad-float", "max-workers", "max-num-splits", "empty-tag"],
)  # fmt: skip
def test_parameter_errors_are_the_cli_errors(
    kwargs: dict[str, Any],
    argv: list[str],
    python_words: dict[str, str],
    flow_runner: FlowRunner,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main_for_flow(ScoreFlow, ["run", *argv])
    assert exit_info.value.code == 2
    cli_error = capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(ParameterError) as info:
        flow_runner.sync(ScoreFlow, **kwargs)
    expected = cli_error.removeprefix("Error: ")
    for cli_words, words in python_words.items():
        expected = expected.replace(cli_words, words)
    assert str(info.value) == expected
    assert not flow_runner.root.exists()


async def test_tags_must_be_a_list(flow_runner: FlowRunner) -> None:
    with pytest.raises(ParameterError, match=r"tags=\['a'\]"):
        await flow_runner(ScoreFlow, label="x", tags="a")


async def test_run_flow_in_a_running_loop_returns_the_run(flow_runner: FlowRunner) -> None:
    run = await flow_runner(ScoreFlow, label="a", scale=2.0, tags=["t1", "t2"], max_workers=2)
    assert run.successful and run.data.total == 12.0
    assert run.user_tags == {"t1", "t2"}
    assert run.data.run_id == run.id
    assert run["end"].task.stdout == "a: 12.0\n"


# -- threads and loops ---------------------------------------------------------------------------


def in_thread(fn: Any) -> Any:
    """Run `fn()` in a new thread; return its result or raise its exception."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append((True, fn()))
        except BaseException as exc:
            out.append((False, exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    ok, value = out[0]
    if not ok:
        raise value
    return value


def test_run_flow_sync_in_threads_with_and_without_an_event_loop(flow_runner: FlowRunner) -> None:
    def no_loop_set() -> tuple[Run, int]:
        asyncio.set_event_loop(None)
        return flow_runner.sync(ScoreFlow, label="a"), threading.get_ident()

    def after_a_closed_loop() -> tuple[Run, int]:
        asyncio.run(asyncio.sleep(0))  # leaves this thread with no loop
        first = flow_runner.sync(ScoreFlow, label="b")
        second = flow_runner.sync(ScoreFlow, label="c")  # and again in the same thread
        assert second.data.label == "c"
        return first, threading.get_ident()

    def with_an_idle_loop_set() -> tuple[Run, int]:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return flow_runner.sync(ScoreFlow, label="d"), threading.get_ident()
        finally:
            loop.close()

    for work in (no_loop_set, after_a_closed_loop, with_an_idle_loop_set):
        run, thread = in_thread(work)
        assert run.successful and run.data.thread == thread


async def test_run_flow_sync_in_a_running_loop_points_to_run_flow(
    flow_runner: FlowRunner,
) -> None:
    with pytest.raises(RuntimeError, match=r"await run_flow"):
        flow_runner.sync(ScoreFlow, label="x")


async def test_no_signal_handler_is_installed(flow_runner: FlowRunner) -> None:
    loop = asyncio.get_running_loop()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    seen: list[dict[Any, Any]] = []

    def listen(event: Event) -> None:
        if not isinstance(event, RunFinished):  # while the run is on
            seen.append({sig: signal.getsignal(sig) for sig in before})
            assert not getattr(loop, "_signal_handlers", None)

    await flow_runner(ScoreFlow, label="x", listeners=[listen])
    assert seen and all(handlers == before for handlers in seen)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    # and from a worker thread, where installing one would raise ValueError
    run = await anyio.to_thread.run_sync(lambda: flow_runner.sync(ScoreFlow, label="y"))
    assert run.successful


# -- cancellation ----------------------------------------------------------------------------------


class Gate:
    reached: threading.Event
    release: threading.Event


GATE = Gate()


class BigThenBlockFlow(FlowSpec):
    @step
    def start(self):
        self.big = b"x" * (2 * SMALL)  # a blob file, not a database row
        self.small = {"a": 1}
        self.next(self.blocked, self.writer)

    @step
    async def blocked(self):
        if current.origin_run_id is None:  # the first run blocks here; its resume does not
            GATE.reached.set()
            await anyio.sleep_forever()
        self.next(self.join)

    @step
    def writer(self):
        if current.origin_run_id is None:
            # Still running when the run is cancelled: a thread cannot be stopped, so this
            # body finishes after the run ended, and what it stores must not matter.
            GATE.release.wait(timeout=10)
        self.other = b"y" * (2 * SMALL)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.size = len(inputs.writer.other) + len(inputs.blocked.big)
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture
def gate() -> Gate:
    GATE.reached = threading.Event()
    GATE.release = threading.Event()
    return GATE


def check_store_is_whole(root: Path) -> None:
    """Every row committed whole and final, every blob complete and matching its key."""
    store = Store(root, create=False)
    try:
        conn = sqlite3.connect(store.db.path)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        keys = [row[0] for row in conn.execute("SELECT key FROM blobs")]
        statuses = {row[0] for row in conn.execute("SELECT status FROM tasks")}
        runs = {row[0] for row in conn.execute("SELECT status FROM runs")}
        conn.close()
        assert "running" not in statuses and "running" not in runs
        for key in keys:
            store.read_blob(key)  # verifies the content against the key
        files = [p for p in (root / "blobs").rglob("*") if p.is_file()]
        assert files, "the test meant to write blob files"
        for path in files:
            assert not path.name.endswith(".tmp"), path
            store.read_blob(path.parent.name + path.name)  # the key: folder + file name
    finally:
        store.close()


@pytest.mark.parametrize("how", ["asyncio.wait_for", "task.cancel", "cancel scope"])
async def test_cancelling_the_caller_stores_a_whole_cancelled_run_that_resumes(
    how: str, flow_runner: FlowRunner, gate: Gate
) -> None:
    events: list[Event] = []
    run_flow_call = flow_runner(BigThenBlockFlow, listeners=[events.append])
    if how == "asyncio.wait_for":
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(run_flow_call, timeout=1.0)
    elif how == "task.cancel":  # e.g. a server cancelling the request's task on disconnect
        task = asyncio.ensure_future(run_flow_call)
        await anyio.to_thread.run_sync(gate.reached.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: run_flow_call)
                await anyio.to_thread.run_sync(gate.reached.wait)
                scope.cancel()
        assert scope.cancelled_caught

    last = events[-1]
    assert isinstance(last, RunFinished) and last.status == "cancelled"
    run = Run(f"BigThenBlockFlow/{last.run_id}")
    assert run.status == "cancelled" and not run.successful and "end" not in run
    check_store_is_whole(flow_runner.root)
    gate.release.set()  # the abandoned writer thread may now finish: nobody uses its result

    resumed = await flow_runner.resume(BigThenBlockFlow, origin_run_id=run.id)
    assert resumed.successful and resumed.data.size == 4 * SMALL
    if "start" in run:
        assert resumed["start"].task.origin_pathspec == run["start"].task.pathspec


async def test_a_cancelled_run_can_be_resumed_from_where_it_stopped(
    flow_runner: FlowRunner, gate: Gate
) -> None:
    class StopFlow(FlowSpec):
        block = Parameter("block", default=True)

        @step
        def start(self):
            self.n = 41
            self.next(self.wait)

        @step
        async def wait(self):
            if self.block and current.origin_run_id is None:
                GATE.reached.set()
                await anyio.sleep_forever()
            self.n += 1
            self.next(self.end)

        @step
        def end(self):
            pass

    with anyio.move_on_after(30) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: flow_runner(StopFlow))
            await anyio.to_thread.run_sync(gate.reached.wait)
            scope.cancel()
    (cancelled,) = list(Run("StopFlow/1").parent)
    assert cancelled.status == "cancelled"
    resumed = await flow_runner.resume(StopFlow)
    assert resumed.successful and resumed.data.n == 42
    assert resumed["start"].task.data.n == 41
    assert resumed.id != cancelled.id


async def test_flow_failed_is_the_one_failure_type(flow_runner: FlowRunner) -> None:
    class BoomFlow(FlowSpec):
        @step
        async def start(self):
            raise ZeroDivisionError("nope")
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(FlowFailed) as info:
        await flow_runner(BoomFlow)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.pathspec == f"{info.value.run.pathspec}/start/1"
    assert info.value.run.status == "failed"


class FailingFlow(FlowSpec):
    @step
    def start(self):
        print("about to fail")
        raise ValueError("failing on purpose")
        self.next(self.end)

    @step
    def end(self):
        pass


# -- nothing blocks the loop -----------------------------------------------------------------------


async def test_nothing_blocking_runs_on_the_event_loop(
    flow_runner: FlowRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    await flow_runner(ScoreFlow, label="warm")  # imports and first-use setup are not the point
    with blockbuster_ctx():
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(lambda i=i: flow_runner(ScoreFlow, label=f"r{i}", quiet=i > 0))
        async with flow_runner.start(ScoreFlow, label="s") as handle:
            events = [event async for event in handle.events()]
            run = await handle.wait()
        with pytest.raises(FlowFailed):
            await flow_runner(FailingFlow, quiet=False)
        resumed = await flow_runner.resume(ScoreFlow, origin_run_id=run.id, step="join")
    assert isinstance(events[-1], RunFinished) and resumed.successful
    assert "r0: 6.0" in capsys.readouterr().out


# -- what is kept between runs -------------------------------------------------------------


async def test_the_graph_is_built_once_per_class_and_steps(
    flow_runner: FlowRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[type] = []
    real = graphs.FlowGraph

    def counting(flow_cls: type) -> Any:
        built.append(flow_cls)
        return real(flow_cls)

    monkeypatch.setattr(graphs, "FlowGraph", counting)

    class CachedFlow(FlowSpec):
        @step
        def start(self):
            self.x = 1
            self.next(self.end)

        @step
        def end(self):
            pass

    await flow_runner(CachedFlow)
    await flow_runner(CachedFlow)
    assert built == [CachedFlow]

    @step
    def start(self):  # a step replaced after the first runs: the graph is read again
        self.x = 2
        self.next(self.end)

    CachedFlow.start = start  # type: ignore[method-assign]
    run = await flow_runner(CachedFlow)
    assert built == [CachedFlow, CachedFlow] and run.data.x == 2

    class Broken(FlowSpec):
        @step
        def start(self):
            self.next(self.nowhere)

        @step
        def end(self):
            pass

    for _ in range(2):  # a graph that fails lint is not kept
        with pytest.raises(LintError):
            await flow_runner(Broken)
    assert built.count(Broken) == 2
