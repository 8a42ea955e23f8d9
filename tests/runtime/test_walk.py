"""The walk's task ids and start order, which lazily made foreach children must not change.

A foreach's children are made when a slot takes them (`walk.Fanout`), not at the split. Each
flow here records, at the top of every body, its step, task id and foreach indexes; the
expected sequences are what the scheduler produced when it still spawned every child at the
split (recorded on that code, commit 46b513d), so a change of ids or of the FIFO order of
spawns fails. Bodies run on the loop (async, or sync inline in a memory store), so the order is
deterministic for a given max_workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aioflow import FlowSpec, current, parallel, step
from aioflow.api import run_flow
from aioflow.runtime.executors import InlineExecutor, registry
from aioflow.store import Store

#: (step, task id, foreach indexes) of every body, in the order the bodies started.
SEEN: list[tuple[str, int, tuple[int, ...]]] = []


@pytest.fixture(autouse=True)
def _fresh_seen() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


def seen(flow: FlowSpec) -> None:
    """Record where this body sits: its step, task id, and the indexes of its foreaches."""
    indexes = tuple(index for index, _, _ in flow.foreach_stack())
    SEEN.append((current.step_name, int(current.task_id), indexes))


async def run_inline(flow_cls: type[FlowSpec], max_workers: int, **kwargs: Any) -> None:
    """Run in a memory store with sync bodies inline on the loop: one deterministic order."""
    with registry.overriding(thread=InlineExecutor):
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


# What the scheduler did when it spawned every foreach child at its split (commit 46b513d).
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
        start:1: a:2:0 a:3:1 b:5:01 b:6:02 c:7:01 c:8:02 b:9:10 b:10:11 b:11:12 c:12:10
        c:13:11 c:14:12 bj:15:1 b:4:00 c:16:00 bj:17:0 aj:18: end:19:
    """,
    ("NestedFlow", 16): """
        start:1: a:2:0 a:3:1 b:4:00 b:5:01 b:6:02 b:7:10 b:8:11 b:9:12 c:10:00 c:11:01
        c:12:02 c:13:10 c:14:11 c:15:12 bj:16:0 bj:17:1 aj:18: end:19:
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
