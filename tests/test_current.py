"""`current` inside steps (sync, async, joins, foreach), outside any flow, and under concurrency."""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import FlowSpec, Parameter, current, step
from aioflow.client import Run
from aioflow.testing import run_in_temp_store
from tests.helpers import Gate

TIMEOUT = 10.0

FIELDS = (
    "flow_name",
    "run_id",
    "step_name",
    "task_id",
    "retry_count",
    "origin_run_id",
    "pathspec",
    "username",
    "namespace",
    "tags",
    "parameter_names",
    "is_running_flow",
)


class Arrivals:
    """Opens `all_in` once `expected` tasks have arrived (from any thread)."""

    def __init__(self, expected: int) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.expected = expected
        self.all_in = Gate()

    def arrive(self) -> None:
        with self._lock:
            self.count += 1
            done = self.count == self.expected
        if done:
            self.all_in.set()


STATE = types.SimpleNamespace()


@pytest.fixture(autouse=True)
def _tester(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    STATE.__dict__.clear()
    yield
    if "arrivals" in STATE.__dict__:
        STATE.arrivals.all_in.set()


def snapshot() -> dict[str, Any]:
    """Every field of `current`, as plain values that can be stored as an artifact."""
    values = {name: getattr(current, name) for name in FIELDS}
    values["tags"] = None if values["tags"] is None else sorted(values["tags"])
    return values


def expected(run: Run, step_name: str, task_id: str, tags: list[str]) -> dict[str, Any]:
    flow, run_id = run.pathspec.split("/")
    return {
        "flow_name": flow,
        "run_id": run_id,
        "step_name": step_name,
        "task_id": task_id,
        "retry_count": 0,
        "origin_run_id": None,
        "pathspec": f"{flow}/{run_id}/{step_name}/{task_id}",
        "username": "tester",
        "namespace": "user:tester",
        "tags": sorted(tags),
        "parameter_names": ["alpha", "speed"],
        "is_running_flow": True,
    }


class CurrentFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)
    speed = Parameter("max-speed", default=2.5)

    @step
    def start(self):
        self.cur = snapshot()
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        self.cur = snapshot()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.cur = snapshot()
        self.next(self.after)

    @step
    async def after(self):
        self.cur = snapshot()
        self.seen_in_thread = await anyio.to_thread.run_sync(snapshot)
        self.next(self.end)

    @step
    def end(self):
        self.cur = snapshot()


async def test_every_field_inside_sync_async_and_join_steps(aioflow_root: Path) -> None:
    run = await run_in_temp_store(CurrentFlow, aioflow_root, tags=["blue", "green"])
    tags = ["blue", "green"]
    checked = 0
    for s in run:
        for task in s.tasks():
            assert task.data.cur == expected(run, s.id, task.id, tags), task.pathspec
            checked += 1
    assert checked == 6
    # a worker thread started from a step with anyio's to_thread copies the task's context
    after = run["after"].task
    assert after.data.seen_in_thread == expected(run, "after", after.id, tags)


async def test_fields_in_a_run_without_tags(aioflow_root: Path) -> None:
    run = await run_in_temp_store(CurrentFlow, aioflow_root)
    start = run["start"].task
    assert start.data.cur["tags"] == []  # system tags (user:..., runtime:...) are not included
    assert start.data.cur["parameter_names"] == ["alpha", "speed"]


class NoParamsFlow(FlowSpec):
    @step
    async def start(self):
        self.names = current.parameter_names
        self.next(self.end)

    @step
    def end(self):
        self.names = current.parameter_names


async def test_parameter_names_is_an_empty_list_without_parameters(aioflow_root: Path) -> None:
    run = await run_in_temp_store(NoParamsFlow, aioflow_root)
    assert run["start"].task.data.names == []
    assert run["end"].task.data.names == []


def test_outside_a_flow_every_field_is_empty() -> None:
    values = snapshot()
    assert values.pop("is_running_flow") is False
    assert values == dict.fromkeys(values)
    assert current.get("flow_name", "fallback") == "fallback"


# -- concurrency ------------------------------------------------------------------------------


class OverlapFlow(FlowSpec):
    run_no = Parameter("run_no", default=0)

    @step
    def start(self):
        self.items = list(range(3))
        self.next(self.fa, self.fs)

    @step
    def fa(self):
        self.next(self.wa, foreach="items")

    @step
    async def wa(self):
        self.before = snapshot()
        STATE.arrivals.arrive()
        await STATE.arrivals.all_in.wait()  # every task of every run is inside now
        self.after = snapshot()
        self.next(self.ja)

    @step
    def ja(self, inputs):
        self.next(self.join)

    @step
    async def fs(self):
        self.next(self.ws, foreach="items")

    @step
    def ws(self):
        self.before = snapshot()
        STATE.arrivals.arrive()
        STATE.arrivals.all_in.wait_sync()
        self.after = snapshot()
        self.next(self.js)

    @step
    def js(self, inputs):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize("runs", [1, 2], ids=["one-run", "two-runs-one-loop"])
async def test_overlapping_tasks_and_runs_each_see_their_own_current(
    runs: int, aioflow_root: Path
) -> None:
    STATE.arrivals = Arrivals(expected=runs * 6)
    results: dict[int, Run] = {}
    outside: list[dict[str, Any]] = []

    async def one(run_no: int) -> None:
        results[run_no] = await run_in_temp_store(
            OverlapFlow, aioflow_root, run_no=run_no, max_workers=6
        )

    async with anyio.create_task_group() as tg:
        for run_no in range(runs):
            tg.start_soon(one, run_no)
        await STATE.arrivals.all_in.wait()
        outside.append(snapshot())  # the test's own coroutine is in no task

    assert outside[0]["is_running_flow"] is False and outside[0]["run_id"] is None
    assert len({r.id for r in results.values()}) == runs
    for run in results.values():
        for step_name in ("wa", "ws"):
            tasks = list(run[step_name].tasks())
            assert len(tasks) == 3
            for task in tasks:
                mine = {
                    "flow_name": "OverlapFlow",
                    "run_id": run.id,
                    "step_name": step_name,
                    "task_id": task.id,
                    "pathspec": task.pathspec,
                    "parameter_names": ["run_no"],
                    "is_running_flow": True,
                }
                for when in ("before", "after"):
                    seen = getattr(task.data, when)
                    assert {k: seen[k] for k in mine} == mine, (task.pathspec, when)
