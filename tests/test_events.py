"""start_flow and its handle: the run id at once, live typed events, wait(), leaving early.

Also the console's live status line, which is built on the same events.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import anyio
import pytest

from aioflow import FlowFailed, FlowSpec, Parameter, Run, current, retry, step
from aioflow.events import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskFinished,
    TaskRetrying,
    TaskStarted,
)
from aioflow.exceptions import ParameterError
from aioflow.testing import FlowRunner

pytestmark = pytest.mark.timeout(60)


class FanFlow(FlowSpec):
    width = Parameter("width", default=3)

    @step
    def start(self):
        print(f"start of {current.run_id}")
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        await anyio.sleep(0.02)
        print(f"item {self.input}")
        print(f"warning {self.input}", file=sys.stderr)
        self.out = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print(f"total {self.total}")


class Gate:
    """Set from a step, awaited by the test (no sleeps): one per test, reset by each test."""

    reached: anyio.Event
    cancelled: bool


GATE = Gate()


class BlockFlow(FlowSpec):
    @step
    def start(self):
        self.s = 1
        self.next(self.blocked)

    @step
    async def blocked(self):
        GATE.reached.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            GATE.cancelled = True
            raise
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture
def gate() -> Gate:
    GATE.reached = anyio.Event()
    GATE.cancelled = False
    return GATE


def by_task(events: list[Event]) -> dict[str, list[Event]]:
    tasks: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if isinstance(event, (TaskStarted, TaskFinished, TaskFailed, TaskRetrying, LogLine)):
            tasks[event.pathspec].append(event)
    return tasks


async def test_the_run_id_is_known_at_once_and_events_follow_in_order(
    flow_runner: FlowRunner,
) -> None:
    async with flow_runner.start(FanFlow, width=3) as handle:
        run_id = handle.run_id
        assert handle.pathspec == f"FanFlow/{run_id}" and handle.flow_name == "FanFlow"
        # already stored: a client in another thread (or process) can see it
        stored = await anyio.to_thread.run_sync(Run, handle.pathspec)
        assert stored.status == "running"
        events = [event async for event in handle.events()]  # ends after RunFinished
        run = await handle.wait()
    assert handle.done and handle.status == "succeeded"
    assert run.pathspec == handle.pathspec and run.successful
    assert run["join"].task.data.total == 30

    first, last = events[0], events[-1]
    assert isinstance(first, RunStarted) and first.pathspec == run.pathspec
    assert isinstance(last, RunFinished) and last.status == "succeeded"
    assert last.pathspec == run.pathspec and last.failed_pathspec is None
    assert sum(isinstance(e, (RunStarted, RunFinished)) for e in events) == 2

    tasks = by_task(events)
    assert set(tasks) == {t.pathspec for s in run for t in s}
    for own in tasks.values():
        assert isinstance(own[0], TaskStarted) and isinstance(own[-1], TaskFinished), own
        assert all(e.pathspec.startswith(f"FanFlow/{run_id}/") for e in own)
        stamps = [e.timestamp for e in own]
        assert stamps == sorted(stamps)
        finished = own[-1]
        assert isinstance(finished, TaskFinished)
        assert finished.duration == pytest.approx(own[-1].timestamp - own[0].timestamp, abs=0.05)
    for task in run["work"]:
        own = tasks[task.pathspec]
        lines = [(e.stream, e.line) for e in own if isinstance(e, LogLine)]
        assert lines == [("stdout", f"item {task.index}"), ("stderr", f"warning {task.index}")]
        finished = own[-1]
        assert isinstance(finished, TaskFinished) and finished.duration >= 0.02
    start = tasks[run["start"].task.pathspec]
    assert isinstance(start[-1], TaskFinished) and start[-1].foreach_splits == 3
    assert last.duration >= 0.02
    assert first.timestamp <= min(e.timestamp for e in events[1:])


async def test_events_wait_for_a_late_consumer(flow_runner: FlowRunner) -> None:
    # The run never waits for the consumer: it ends, and every event is still there to read.
    async with flow_runner.start(FanFlow, width=2) as handle:
        run = await handle.wait()
        events = [event async for event in handle.events()]
        again = [event async for event in handle.events()]  # one stream: it is used up
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert len([e for e in events if isinstance(e, TaskFinished)]) == 5
    assert again == []
    assert run.successful


async def test_listeners_and_the_event_stream_see_the_same_events(
    flow_runner: FlowRunner,
) -> None:
    heard: list[Event] = []
    async with flow_runner.start(FanFlow, listeners=[heard.append]) as handle:
        streamed = [event async for event in handle.events()]
    assert streamed == heard


async def test_a_failing_run_reports_its_task_and_wait_raises_flow_failed(
    flow_runner: FlowRunner,
) -> None:
    class FailFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.boom)

        @step
        def boom(self):
            raise KeyError("no such thing")
            self.next(self.end)

        @step
        def end(self):
            pass

    async with flow_runner.start(FailFlow) as handle:
        events = [event async for event in handle.events()]
        with pytest.raises(FlowFailed) as info:
            await handle.wait()
    assert handle.status == "failed"
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert len(failed) == 1
    assert failed[0].exception_type == "KeyError" and "no such thing" in failed[0].message
    assert "raise KeyError" in failed[0].traceback and not failed[0].retrying
    last = events[-1]
    assert isinstance(last, RunFinished) and last.status == "failed"
    assert last.failed_pathspec == failed[0].pathspec == info.value.pathspec
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.run.pathspec == handle.pathspec


async def test_a_retried_attempt_is_announced(flow_runner: FlowRunner) -> None:
    class FlakyFlow(FlowSpec):
        @retry(times=1)
        @step
        def start(self):
            if current.retry_count == 0:
                raise RuntimeError("first try fails")
            self.next(self.end)

        @step
        def end(self):
            pass

    async with flow_runner.start(FlakyFlow) as handle:
        events = [event async for event in handle.events()]
        run = await handle.wait()
    own = by_task(events)[run["start"].task.pathspec]
    kinds = [(type(e).__name__, getattr(e, "attempt", None)) for e in own]
    assert kinds == [
        ("TaskStarted", 0),
        ("TaskFailed", 0),
        ("TaskRetrying", 1),
        ("TaskStarted", 1),
        ("TaskFinished", 1),
    ]
    failed = own[1]
    assert isinstance(failed, TaskFailed) and failed.retrying


async def test_leaving_the_block_early_cancels_the_run(flow_runner: FlowRunner, gate: Gate) -> None:
    seen: list[Event] = []
    async with flow_runner.start(BlockFlow) as handle:
        async for event in handle.events():
            seen.append(event)
            if isinstance(event, TaskStarted) and event.step_name == "blocked":
                break
        await gate.reached.wait()
    assert gate.cancelled, "the running step was not cancelled"
    assert handle.done and handle.status == "cancelled"
    with pytest.raises(FlowFailed, match="was cancelled") as info:
        await handle.wait()
    assert info.value.pathspec is None
    run = Run(handle.pathspec)
    assert run.status == "cancelled" and not run.successful
    assert run["start"].task.successful
    blocked = run["blocked"].task
    assert not blocked.finished and "cancelled" in blocked.exception.exception


async def test_an_error_in_the_block_cancels_the_run_and_comes_out_unwrapped(
    flow_runner: FlowRunner, gate: Gate
) -> None:
    with pytest.raises(ValueError, match="the caller failed"):
        async with flow_runner.start(BlockFlow) as handle:
            await gate.reached.wait()
            raise ValueError("the caller failed")
    assert gate.cancelled
    assert Run(handle.pathspec).status == "cancelled"


async def test_cancelling_the_waiting_caller_cancels_the_run(
    flow_runner: FlowRunner, gate: Gate
) -> None:
    events: list[Event] = []
    with anyio.CancelScope() as scope:
        async with (
            flow_runner.start(BlockFlow, listeners=[events.append]) as handle,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(handle.wait)
            await gate.reached.wait()
            scope.cancel()
    assert scope.cancelled_caught and gate.cancelled
    last = events[-1]
    assert isinstance(last, RunFinished) and last.status == "cancelled"
    assert last.interrupted == (Run(handle.pathspec)["blocked"].task.pathspec,)


async def test_handle_cancel_stops_the_run_and_the_stream_ends(
    flow_runner: FlowRunner, gate: Gate
) -> None:
    async with flow_runner.start(BlockFlow) as handle:
        await gate.reached.wait()
        handle.cancel()
        events = [event async for event in handle.events()]
        with pytest.raises(FlowFailed, match="cancelled"):
            await handle.wait()
    last = events[-1]
    assert isinstance(last, RunFinished) and last.status == "cancelled"
    assert gate.cancelled


async def test_bad_parameters_raise_on_entry_and_store_nothing(
    flow_runner: FlowRunner,
) -> None:
    handle = flow_runner.start(FanFlow, width="many")
    with pytest.raises(ParameterError, match="keyword argument 'width'"):
        async with handle:
            raise AssertionError("not reached")
    assert not flow_runner.root.exists()
    with pytest.raises(RuntimeError, match="not started"):
        handle.run_id  # noqa: B018


async def test_a_handle_is_entered_once(flow_runner: FlowRunner) -> None:
    handle = flow_runner.start(FanFlow, width=1)
    async with handle:
        await handle.wait()
    with pytest.raises(RuntimeError, match="only once"):
        async with handle:
            pass


async def test_concurrent_handles_each_see_only_their_own_run(flow_runner: FlowRunner) -> None:
    streams: dict[str, list[Event]] = {}

    async def one(width: int) -> None:
        async with flow_runner.start(FanFlow, width=width) as handle:
            streams[handle.run_id] = [event async for event in handle.events()]

    async with anyio.create_task_group() as tg:
        for width in (1, 2, 3, 4):
            tg.start_soon(one, width)
    assert len(streams) == 4
    for run_id, events in streams.items():
        assert all(getattr(e, "pathspec", "").startswith(f"FanFlow/{run_id}") for e in events), (
            run_id
        )
        run = Run(f"FanFlow/{run_id}")
        width = len(run["start"].task.data.items)
        printed = [e.line for e in events if isinstance(e, LogLine)]
        assert printed[0] == f"start of {run_id}"
        assert printed[-1] == f"total {sum(range(width)) * 10}" == f"total {run.data.total}"
        assert len([e for e in events if isinstance(e, TaskFinished)]) == 3 + width
