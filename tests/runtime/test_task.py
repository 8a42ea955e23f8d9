"""Where an async step's attempt is finished (its artifacts snapshotted and encoded): on the
event loop when that is quicker than a trip to a worker thread, in a thread otherwise."""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

import pytest

from aioflow import FlowSpec, Parameter, run_flow, step
from aioflow.runtime import task
from aioflow.runtime.logs import TaskLog
from aioflow.store import Store


class AsyncSetFlow(FlowSpec):
    kind = Parameter("kind", default="scalars")

    @step
    def start(self):
        self.next(self.work)

    @step
    async def work(self):
        if self.kind == "scalars":
            self.n, self.x, self.name, self.flag, self.none = 1, 2.5, "short", True, None
        elif self.kind == "long_text":
            self.text = "x" * (task.QUICK_TEXT + 1)
        elif self.kind == "container":
            self.rows = [1, 2, 3]  # a container's encoding may run arbitrary code
        else:
            for n in range(task.QUICK_COUNT + 1):
                setattr(self, f"v{n}", n)
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize(
    ("kind", "on_the_loop"),
    [("scalars", True), ("long_text", False), ("container", False), ("many", False)],
)
async def test_an_async_step_finishes_on_the_loop_only_when_that_is_quick(
    kind: str, on_the_loop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished_on: dict[str, int] = {}
    finish = task.TaskRun.finish

    def recording_finish(run: task.TaskRun, *args: Any, **kwargs: Any) -> Any:
        finished_on[run.spec.step] = threading.get_ident()
        return finish(run, *args, **kwargs)

    monkeypatch.setattr(task.TaskRun, "finish", recording_finish)
    run = await run_flow(AsyncSetFlow, root=Store.memory(), quiet=True, kind=kind)
    assert run.successful
    assert (finished_on["work"] == threading.get_ident()) is on_the_loop
    if kind == "scalars":
        assert (run.data.n, run.data.x, run.data.name, run.data.flag, run.data.none) == (
            1, 2.5, "short", True, None
        )  # fmt: skip


class PrintingForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(20))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        print("item", self.input)
        self.x = self.input
        self.next(self.join)

    @step
    async def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_finished_task_is_freed_without_the_garbage_collector() -> None:
    # A task attempt and its log must not refer to each other: a cycle is freed only by the
    # collector, and a run freezes the collector's survivors every 1,024 tasks, so each task of
    # a wide foreach (its instance and artifacts with it) would have lived until the run ended.
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable stays in gc.garbage
    try:
        run = await run_flow(PrintingForeachFlow, root=Store.memory(), quiet=True)
        assert run.successful and run.data.total == sum(range(20))
        gc.collect()
        cyclic = [obj for obj in gc.garbage if isinstance(obj, (task.TaskRun, TaskLog))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic == []


class QuietAndLoudFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.check)

    @step
    async def check(self):
        # Inside a task the standard streams are captured, whether it printed yet or not.
        self.tty = sys.stdout.isatty()
        self.next(self.loud)

    @step
    def loud(self):
        print("partial line", end="")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_task_has_a_log_only_once_it_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    # Most tasks print nothing: their attempt makes no log at all, and stores no log key.
    logs: dict[str, TaskLog | None] = {}
    finish = task.TaskRun.finish

    def recording_finish(run: task.TaskRun, *args: Any, **kwargs: Any) -> Any:
        outcome = finish(run, *args, **kwargs)
        logs[run.spec.step] = outcome.log
        return outcome

    monkeypatch.setattr(task.TaskRun, "finish", recording_finish)
    store = Store.memory()
    run = await run_flow(QuietAndLoudFlow, root=store, quiet=True)
    assert run.successful
    assert logs["start"] is None and logs["end"] is None
    assert logs["check"] is not None  # (isatty asked the task's log)
    assert run.data.tty is False
    loud = logs["loud"]
    assert loud is not None and [line for _, line in loud.stdout] == ["partial line"]
    assert run["loud"].task.stdout == "partial line\n"
    assert run["start"].task.stdout == "" and run["start"].task.stderr == ""
