"""The walk's task ids and start order, which lazily made foreach children must not change.

A foreach's children are made when a slot takes them (`walk.Fanout`), not at the split. Each
flow here records, at the top of every body, its step, task id and foreach indexes; the
expected sequences are what the scheduler produced when it still spawned every child at the
split (recorded on that code, commit 46b513d), so a change of ids or of the FIFO order of
spawns fails. Bodies run on the loop (async, or sync inline in a memory store), and so does
what an async body hands to a thread, so the order is deterministic for a given max_workers.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from anyio.lowlevel import checkpoint

from aioflow import FlowFailed, FlowSpec, Parameter, current, parallel, resume_flow, step
from aioflow.api import run_flow
from aioflow.runtime.executors import InlineExecutor, registry
from aioflow.runtime.executors.thread_lane import ThreadLane
from aioflow.runtime.task import TaskSpec
from aioflow.runtime.walk import Fanout
from aioflow.store import Store
from aioflow.testing import run_in_temp_store

#: (step, task id, foreach indexes) of every body, in the order the bodies started.
SEEN: list[tuple[str, int, tuple[int, ...]]] = []


@pytest.fixture(autouse=True)
def _fresh_seen() -> Iterator[None]:
    SEEN.clear()
    MEASURED.clear()
    yield
    SEEN.clear()
    MEASURED.clear()


def seen(flow: FlowSpec) -> None:
    """Record where this body sits: its step, task id, and the indexes of its foreaches."""
    indexes = tuple(index for index, _, _ in flow.foreach_stack())
    SEEN.append((current.step_name, int(current.task_id), indexes))


async def _on_the_loop(lane: ThreadLane, fn: Callable[..., Any], *args: Any) -> Any:
    """`ThreadLane.run` for these runs: a checkpoint (where a hop to a thread suspends the
    caller), then `fn` on the loop."""
    await checkpoint()
    return fn(*args)


async def run_inline(flow_cls: type[FlowSpec], max_workers: int, **kwargs: Any) -> None:
    """Run in a memory store with sync bodies inline on the loop, and what an async body hands
    to a thread (the snapshot of a list it set) run on the loop too: one deterministic order.

    In worker threads, two such snapshots may end in either order, and so may the foreaches
    they split, when the process has two threads or more (earlier tests leave them).
    """
    with (
        registry.overriding(thread=InlineExecutor),
        mock.patch.object(ThreadLane, "run", _on_the_loop),
    ):
        await run_flow(flow_cls, root=Store.memory(), quiet=True, max_workers=max_workers, **kwargs)


def short(order: list[tuple[str, int, tuple[int, ...]]]) -> list[str]:
    """`step:id:indexes` of each body (the expected values' format)."""
    return [f"{s}:{i}:{''.join(map(str, ix))}" for s, i, ix in order]


class NestedFlow(FlowSpec):
    @step
    def start(self):
        seen(self)
        self.xs = [0, 1]
        self.next(self.a, foreach="xs")

    @step
    async def a(self):
        seen(self)
        self.ys = [0, 1, 2]
        self.next(self.b, foreach="ys")

    @step
    def b(self):
        seen(self)
        self.next(self.c)

    @step
    async def c(self):
        seen(self)
        self.next(self.bj)

    @step
    def bj(self, inputs):
        seen(self)
        self.ids = [int(i.index) for i in inputs]
        self.next(self.aj)

    @step
    def aj(self, inputs):
        seen(self)
        self.next(self.end)

    @step
    def end(self):
        seen(self)


class ForeachInBranchFlow(FlowSpec):
    @step
    def start(self):
        seen(self)
        self.next(self.fe, self.o1)

    @step
    def fe(self):
        seen(self)
        self.items = [0, 1, 2, 3]
        self.next(self.w, foreach="items")

    @step
    async def w(self):
        seen(self)
        self.next(self.wj)

    @step
    def wj(self, inputs):
        seen(self)
        self.next(self.j)

    @step
    async def o1(self):
        seen(self)
        self.next(self.o2)

    @step
    def o2(self):
        seen(self)
        self.next(self.o3)

    @step
    async def o3(self):
        seen(self)
        self.next(self.j)

    @step
    def j(self, inputs):
        seen(self)
        self.next(self.end)

    @step
    def end(self):
        seen(self)


class SwitchInForeachFlow(FlowSpec):
    @step
    def start(self):
        seen(self)
        self.items = [0, 1, 2, 3]
        self.next(self.s, foreach="items")

    @step
    def s(self):
        seen(self)
        self.parity = "odd" if self.input % 2 else "even"
        self.next({"odd": self.odd, "even": self.even}, condition="parity")

    @step
    async def odd(self):
        seen(self)
        self.next(self.m)

    @step
    def even(self):
        seen(self)
        self.next(self.m)

    @step
    async def m(self):
        seen(self)
        self.next(self.join)

    @step
    def join(self, inputs):
        seen(self)
        self.next(self.end)

    @step
    def end(self):
        seen(self)


class RecursionFlow(FlowSpec):
    @step
    def start(self):
        seen(self)
        self.items = [1, 3, 2]
        self.next(self.loop, foreach="items")

    @step
    def loop(self):
        seen(self)
        self.left = getattr(self, "left", self.input) - 1
        self.more = "again" if self.left > 0 else "done"
        self.next({"again": self.loop, "done": self.out}, condition="more")

    @step
    async def out(self):
        seen(self)
        self.next(self.join)

    @step
    def join(self, inputs):
        seen(self)
        self.next(self.end)

    @step
    def end(self):
        seen(self)


class ParallelFlow(FlowSpec):
    @step
    def start(self):
        seen(self)
        self.next(self.fe, self.side)

    @step
    def fe(self):
        seen(self)
        self.next(self.train, num_parallel=3)

    @parallel
    @step
    def train(self):
        SEEN.append(("train", int(current.task_id), (current.parallel.node_index,)))
        self.control = current.parallel.control_task_id
        self.next(self.gather)

    @step
    def gather(self, inputs):
        seen(self)
        self.controls = sorted({i.control for i in inputs})
        self.next(self.j)

    @step
    async def side(self):
        seen(self)
        self.next(self.j)

    @step
    def j(self, inputs):
        seen(self)
        self.next(self.end)

    @step
    def end(self):
        seen(self)


# What the scheduler did when it spawned every foreach child at its split (commit 46b513d), run
# as `run_inline` runs (NestedFlow's at 3 and 16 workers were recorded with snapshots in a
# worker thread at first: an order the thread's timing chose).
EXPECTED = {
    ("NestedFlow", 1): """
        start:1: a:2:0 a:3:1 b:4:00 b:5:01 b:6:02 b:7:10 b:8:11 b:9:12 c:10:00 c:11:01
        c:12:02 c:13:10 c:14:11 c:15:12 bj:16:0 bj:17:1 aj:18: end:19:
    """,
    ("NestedFlow", 2): """
        start:1: a:2:0 a:3:1 b:4:00 b:5:01 b:6:02 c:7:00 c:8:01 c:9:02 bj:10:0 b:11:10
        b:12:11 b:13:12 c:14:10 c:15:11 c:16:12 bj:17:1 aj:18: end:19:
    """,
    ("NestedFlow", 3): """
        start:1: a:2:0 a:3:1 b:4:00 b:5:01 b:6:02 c:7:00 c:8:01 c:9:02 bj:10:0 b:11:10
        b:12:11 b:13:12 c:14:10 c:15:11 c:16:12 bj:17:1 aj:18: end:19:
    """,
    ("NestedFlow", 16): """
        start:1: a:2:0 a:3:1 b:4:00 b:5:01 b:6:02 c:7:00 c:8:01 c:9:02 bj:10:0 b:11:10
        b:12:11 b:13:12 c:14:10 c:15:11 c:16:12 bj:17:1 aj:18: end:19:
    """,
    ("ForeachInBranchFlow", 1): """
        start:1: fe:2: o1:3: w:4:0 w:5:1 w:6:2 w:7:3 o2:8: wj:9: o3:10: j:11: end:12:
    """,
    ("ForeachInBranchFlow", 2): """
        start:1: fe:2: o1:3: w:4:0 w:5:1 w:6:2 w:7:3 o2:8: wj:9: o3:10: j:11: end:12:
    """,
    ("ForeachInBranchFlow", 3): """
        start:1: fe:2: o1:3: w:4:0 w:5:1 w:6:2 w:7:3 o2:8: wj:9: o3:10: j:11: end:12:
    """,
    ("SwitchInForeachFlow", 1): """
        start:1: s:2:0 s:3:1 s:4:2 s:5:3 even:6:0 odd:7:1 even:8:2 odd:9:3 m:10:0 m:11:1
        m:12:2 m:13:3 join:14: end:15:
    """,
    ("SwitchInForeachFlow", 2): """
        start:1: s:2:0 s:3:1 s:4:2 s:5:3 even:6:0 odd:7:1 even:8:2 odd:9:3 m:10:0 m:11:1
        m:12:2 m:13:3 join:14: end:15:
    """,
    ("SwitchInForeachFlow", 3): """
        start:1: s:2:0 s:3:1 s:4:2 s:5:3 even:6:0 odd:7:1 even:8:2 odd:9:3 m:10:0 m:11:1
        m:12:2 m:13:3 join:14: end:15:
    """,
    ("RecursionFlow", 1): """
        start:1: loop:2:0 loop:3:1 loop:4:2 out:5:0 loop:6:1 loop:7:2 loop:8:1 out:9:2
        out:10:1 join:11: end:12:
    """,
    ("RecursionFlow", 2): """
        start:1: loop:2:0 loop:3:1 loop:4:2 out:5:0 loop:6:1 loop:7:2 loop:8:1 out:9:2
        out:10:1 join:11: end:12:
    """,
    ("RecursionFlow", 3): """
        start:1: loop:2:0 loop:3:1 loop:4:2 out:5:0 loop:6:1 loop:7:2 loop:8:1 out:9:2
        out:10:1 join:11: end:12:
    """,
    ("ParallelFlow", 3): """
        start:1: fe:2: side:3: train:4:0 train:5:1 train:6:2 gather:7: j:8: end:9:
    """,
    ("ParallelFlow", 4): """
        start:1: fe:2: side:3: train:4:0 train:5:1 train:6:2 gather:7: j:8: end:9:
    """,
    ("ParallelFlow", 16): """
        start:1: fe:2: side:3: train:4:0 train:5:1 train:6:2 gather:7: j:8: end:9:
    """,
}

FLOWS = {
    cls.__name__: cls
    for cls in (NestedFlow, ForeachInBranchFlow, SwitchInForeachFlow, RecursionFlow, ParallelFlow)
}


@pytest.mark.parametrize(("flow", "max_workers"), list(EXPECTED), ids=lambda v: str(v))
async def test_ids_and_start_order_are_those_of_spawning_at_the_split(
    flow: str, max_workers: int
) -> None:
    await run_inline(FLOWS[flow], max_workers)
    assert short(SEEN) == EXPECTED[(flow, max_workers)].split()


# -- a foreach's children are made when a slot takes them -------------------------------------

#: What the bodies of the flows below measured, read by the tests.
MEASURED: dict[str, Any] = {}


def live_specs() -> int:
    """How many `TaskSpec`s are alive (made and not yet dropped)."""
    # type(), not isinstance(): that asks an object for its __class__, and some objects of
    # other libraries warn when asked anything (pydantic 2.0's deprecated `Extra`).
    return sum(1 for o in gc.get_objects() if type(o) is TaskSpec)


class WideFlow(FlowSpec):
    n = Parameter("n", default=200)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.index == 3:
            MEASURED["specs"] = live_specs()
        if self.index == MEASURED.get("fail_index"):
            raise ValueError("planned failure")
        self.x = -1 - self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_wide_foreach_holds_a_spec_per_running_task_not_per_item() -> None:
    # Specs alive before the run are not its own: a worker thread still running the body of
    # an earlier test's task (abandoned at a @timeout, say) holds that task's until the body
    # returns; 3 such were alive here once, in the whole suite on Python 3.12.
    gc.collect()
    others = live_specs()
    await run_inline(WideFlow, 4, n=200, max_num_splits=200)
    # the four running (or just finished), not the 200 items: spawning all at the split held
    # about 200 here
    assert MEASURED["specs"] - others <= 4 + 2


async def test_a_failing_child_stops_the_making_of_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[int] = []
    take = Fanout.take

    def counting(fanout: Fanout) -> TaskSpec:
        spec = take(fanout)
        made.append(spec.task_id)
        return spec

    monkeypatch.setattr(Fanout, "take", counting)
    store = Store.memory()
    MEASURED["fail_index"] = 5
    with registry.overriding(thread=InlineExecutor), pytest.raises(FlowFailed) as info:
        await run_flow(WideFlow, root=store, quiet=True, max_workers=2, n=50)
    run = info.value.run
    stored = sorted(int(t.id) for t in run["work"])
    # Children are made in order, one per slot taken: index 5 (task 7) failed, and the one
    # slot beside it took index 6 (task 8) at most; the other 43 were never made.
    assert made == list(range(2, made[-1] + 1))
    assert made[-1] <= 8
    assert set(stored) <= set(made) and 7 in stored
    assert "join" not in run


async def test_more_items_than_max_num_splits_fail_the_split_before_making_any() -> None:
    made: list[int] = []
    with registry.overriding(thread=InlineExecutor), pytest.raises(FlowFailed) as info:
        await run_flow(WideFlow, root=Store.memory(), quiet=True, n=30, max_num_splits=29)
    made.extend(int(t.id) for s in info.value.run for t in s)
    exc = info.value.run["start"].task.exception
    assert exc is not None and "yielded 30 child steps" in exc.exception
    assert made == [1]


async def test_resuming_a_foreach_run_clones_by_id_and_keeps_the_ids(aioflow_root: Path) -> None:
    MEASURED["fail_index"] = 5
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(WideFlow, aioflow_root, max_workers=1, n=8)
    origin = info.value.run
    assert sorted(int(t.id) for t in origin["work"]) == [2, 3, 4, 5, 6, 7]  # index 5 = task 7
    MEASURED.clear()
    run = await resume_flow(WideFlow, root=aioflow_root, quiet=True, max_workers=1)
    work = {int(t.id): (t.index, t.origin_pathspec is not None) for t in run["work"]}
    # ids as a first run gives them; the five that succeeded are clones
    assert work == {2 + i: (i, i < 5) for i in range(8)}
    assert [int(t.id) for t in run["join"]] == [10] and [int(t.id) for t in run["end"]] == [11]
    assert run["join"].task.data.total == sum(-1 - i for i in range(8))


# -- what a wide foreach holds before its join --------------------------------------------------


class MeasuredFlow(FlowSpec):
    n = Parameter("n", default=10_000)

    @step
    def start(self):
        self.items = list(range(self.n))
        gc.collect()
        tracemalloc.reset_peak()
        MEASURED["start"] = tracemalloc.get_traced_memory()[0]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = -1 - self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        MEASURED["peak"] = tracemalloc.get_traced_memory()[1]
        self.next(self.end)

    @step
    def end(self):
        pass


async def peak_over_the_foreach(root: Path, n: int) -> int:
    """The most Python memory (tracemalloc) a run of `MeasuredFlow` held over its split's."""
    tracemalloc.start()
    try:
        await run_in_temp_store(MeasuredFlow, root / str(n), n=n, max_num_splits=n)
    finally:
        tracemalloc.stop()
    return int(MEASURED["peak"] - MEASURED["start"])


async def test_a_wide_foreach_holds_few_bytes_per_task_until_its_join(aioflow_root: Path):
    """Python memory per task from the split to the join's start, at its peak.

    Per task: the growth from 2,000 tasks to 12,000 over 10,000, which leaves out what a run
    holds whatever its width (buffers, caches, the first run's imports: a warm-up run first).
    Tasks setting one int, in a SQLite store: 440-460 bytes on the morning of 2026-12-07 (the
    join's arrivals ~150: a slot in four lists and an array, and a keys tuple; the artifact's
    key ~90 and the item's ~90; the writer's cache of small blobs ~80; the join's parents tuple
    ~40); 240-280 once identity keys held small values (no blob, no cache entry); 150-230 once
    an arrival kept only the key its child set (a slot in a column) instead of a tuple of every
    key (the rest: the two keys, 56 bytes each, the parents tuple, and the rows queued for the
    writer, which vary from run to run). Spawning every child at the split and keeping a
    `JoinInput` with its own frames per arrival held 670-680. The bound, 560, fails a
    regression of either kind and leaves room for another CPython's or msgpack's object sizes.
    """
    await peak_over_the_foreach(aioflow_root, 100)
    small = await peak_over_the_foreach(aioflow_root, 2_000)
    large = await peak_over_the_foreach(aioflow_root, 12_000)
    per_task = (large - small) / 10_000
    assert per_task < 560
