"""Where an async step's attempt is finished (its artifacts snapshotted and encoded): on the
event loop when that is quicker than a trip to a worker thread, in a thread otherwise."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aioflow import FlowSpec, Parameter, run_flow, step
from aioflow.runtime import task
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
