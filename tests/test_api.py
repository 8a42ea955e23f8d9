"""The Python API: run_flow, run_flow_sync, parameter and lint errors, FlowFailed, listeners."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aioflow import FlowFailed, FlowSpec, Parameter, Run, current, run_flow, run_flow_sync, step
from aioflow.events import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskFinished,
    TaskStarted,
)
from aioflow.exceptions import LintError, ParameterError
from aioflow.store import Store
from aioflow.store.open import open_store


class ParamFlow(FlowSpec):
    alpha = Parameter("alpha", default=1, help="An integer")
    req = Parameter("req-x", type=int, required=True)
    label = Parameter("label", default="none")

    @step
    def start(self):
        self.total = self.alpha + self.req
        print(f"total {self.total}")
        self.next(self.end)

    @step
    async def end(self):
        self.thread = threading.get_ident()


async def test_run_flow_returns_the_run(aioflow_root: Path) -> None:
    run = await run_flow(ParamFlow, root=aioflow_root, quiet=True, alpha=5, req_x=2, tags=["t"])
    assert isinstance(run, Run)
    assert run.successful and run.status == "succeeded"
    assert run.data.total == 7
    assert run.data.alpha == 5 and run.data.req == 2 and run.data.label == "none"
    assert run.user_tags == {"t"}
    assert run["start"].task.stdout == "total 7\n"


class ElsewhereFlow(FlowSpec):
    @step(executor="process")
    def start(self):
        self.x = 41
        self.seen_in_worker = current.run.pathspec
        self.next(self.end)

    @step
    def end(self):
        self.y = self.x + 1
        self.run_row_seen = (current.run.pathspec, current.run.finished)


async def test_a_store_given_to_run_flow_is_the_one_every_part_of_the_run_uses(
    tmp_path: Path,
) -> None:
    # Metadata and blobs away from the store folder, and no setting says where: only the given
    # Store knows. Worker processes, current.run and the returned run must all use it, not the
    # folder's default store (which they created and read before).
    store = open_store(f"sqlite://{tmp_path}/meta/m.db", str(tmp_path / "blobs"), tmp_path / "f")
    try:
        run = await run_flow(ElsewhereFlow, root=store, quiet=True)
        assert run.data.y == 42
        assert run.data.run_row_seen == (run.pathspec, False)  # read from the run's row
        assert run.data.seen_in_worker == run.pathspec
    finally:
        store.close()
    assert not (tmp_path / "f").exists()


class ReadBackFlow(FlowSpec):
    @step
    def start(self):
        self.x = 41
        self.next(self.end)

    @step
    def end(self):
        self.run_row_seen = (current.run.pathspec, current.run.finished)


async def test_current_run_reads_a_store_in_memory() -> None:
    run = await run_flow(ReadBackFlow, root=Store.memory(), quiet=True)
    assert run.data.run_row_seen == (run.pathspec, False)


async def test_run_flow_accepts_the_cli_spelling_of_names(aioflow_root: Path) -> None:
    run = await run_flow(ParamFlow, root=aioflow_root, quiet=True, **{"req-x": 3})
    assert run.data.total == 4


async def test_run_flow_prints_progress_unless_quiet(
    aioflow_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await run_flow(ParamFlow, root=aioflow_root, req_x=1)
    out = capsys.readouterr().out
    assert f"Workflow starting (run-id {run.id})" in out
    assert f"[{run.id}/start/" in out and "total 2" in out
    assert "Done!" in out
    await run_flow(ParamFlow, root=aioflow_root, quiet=True, req_x=1)
    assert capsys.readouterr().out == ""


def test_run_flow_sync_from_plain_code(aioflow_root: Path) -> None:
    run = run_flow_sync(ParamFlow, root=aioflow_root, quiet=True, req_x=10)
    assert run.successful and run.data.total == 11
    # the async end step ran on the loop run_flow_sync started, in this thread
    assert run.data.thread == threading.get_ident()


def test_run_flow_sync_from_a_worker_thread(aioflow_root: Path) -> None:
    results: list[Any] = []

    def work() -> None:
        try:
            results.append(run_flow_sync(ParamFlow, root=aioflow_root, quiet=True, req_x=20))
        except BaseException as exc:  # reported below
            results.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    (run,) = results
    assert isinstance(run, Run) and run.data.total == 21
    assert run.data.thread == worker.ident


async def test_run_flow_sync_in_a_thread_next_to_a_running_loop(aioflow_root: Path) -> None:
    def go() -> Run:
        return run_flow_sync(ParamFlow, root=aioflow_root, quiet=True, req_x=30)

    run = await anyio.to_thread.run_sync(go)
    assert run.data.total == 31
    assert run.data.thread != threading.get_ident()


async def test_run_flow_sync_inside_a_running_loop_raises(aioflow_root: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        run_flow_sync(ParamFlow, root=aioflow_root, quiet=True, req_x=1)
    message = str(info.value)
    assert "running event loop" in message and "await run_flow(" in message
    assert not aioflow_root.exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"req_x": 1, "bogus": 2}, ["'bogus'", "alpha, req_x, label"]),
        ({"req_x": 1, "alpha": "x"}, ["keyword argument 'alpha'", "'x'", "integer"]),
        ({"req_x": "many"}, ["keyword argument 'req_x'", "'many'"]),
        ({}, ["Missing keyword argument 'req_x'"]),
        ({"alpha": 2}, ["Missing keyword argument 'req_x'"]),
    ],
    ids=["unknown", "wrong-type", "wrong-type-required", "missing", "missing-with-other"],
)
async def test_parameters_are_validated_before_anything_is_stored(
    given: dict[str, Any], expected: list[str], aioflow_root: Path
) -> None:
    listened: list[Event] = []
    with pytest.raises(ParameterError) as info:
        await run_flow(ParamFlow, root=aioflow_root, quiet=True, listeners=[listened.append],
                       **given)  # fmt: skip
    for part in expected:
        assert part in str(info.value)
    assert not aioflow_root.exists()
    assert listened == []


class NotAFlowGraph(FlowSpec):
    @step
    def start(self):
        self.next(self.nowhere)

    @step
    def end(self):
        pass


class NoJoinFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize(
    ("flow_cls", "needle"),
    [
        (NotAFlowGraph, "transition to an unknown step, *nowhere*"),
        (NoJoinFlow, "Add a join step before *end*"),
    ],
)
async def test_lint_errors_raise_before_anything_is_stored(
    flow_cls: type[FlowSpec], needle: str, aioflow_root: Path
) -> None:
    with pytest.raises(LintError) as info:
        await run_flow(flow_cls, root=aioflow_root, quiet=True)
    assert needle in str(info.value)
    assert not aioflow_root.exists()


def test_lint_errors_raise_from_run_flow_sync_too(aioflow_root: Path) -> None:
    with pytest.raises(LintError) as info:
        run_flow_sync(NoJoinFlow, root=aioflow_root, quiet=True)
    assert "Add a join step before *end*" in str(info.value)
    assert not aioflow_root.exists()


class BoomFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 1:
            raise KeyError("missing thing")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_flow_failed_carries_the_run_the_task_and_the_cause(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_flow(BoomFlow, root=aioflow_root, quiet=True, max_workers=1)
    err = info.value
    assert isinstance(err.run, Run)
    assert err.run.pathspec == "BoomFlow/1"
    assert not err.run.successful and err.run.status == "failed"
    flow, run_id, step_name, task_id = err.pathspec.split("/")
    assert (flow, run_id, step_name) == ("BoomFlow", "1", "work")
    task = err.run["work"][task_id]
    assert task.index == 1
    assert task.exception.type == "builtins.KeyError"
    assert isinstance(err.__cause__, KeyError)
    assert err.__cause__.args == ("missing thing",)
    assert "work" in str(err) and "KeyError" in str(err)
    # the run stays readable by pathspec after the failure
    assert Run("BoomFlow/1", _store=None).status == "failed"


def test_flow_failed_from_run_flow_sync(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        run_flow_sync(BoomFlow, root=aioflow_root, quiet=True)
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.pathspec.startswith("BoomFlow/1/work/")


class EventsFlow(FlowSpec):
    @step
    def start(self):
        print("start out")
        self.items = ["a", "b"]
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        import sys

        print(f"work {self.input} {current.task_id}")
        print(f"warn {self.input}", file=sys.stderr)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        print("end out")


async def test_listeners_receive_typed_events_in_order(aioflow_root: Path) -> None:
    events: list[Event] = []
    second: list[Event] = []
    run = await run_flow(EventsFlow, root=aioflow_root, quiet=True,
                         listeners=[events.append, second.append])  # fmt: skip
    assert events == second  # every listener sees the same stream
    assert all(isinstance(e, Event) for e in events)

    first, last = events[0], events[-1]
    assert isinstance(first, RunStarted)
    assert (first.flow_name, first.run_id, first.pathspec) == ("EventsFlow", run.id, run.pathspec)
    assert isinstance(last, RunFinished)
    assert last.status == "succeeded" and last.successful and last.run_id == run.id
    assert not any(isinstance(e, (RunStarted, RunFinished)) for e in events[1:-1])

    position: dict[tuple[str, str], int] = {}
    for i, event in enumerate(events):
        if isinstance(event, (TaskStarted, TaskFinished)):
            key = (type(event).__name__, event.pathspec)
            assert key not in position, key
            position[key] = i
    tasks = [t for s in run for t in s.tasks()]
    assert len(tasks) == 5
    for task in tasks:
        started = position[("TaskStarted", task.pathspec)]
        finished = position[("TaskFinished", task.pathspec)]
        assert started < finished
    assert not any(isinstance(e, TaskFailed) for e in events)

    lines: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for i, event in enumerate(events):
        if isinstance(event, LogLine):
            lines[event.pathspec].append((event.stream, event.line))
            # a task's lines arrive while it runs: after its start, before its end
            assert position[("TaskStarted", event.pathspec)] < i
            assert i < position[("TaskFinished", event.pathspec)]
    start = run["start"].task
    assert lines[start.pathspec] == [("stdout", "start out")]
    assert lines[run["end"].task.pathspec] == [("stdout", "end out")]
    for task in run["work"].tasks():
        item = "ab"[task.index]
        assert lines[task.pathspec] == [
            ("stdout", f"work {item} {task.id}"),
            ("stderr", f"warn {item}"),
        ]
    assert set(lines) == {start.pathspec, run["end"].task.pathspec,
                          *(t.pathspec for t in run["work"].tasks())}  # fmt: skip


async def test_listeners_see_a_failure(aioflow_root: Path) -> None:
    events: list[Event] = []
    with pytest.raises(FlowFailed) as info:
        await run_flow(BoomFlow, root=aioflow_root, quiet=True, max_workers=1,
                       listeners=[events.append])  # fmt: skip
    assert isinstance(events[0], RunStarted)
    last = events[-1]
    assert isinstance(last, RunFinished)
    assert last.status == "failed" and not last.successful
    assert last.failed_pathspec == info.value.pathspec
    (failed,) = [e for e in events if isinstance(e, TaskFailed)]
    assert failed.pathspec == info.value.pathspec
    assert failed.exception_type == "KeyError"
    assert "missing thing" in failed.message
    assert "Traceback" in failed.traceback
    assert events.index(failed) > next(
        i for i, e in enumerate(events)
        if isinstance(e, TaskStarted) and e.pathspec == failed.pathspec
    )  # fmt: skip
