"""The scheduler: a graph-shape x behaviour matrix, concurrency limits, failure and cancellation.

Every flow here mixes sync steps (run in worker threads) and async steps (run on the loop).
Synchronisation is done with gates (events settable from any thread), never with sleeps.
"""

from __future__ import annotations

import inspect
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import Flow, FlowFailed, FlowSpec, Parameter, current, step
from aioflow.api import run_flow
from aioflow.client import Run
from aioflow.events import Event, RunFinished, TaskFailed, TaskFinished, TaskStarted
from aioflow.runtime.executors import InlineExecutor, registry
from aioflow.store import FileBlobStore, MemoryMetadataStore, Store
from aioflow.store.postgres import open_postgres_metadata
from aioflow.testing import run_in_temp_store
from tests.helpers import Gate

TIMEOUT = 10.0

# -- helpers ----------------------------------------------------------------------------------


class Meter:
    """Counts bodies running at once (any thread); opens `reached` when `target` are inside."""

    def __init__(self, target: int) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.target = target
        self.reached = Gate()

    def enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            full = self.inside == self.target
        if full:
            self.reached.set()

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


#: What the flows of one test share with the test; reset before every test.
STATE = types.SimpleNamespace()


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    STATE.__dict__.clear()
    STATE.loop_thread = None
    yield
    # Let any worker thread still parked on a gate go (daemon threads, but be tidy).
    for value in list(STATE.__dict__.values()):
        if isinstance(value, Gate):
            value.set()


def touch(flow: FlowSpec) -> None:
    """Record where the step body runs, and fail when the run asked this step to."""
    flow.ran_on = "loop" if threading.get_ident() == STATE.loop_thread else "thread"
    if flow.fail_at == current.step_name:
        raise ValueError(f"planned failure in {current.step_name}")


def _inline(where: Path | Store) -> bool:
    """True for the memory store, whose sync bodies the matrix runs inline on the loop."""
    return isinstance(where, Store) and isinstance(where.metadata, MemoryMetadataStore)


async def run_here(flow_cls: type[FlowSpec], root: Path | Store, **kwargs: Any) -> Run:
    """Run quietly in the store folder `root` or the Store given; in a memory store, sync
    bodies run inline."""
    STATE.loop_thread = threading.get_ident()
    if _inline(root):
        with registry.overriding(thread=InlineExecutor):
            return await run_flow(flow_cls, root=root, quiet=True, **kwargs)
    if isinstance(root, Store):
        return await run_flow(flow_cls, root=root, quiet=True, **kwargs)
    return await run_in_temp_store(flow_cls, root, **kwargs)


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def where(request: pytest.FixtureRequest, aioflow_root: Path) -> Iterator[Path | Store]:
    """The matrix's store: SQLite and files with real threads, memory with inline bodies, or
    PostgreSQL metadata (a real server) and files with real threads."""
    if request.param == "sqlite":
        yield aioflow_root
    elif request.param == "memory":
        yield Store.memory()
    else:
        url = request.getfixturevalue("postgres_url")
        blobs = FileBlobStore(aioflow_root / "blobs")
        store = Store(metadata=open_postgres_metadata(url), blobs=blobs)
        yield store
        store.close()  # the run closed it; reading the run back opened it again


def body_runs_on(flow_cls: type[FlowSpec], step_name: str, where: Path | Store) -> str:
    """Where a step's body runs: async ones and inline ones on the loop, others in threads."""
    return "loop" if _inline(where) or _is_async(flow_cls, step_name) else "thread"


def task_counts(run: Run) -> dict[str, int]:
    return {s.id: sum(1 for _ in s.tasks()) for s in run}


def all_tasks(run: Run) -> list[Any]:
    return [t for s in run for t in s.tasks()]


# -- the shapes -------------------------------------------------------------------------------


class LinearFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")

    @step
    def start(self):
        touch(self)
        self.trail = ["start"]
        self.next(self.a)

    @step
    async def a(self):
        touch(self)
        self.trail += ["a"]
        self.next(self.b)

    @step
    def b(self):
        touch(self)
        self.trail += ["b"]
        self.next(self.end)

    @step
    async def end(self):
        touch(self)
        self.trail += ["end"]


class BranchFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")

    @step
    def start(self):
        touch(self)
        self.base = 10
        self.next(self.a, self.b)

    @step
    async def a(self):
        touch(self)
        self.x = self.base + 1
        self.next(self.join)

    @step
    def b(self):
        touch(self)
        self.y = self.base + 2
        self.next(self.join)

    @step
    def join(self, inputs):
        touch(self)
        self.total = inputs.a.x + inputs.b.y
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    async def end(self):
        touch(self)


class NestedBranchFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")

    @step
    async def start(self):
        touch(self)
        self.next(self.a, self.b)

    @step
    def a(self):
        touch(self)
        self.next(self.a1, self.a2)

    @step
    async def a1(self):
        touch(self)
        self.v1 = 1
        self.next(self.ja)

    @step
    def a2(self):
        touch(self)
        self.v2 = 2
        self.next(self.ja)

    @step
    async def ja(self, inputs):
        touch(self)
        self.av = inputs.a1.v1 + inputs.a2.v2
        self.next(self.j)

    @step
    def b(self):
        touch(self)
        self.bv = 5
        self.next(self.j)

    @step
    def j(self, inputs):
        touch(self)
        self.result = inputs.ja.av * 10 + inputs.b.bv
        self.next(self.end)

    @step
    def end(self):
        touch(self)


class ForeachFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")

    @step
    def start(self):
        touch(self)
        self.items = [3, 1, 2]
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        touch(self)
        self.sq = self.input**2
        self.idx = self.index
        self.next(self.join)

    @step
    def join(self, inputs):
        touch(self)
        self.sqs = [i.sq for i in inputs]
        self.idxs = [i.idx for i in inputs]
        self.next(self.end)

    @step
    async def end(self):
        touch(self)


class NestedForeachFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")

    @step
    def start(self):
        touch(self)
        self.xs = ["a", "b"]
        self.next(self.l1, foreach="xs")

    @step
    async def l1(self):
        touch(self)
        self.ys = ["c", "d"]
        self.next(self.l2, foreach="ys")

    @step
    def l2(self):
        touch(self)
        self.zs = ["e", "f", "g"]
        self.next(self.l3, foreach="zs")

    @step
    async def l3(self):
        touch(self)
        self.word = "".join(value for _, _, value in self.foreach_stack())
        self.next(self.j3)

    @step
    def j3(self, inputs):
        touch(self)
        self.words = [i.word for i in inputs]
        self.next(self.j2)

    @step
    async def j2(self, inputs):
        touch(self)
        self.words = [i.words for i in inputs]
        self.next(self.j1)

    @step
    def j1(self, inputs):
        touch(self)
        self.words = [i.words for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        touch(self)


class ForeachInBranchFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")

    @step
    def start(self):
        touch(self)
        self.next(self.fe, self.other)

    @step
    async def fe(self):
        touch(self)
        self.items = [1, 2, 3]
        self.next(self.w, foreach="items")

    @step
    async def w(self):
        touch(self)
        self.v = self.input * 2
        self.next(self.wj)

    @step
    def wj(self, inputs):
        touch(self)
        self.vs = [i.v for i in inputs]
        self.next(self.j)

    @step
    def other(self):
        touch(self)
        self.o = "o"
        self.next(self.j)

    @step
    async def j(self, inputs):
        touch(self)
        self.vs = inputs.wj.vs
        self.o = inputs.other.o
        self.next(self.end)

    @step
    def end(self):
        touch(self)


class BranchInForeachFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")

    @step
    def start(self):
        touch(self)
        self.items = ["p", "q"]
        self.next(self.f, foreach="items")

    @step
    async def f(self):
        touch(self)
        self.item = self.input
        self.next(self.x, self.y)

    @step
    def x(self):
        touch(self)
        self.xv = self.item + "x"
        self.next(self.bj)

    @step
    async def y(self):
        touch(self)
        self.yv = self.item + "y"
        self.next(self.bj)

    @step
    def bj(self, inputs):
        touch(self)
        self.pair = inputs.x.xv + inputs.y.yv
        self.at = self.index
        self.next(self.fj)

    @step
    async def fj(self, inputs):
        touch(self)
        self.pairs = [i.pair for i in inputs]
        self.ats = [i.at for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        touch(self)


class SwitchFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")
    mode = Parameter("mode", default="a")

    @step
    def start(self):
        touch(self)
        self.choice = self.mode
        self.next({"a": self.sa, "b": self.sb, "c": self.sc}, condition="choice")

    @step
    async def sa(self):
        touch(self)
        self.got = "A"
        self.next(self.end)

    @step
    def sb(self):
        touch(self)
        self.got = "B"
        self.next(self.end)

    @step
    async def sc(self):
        touch(self)
        self.got = "C"
        self.next(self.end)

    @step
    def end(self):
        touch(self)


class SwitchConvergeFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")
    mode = Parameter("mode", default="a")

    @step
    async def start(self):
        touch(self)
        self.choice = self.mode
        self.next({"a": self.sa, "b": self.sb}, condition="choice")

    @step
    def sa(self):
        touch(self)
        self.got = "A"
        self.next(self.after)

    @step
    async def sb(self):
        touch(self)
        self.got = "B"
        self.next(self.after)

    @step
    def after(self):
        touch(self)
        self.seen = self.got + "!"
        self.next(self.end)

    @step
    async def end(self):
        touch(self)


class LoopFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")
    n = Parameter("n", default=4)

    @step
    def start(self):
        touch(self)
        self.i = 0
        self.ids = []
        self.next(self.loop)

    @step
    async def loop(self):
        touch(self)
        self.i += 1
        self.ids = [*self.ids, int(current.task_id)]
        self.go = "again" if self.i < self.n else "done"
        self.next({"again": self.loop, "done": self.end}, condition="go")

    @step
    def end(self):
        touch(self)


class SwitchInBranchFlow(FlowSpec):
    fail_at = Parameter("fail_at", default="")
    mode = Parameter("mode", default="x")

    @step
    def start(self):
        touch(self)
        self.next(self.a, self.b)

    @step
    async def a(self):
        touch(self)
        self.k = self.mode
        self.next({"x": self.ax, "y": self.ay}, condition="k")

    @step
    def ax(self):
        touch(self)
        self.v = "ax"
        self.next(self.amerge)

    @step
    async def ay(self):
        touch(self)
        self.v = "ay"
        self.next(self.amerge)

    @step
    def amerge(self):
        touch(self)
        self.v += "+m"
        self.next(self.join)

    @step
    async def b(self):
        touch(self)
        self.v = "b"
        self.next(self.join)

    @step
    def join(self, inputs):
        touch(self)
        self.vs = [i.v for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        touch(self)


@dataclass
class Shape:
    """One graph shape: how to run it, what it must leave, and where to make it fail."""

    id: str
    flow: type[FlowSpec]
    counts: dict[str, int]
    end_data: dict[str, Any]
    fail_step: str
    params: dict[str, Any] = field(default_factory=dict)


NESTED_WORDS = [[[x + y + z for z in "efg"] for y in "cd"] for x in "ab"]

SHAPES = [
    Shape("linear", LinearFlow, {"start": 1, "a": 1, "b": 1, "end": 1},
          {"trail": ["start", "a", "b", "end"]}, "b"),
    Shape("branch", BranchFlow, {"start": 1, "a": 1, "b": 1, "join": 1, "end": 1},
          {"total": 23, "x": 11, "y": 12, "base": 10}, "a"),
    Shape("nested-branches", NestedBranchFlow,
          {"start": 1, "a": 1, "a1": 1, "a2": 1, "ja": 1, "b": 1, "j": 1, "end": 1},
          {"result": 35}, "a2"),
    Shape("foreach", ForeachFlow, {"start": 1, "work": 3, "join": 1, "end": 1},
          {"sqs": [9, 1, 4], "idxs": [0, 1, 2]}, "work"),
    Shape("nested-foreach-3", NestedForeachFlow,
          {"start": 1, "l1": 2, "l2": 4, "l3": 12, "j3": 4, "j2": 2, "j1": 1, "end": 1},
          {"words": NESTED_WORDS}, "l3"),
    Shape("foreach-in-branch", ForeachInBranchFlow,
          {"start": 1, "fe": 1, "w": 3, "wj": 1, "other": 1, "j": 1, "end": 1},
          {"vs": [2, 4, 6], "o": "o"}, "w"),
    Shape("branch-in-foreach", BranchInForeachFlow,
          {"start": 1, "f": 2, "x": 2, "y": 2, "bj": 2, "fj": 1, "end": 1},
          {"pairs": ["pxpy", "qxqy"], "ats": [0, 1]}, "y"),
    Shape("switch-a", SwitchFlow, {"start": 1, "sa": 1, "end": 1}, {"got": "A"}, "sa",
          {"mode": "a"}),
    Shape("switch-b", SwitchFlow, {"start": 1, "sb": 1, "end": 1}, {"got": "B"}, "sb",
          {"mode": "b"}),
    Shape("switch-c", SwitchFlow, {"start": 1, "sc": 1, "end": 1}, {"got": "C"}, "end",
          {"mode": "c"}),
    Shape("switch-converge-a", SwitchConvergeFlow, {"start": 1, "sa": 1, "after": 1, "end": 1},
          {"got": "A", "seen": "A!"}, "after", {"mode": "a"}),
    Shape("switch-converge-b", SwitchConvergeFlow, {"start": 1, "sb": 1, "after": 1, "end": 1},
          {"got": "B", "seen": "B!"}, "sb", {"mode": "b"}),
    Shape("recursive-switch", LoopFlow, {"start": 1, "loop": 4, "end": 1},
          {"i": 4, "go": "done"}, "loop"),
    Shape("switch-in-branch-x", SwitchInBranchFlow,
          {"start": 1, "a": 1, "ax": 1, "amerge": 1, "b": 1, "join": 1, "end": 1},
          {"vs": ["ax+m", "b"]}, "amerge", {"mode": "x"}),
    Shape("switch-in-branch-y", SwitchInBranchFlow,
          {"start": 1, "a": 1, "ay": 1, "amerge": 1, "b": 1, "join": 1, "end": 1},
          {"vs": ["ay+m", "b"]}, "ay", {"mode": "y"}),
]  # fmt: skip


def _is_async(flow_cls: type[FlowSpec], step_name: str) -> bool:
    return inspect.iscoroutinefunction(getattr(flow_cls, step_name))


# -- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=[s.id for s in SHAPES])
async def test_shape_runs_to_the_end(shape: Shape, where: Path | Store) -> None:
    run = await run_here(shape.flow, where, **shape.params)

    assert run.successful and run.finished
    assert task_counts(run) == shape.counts
    end = run["end"].task
    for name, value in shape.end_data.items():
        assert getattr(end.data, name) == value, name
    for task in all_tasks(run):
        assert task.successful and task.finished, task
        assert task.exception is None
        # async bodies ran on the event loop's thread, sync bodies in worker threads
        assert task.data.ran_on == body_runs_on(shape.flow, task.parent.id, where), task


@pytest.mark.parametrize("shape", SHAPES, ids=[s.id for s in SHAPES])
async def test_shape_fails_at_a_step(shape: Shape, where: Path | Store) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_here(shape.flow, where, fail_at=shape.fail_step, **shape.params)

    err = info.value
    run = err.run
    assert run is not None
    assert not run.successful and not run.finished
    assert run.status == "failed"
    assert err.pathspec is not None and err.pathspec.split("/")[2] == shape.fail_step
    assert isinstance(err.__cause__, ValueError)
    failed = [t for t in run[shape.fail_step].tasks() if t.exception is not None]
    assert failed, "the failing step recorded no exception"
    message = f"planned failure in {shape.fail_step}"
    assert any(t.exception.type == "builtins.ValueError" for t in failed)
    assert any(t.exception.exception == message for t in failed)
    assert all(not t.successful and not t.finished for t in failed)
    if shape.fail_step != "end":
        assert "end" not in run
    # tasks that finished before the failure are stored as successes, artifacts readable
    start = run["start"].task
    assert start.successful and start.finished and start.data.ran_on in ("loop", "thread")


# -- concurrency ------------------------------------------------------------------------------


class WideAsyncFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(12))
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        STATE.meter.enter()
        try:
            await STATE.release.wait()
        finally:
            STATE.meter.leave()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.n = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class WideSyncFlow(FlowSpec):
    @step
    async def start(self):
        self.items = list(range(12))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        STATE.meter.enter()
        try:
            STATE.release.wait_sync()
        finally:
            STATE.meter.leave()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.n = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class WideMixedFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.fa, self.fs)

    @step
    def fa(self):
        self.next(self.wa, foreach="items")

    @step
    async def wa(self):
        STATE.meter.enter()
        try:
            await STATE.release.wait()
        finally:
            STATE.meter.leave()
        self.next(self.ja)

    @step
    def ja(self, inputs):
        self.n = len(inputs)
        self.next(self.join)

    @step
    def fs(self):
        self.next(self.ws, foreach="items")

    @step
    def ws(self):
        STATE.meter.enter()
        try:
            STATE.release.wait_sync()
        finally:
            STATE.meter.leave()
        self.next(self.js)

    @step
    def js(self, inputs):
        self.n = len(inputs)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.n = inputs.ja.n + inputs.js.n
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize("flow_cls", [WideAsyncFlow, WideSyncFlow, WideMixedFlow])
async def test_max_workers_bounds_concurrency(flow_cls: type[FlowSpec], aioflow_root: Path):
    limit = 3
    STATE.meter = Meter(target=limit)
    STATE.release = Gate()
    running: set[str] = set()
    peak_running = 0

    def listener(event: Event) -> None:
        nonlocal peak_running
        if isinstance(event, TaskStarted):
            running.add(event.pathspec)
            peak_running = max(peak_running, len(running))
        elif isinstance(event, (TaskFinished, TaskFailed)):
            running.discard(event.pathspec)

    result: list[Run] = []

    async def go() -> None:
        run = await run_here(flow_cls, aioflow_root, max_workers=limit, listeners=[listener])
        result.append(run)

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await STATE.meter.reached.wait()
        # Every coroutine of the run is now blocked: had the limit been ignored, more tasks
        # would have been started (and, for async bodies, entered) by now.
        await anyio.wait_all_tasks_blocked()
        assert len(running) == limit
        assert STATE.meter.inside == limit
        STATE.release.set()

    assert STATE.meter.peak == limit
    assert peak_running == limit
    assert result[0]["end"].task.data.name == flow_cls.__name__
    assert result[0]["join"].task.data.n == 12


class AsyncBarrierFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(8))
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        STATE.arrived += 1
        if STATE.arrived == 8:
            STATE.all_in.set()
        await STATE.all_in.wait()  # times out unless all 8 bodies are awaiting at once
        self.thread = threading.get_ident()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.threads = [i.thread for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_async_steps_run_concurrently_on_the_loop(aioflow_root: Path) -> None:
    STATE.arrived = 0
    STATE.all_in = Gate()
    result = await run_here(AsyncBarrierFlow, aioflow_root, max_workers=8)
    threads = result["join"].task.data.threads
    assert threads == [threading.get_ident()] * 8


class SyncBarrierFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        STATE.barrier.wait()  # breaks (raises) unless 4 bodies run at once
        self.thread = threading.get_ident()
        self.next(self.join)

    @step
    async def join(self, inputs):
        self.threads = [i.thread for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_sync_steps_run_in_worker_threads_concurrently(aioflow_root: Path) -> None:
    STATE.barrier = threading.Barrier(4, timeout=TIMEOUT)
    result = await run_here(SyncBarrierFlow, aioflow_root, max_workers=4)
    threads = result["join"].task.data.threads
    assert threading.get_ident() not in threads
    assert len(set(threads)) == 4  # blocked together, so each in its own thread


class ReverseFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        i = self.input
        if i + 1 < 6:
            await STATE.done[i + 1].wait()  # finish only after the next item finished
        self.value = i * 10
        STATE.order.append(i)
        STATE.done[i].set()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.indexes = [i.index for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_foreach_join_sees_index_order_when_tasks_finish_in_reverse(aioflow_root: Path):
    STATE.done = [Gate() for _ in range(6)]
    STATE.order = []
    result = await run_here(ReverseFlow, aioflow_root, max_workers=6)
    assert STATE.order == [5, 4, 3, 2, 1, 0]
    join = result["join"].task
    assert join.data.values == [0, 10, 20, 30, 40, 50]
    assert join.data.indexes == [0, 1, 2, 3, 4, 5]


class BigForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(2000))
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        self.double = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.doubles = [i.double for i in inputs]
        self.indexes = [i.index for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_two_thousand_item_foreach_keeps_index_order(aioflow_root: Path) -> None:
    result = await run_here(BigForeachFlow, aioflow_root, max_num_splits=2000)
    join = result["join"].task
    assert join.data.doubles == [i * 2 for i in range(2000)]
    assert join.data.indexes == list(range(2000))
    tasks = list(result["work"].tasks())
    assert len(tasks) == 2000
    # newest first: descending task id, which is descending index
    assert [t.index for t in tasks[:3]] == [1999, 1998, 1997]
    assert tasks[-1].index == 0 and tasks[-1].data.double == 0


async def test_more_splits_than_the_limit_fail_the_splitting_step(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_here(BigForeachFlow, aioflow_root, max_num_splits=1999)
    exc = info.value.run["start"].task.exception
    assert exc is not None
    assert "yielded 2000 child steps which is more than the current maximum of 1999" in (
        exc.exception
    )
    assert "work" not in info.value.run


# -- failure ----------------------------------------------------------------------------------


class FailFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b, self.c)

    @step
    async def a(self):
        self.x = 1
        self.next(self.join)

    @step
    async def b(self):
        self.before = "set"
        STATE.b_started.set()
        try:
            await anyio.Event().wait()  # never set: only cancellation ends this
        except anyio.get_cancelled_exc_class():
            STATE.b_cancelled = True
            raise
        self.next(self.join)

    @step
    def c(self):
        self.y = 2
        STATE.b_started.wait_sync()
        STATE.a_finished.wait_sync()
        raise ValueError("boom")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_failing_task_fails_the_run_and_cancels_the_others(aioflow_root: Path):
    STATE.b_started = Gate()
    STATE.a_finished = Gate()
    STATE.b_cancelled = False
    events: list[Event] = []

    def listener(event: Event) -> None:
        events.append(event)
        if isinstance(event, TaskFinished) and event.step_name == "a":
            STATE.a_finished.set()

    with pytest.raises(FlowFailed) as info:
        await run_here(FailFlow, aioflow_root, listeners=[listener])

    err = info.value
    assert STATE.b_cancelled, "the blocked async step was not cancelled"
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "boom"
    run = err.run
    assert run is not None
    assert err.pathspec == f"{run.pathspec}/c/{run['c'].task.id}"
    assert not run.successful and not run.finished and run.status == "failed"
    assert "join" not in run and "end" not in run

    a = run["a"].task
    assert a.successful and a.finished and a.data.x == 1

    c = run["c"].task
    assert not c.successful and not c.finished
    assert c.data.y == 2  # set before raising, still stored
    assert c.exception.type == "builtins.ValueError"
    assert c.exception.exception == "boom"
    assert "ValueError: boom" in c.exception.stacktrace
    assert 'raise ValueError("boom")' in c.exception.stacktrace

    b = run["b"].task
    assert not b.successful and not b.finished
    assert b.status == "cancelled"  # stopped by the run, not failed like `c`
    assert b.exception is not None and b.exception.type == "Interrupted"
    assert c.status == "failed"

    final = events[-1]
    assert isinstance(final, RunFinished) and final.status == "failed"
    assert final.failed_pathspec == err.pathspec
    assert final.interrupted == (b.pathspec,)


# -- identity ---------------------------------------------------------------------------------


async def test_task_ids_are_unique_and_increase_along_the_graph(aioflow_root: Path) -> None:
    result = await run_here(BranchInForeachFlow, aioflow_root)
    tasks = all_tasks(result)
    ids = sorted(int(t.id) for t in tasks)
    assert ids == list(range(1, len(tasks) + 1))
    by_step = {s.id: sorted(int(t.id) for t in s.tasks()) for s in result}
    assert by_step["start"] == [1]
    assert max(by_step["fj"]) < min(by_step["end"])
    assert max(by_step["bj"]) < min(by_step["fj"])
    assert min(by_step["f"]) > max(by_step["start"])
    # foreach children are launched in index order
    f_tasks = sorted(result["f"].tasks(), key=lambda t: int(t.id))
    assert [t.index for t in f_tasks] == [0, 1]

    loop = await run_here(LoopFlow, aioflow_root, n=5)
    seen = loop["end"].task.data.ids
    assert len(seen) == 5 and seen == sorted(set(seen))  # a new, larger id each iteration
    assert sorted(int(t.id) for t in loop["loop"].tasks()) == seen
    assert [t.id for t in loop["loop"].tasks()] == [str(i) for i in reversed(seen)]


async def test_run_ids_are_unique_across_runs(aioflow_root: Path) -> None:
    first = await run_here(LinearFlow, aioflow_root)
    second = await run_here(LinearFlow, aioflow_root)
    together: list[Run] = []

    async def one() -> None:
        together.append(await run_here(LinearFlow, aioflow_root))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
    ids = [int(r.id) for r in (first, second, *together)]
    assert len(set(ids)) == 4
    assert ids[0] < ids[1] < min(ids[2:])
    assert [r.id for r in Flow("LinearFlow").runs()] == [str(i) for i in sorted(ids, reverse=True)]


# -- cancellation -----------------------------------------------------------------------------


class CancelFlow(FlowSpec):
    @step
    def start(self):
        self.s = 1
        self.next(self.blocked, self.quick)

    @step
    async def blocked(self):
        STATE.reached.set()
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            STATE.blocked_cancelled = True
            raise
        self.next(self.join)

    @step
    def quick(self):
        self.q = 1
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_cancelling_the_caller_stores_a_cancelled_run(aioflow_root: Path) -> None:
    STATE.reached = Gate()
    STATE.blocked_cancelled = False
    events: list[Event] = []
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_here(CancelFlow, aioflow_root, listeners=[events.append]))
            await STATE.reached.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert STATE.blocked_cancelled

    run_ = Flow("CancelFlow").latest_run
    assert run_ is not None
    assert run_.status == "cancelled"
    assert not run_.successful and not run_.finished
    assert "end" not in run_
    start = run_["start"].task
    assert start.successful and start.finished and start.data.s == 1
    blocked = run_["blocked"].task
    assert not blocked.successful and not blocked.finished
    assert blocked.exception is not None and "cancelled" in blocked.exception.exception

    final = events[-1]
    assert isinstance(final, RunFinished) and final.status == "cancelled"
    assert blocked.pathspec in final.interrupted


async def test_move_on_after_cancels_a_run_blocked_in_a_step(aioflow_root: Path) -> None:
    STATE.reached = Gate()
    STATE.blocked_cancelled = False
    with anyio.move_on_after(TIMEOUT) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_here(CancelFlow, aioflow_root))
            await STATE.reached.wait()
            scope.deadline = anyio.current_time()  # trigger the timeout now
    assert scope.cancelled_caught
    run_ = Flow("CancelFlow").latest_run
    assert run_ is not None and run_.status == "cancelled" and not run_.successful
    assert not run_["blocked"].task.finished


# -- aioflow's own failures -------------------------------------------------------------------


class TwoSyncStepsFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
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


async def test_an_aioflow_error_around_a_sync_step_fails_the_run_with_it(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sync steps are handed to the thread lane with a callback that nobody awaits: an error
    # of aioflow itself there must still end the run and reach the caller, not hang it.
    from aioflow.runtime.executors import local

    real = local.run_sync_task

    def broken(env: Any, spec: Any) -> Any:
        if spec.step == "work":
            raise RuntimeError("broken runtime")
        return real(env, spec)

    monkeypatch.setattr(local, "run_sync_task", broken)
    with pytest.raises(RuntimeError, match="broken runtime"):
        await run_here(TwoSyncStepsFlow, aioflow_root)
    run = Flow("TwoSyncStepsFlow").latest_run
    assert run is not None and run.status == "failed" and not run.successful
    assert run["start"].task.successful
    assert "join" not in run


class LateSyncFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.slow)

    @step
    def slow(self):
        STATE.reached.set()
        STATE.release.wait_sync()
        self.next(self.after)

    @step
    def after(self):
        STATE.after_ran = True
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_sync_task_finishing_after_its_run_was_cancelled_starts_nothing(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A thread cannot be interrupted, so a sync task's result may come back after its run was
    # cancelled and stored. It must be dropped: no later step may start in a dead run.
    from aioflow.runtime.scheduler import Scheduler

    STATE.reached, STATE.release = Gate(), Gate()
    STATE.after_ran = False
    delivered = anyio.Event()
    real_done = Scheduler._attempt_done

    def attempt_done(self: Scheduler, ok: bool, value: Any) -> None:
        real_done(self, ok, value)
        if ok and value.spec.step == "slow":
            delivered.set()

    monkeypatch.setattr(Scheduler, "_attempt_done", attempt_done)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_here(LateSyncFlow, aioflow_root))
            await STATE.reached.wait()
            scope.cancel()
    assert scope.cancelled_caught
    STATE.release.set()
    with anyio.fail_after(TIMEOUT):
        await delivered.wait()  # slow's result reached the (finished) scheduler
    assert not STATE.after_ran
    run_ = Flow("LateSyncFlow").latest_run
    assert run_ is not None and run_.status == "cancelled"
    assert not run_["slow"].task.finished and "after" not in run_
