"""Tests of aioflow.inputs: the `inputs` of a join step and its read-only views.

Order tests make the tasks finish in the reverse of their index/branch order (each async task
waits for the event of the one after it), so order by completion and order by index differ.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aioflow import FlowFailed, FlowSpec
from aioflow.client import Run
from aioflow.inputs import Inputs, InputView, JoinInput
from aioflow.testing import run_in_temp_store

MakeFlow = Callable[[str], type[FlowSpec]]

REVERSED_FOREACH = """
import asyncio

from aioflow import FlowSpec, step

EVENTS = {}
FINISHED = []


def event(i):
    return EVENTS.setdefault(i, asyncio.Event())


class OrderFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["a", "b", "c", "d"]
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        if self.index < len(self.items) - 1:
            await event(self.index + 1).wait()  # the next index finishes first
        self.value = self.input.upper()
        FINISHED.append(self.index)
        event(self.index).set()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.indexes = [i.index for i in inputs]
        self.items_seen = [i.input for i in inputs]
        self.stacks = [i.foreach_stack() for i in inputs]
        self.length = len(inputs)
        self.first = inputs[0].value
        self.last = inputs[-1].value
        self.sliced = [i.value for i in inputs[1:3]]
        self.by_name = inputs.work.value
        self.listed = list(inputs) == [inputs[i] for i in range(len(inputs))]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_foreach_inputs_come_in_index_order(make_flow: MakeFlow, aioflow_root: Path) -> None:
    flow = make_flow(REVERSED_FOREACH)
    run = await run_in_temp_store(flow, aioflow_root)
    assert sys.modules[flow.__module__].FINISHED == [3, 2, 1, 0]  # type: ignore[attr-defined]
    data = run["join"].task.data
    assert data.values == ["A", "B", "C", "D"]
    assert data.indexes == [0, 1, 2, 3]
    assert data.items_seen == ["a", "b", "c", "d"]
    assert data.stacks == [[(i, 4, v)] for i, v in enumerate("abcd")]
    assert data.length == 4
    assert (data.first, data.last, data.sliced) == ("A", "D", ["B", "C"])
    assert data.by_name == "D"  # for a foreach join, the step's name gives the last input
    assert data.listed is True


REVERSED_BRANCHES = """
import asyncio

from aioflow import FlowSpec, step

EVENTS = {}
FINISHED = []


def event(name):
    return EVENTS.setdefault(name, asyncio.Event())


class BranchOrderFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.zeta, self.alpha, self.mid)

    @step
    async def zeta(self):
        await event("alpha").wait()
        self.which = "zeta"
        FINISHED.append(self.which)
        self.next(self.join)

    @step
    async def alpha(self):
        await event("mid").wait()
        self.which = "alpha"
        FINISHED.append(self.which)
        event("alpha").set()
        self.next(self.join)

    @step
    async def mid(self):
        self.which = "mid"
        FINISHED.append(self.which)
        event("mid").set()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.order = [i.which for i in inputs]
        self.by_name = (inputs.zeta.which, inputs.alpha.which, inputs.mid.which)
        self.same_view = inputs.alpha is inputs[1]
        self.meta = [(i.index, i.input, i.foreach_stack()) for i in inputs]
        self.length = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_static_inputs_come_in_branch_order(make_flow: MakeFlow, aioflow_root: Path) -> None:
    flow = make_flow(REVERSED_BRANCHES)
    run = await run_in_temp_store(flow, aioflow_root)
    finished = sys.modules[flow.__module__].FINISHED  # type: ignore[attr-defined]
    assert finished == ["mid", "alpha", "zeta"]
    data = run["join"].task.data
    assert data.order == ["zeta", "alpha", "mid"]
    assert data.by_name == ("zeta", "alpha", "mid")
    assert data.same_view is True
    assert data.meta == [(None, None, [])] * 3
    assert data.length == 3


JOIN_PROBE = """
from aioflow import FlowSpec, step


class ProbeFlow(FlowSpec):
    @step
    def start(self):
        self.shared = "s"
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self._hidden = 2
        self.next(self.join)

    @step
    def b(self):
        self.x = 2
        self.next(self.join)

    @step
    def join(self, inputs):
{body}
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def probe(body: str) -> str:
    return JOIN_PROBE.format(body="\n".join("        " + ln for ln in body.strip().splitlines()))


async def join_error(make_flow: MakeFlow, root: Path, body: str) -> BaseException:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(make_flow(probe(body)), root)
    assert info.value.pathspec is not None and "/join/" in info.value.pathspec
    assert info.value.__cause__ is not None
    return info.value.__cause__


async def test_unknown_step_name_on_inputs(make_flow: MakeFlow, aioflow_root: Path) -> None:
    cause = await join_error(make_flow, aioflow_root, "inputs.nope")
    assert type(cause) is AttributeError
    assert str(cause) == "No input comes from a step named 'nope'; inputs come from: a, b."


@pytest.mark.parametrize("target", ["inputs[0]", "inputs.b"])
async def test_inputs_are_read_only(make_flow: MakeFlow, aioflow_root: Path, target: str) -> None:
    cause = await join_error(make_flow, aioflow_root, f"{target}.x = 5")
    assert type(cause) is AttributeError
    step = "a" if target == "inputs[0]" else "b"
    assert str(cause) == (
        f"Inputs of a join are read-only: cannot set 'x' on the input from step *{step}*. "
        "Set it on self instead."
    )


async def test_missing_artifact_on_an_input(make_flow: MakeFlow, aioflow_root: Path) -> None:
    cause = await join_error(make_flow, aioflow_root, "inputs.b.nope")
    assert type(cause) is AttributeError
    message = str(cause)
    assert message.startswith("Input from step *b* (task ")
    assert message.endswith("has no artifact 'nope'. Its artifacts are: name, shared, x.")


async def test_input_views_read_each_tasks_artifacts(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    body = """
self.xs = [i.x for i in inputs]
self.shared_seen = [i.shared for i in inputs]
self.hidden = inputs.a._hidden
self.has_hidden_b = hasattr(inputs.b, "_hidden")
self.names = [i.artifact_names() for i in inputs]
self.kinds = (isinstance(inputs, Inputs), isinstance(inputs[0], InputView))
"""
    source = probe(body).replace(
        "from aioflow import FlowSpec, step",
        "from aioflow import FlowSpec, step\nfrom aioflow.inputs import Inputs, InputView",
    )
    run: Run = await run_in_temp_store(make_flow(source), aioflow_root)
    data: Any = run["join"].task.data
    assert data.xs == [1, 2]
    assert data.shared_seen == ["s", "s"]
    assert data.hidden == 2 and data.has_hidden_b is False
    assert data.names == [["name", "shared", "x"], ["name", "shared", "x"]]
    assert data.kinds == (True, True)


def test_inputs_sequence_without_a_run() -> None:
    loads: list[str] = []

    def load(key: str) -> Any:
        loads.append(key)
        return {"k1": [1], "k2": [2]}[key]

    frame = (1, 2, 0, "start", "items", None)
    arrivals = [
        JoinInput.of("w", 2, {"v": "k1"}, (frame,)),
        JoinInput.of("w", 3, {"v": "k2"}, ((1, 2, 1, "start", "items", None),)),
    ]
    inputs = Inputs(arrivals, load)
    assert inputs._views == [None, None]  # no view is made before one is asked for
    assert list(inputs.manifests()) == [{"v": "k1"}, {"v": "k2"}]
    assert inputs._views == [None, None]
    views = list(inputs)
    assert all(isinstance(v, InputView) for v in views) and list(inputs) == views
    assert inputs[1] is views[1] and inputs[-1] is views[1] and inputs[:1] == views[:1]
    assert inputs.w is views[1]
    assert [v.index for v in inputs] == [0, 1]
    assert [v.input for v in inputs] == [None, None]  # no item key recorded
    assert loads == []
    assert views[0].v == [1] and views[0].v is views[0].v  # decoded once per view
    assert loads == ["k1"]
    with pytest.raises(AttributeError):
        inputs._private  # noqa: B018
    assert repr(inputs) == "<inputs: 2 from w>"
    assert repr(views[0]) == "<input from w/2>"


def test_arrivals_of_one_join_share_their_artifact_names() -> None:
    # A join after a foreach of a million tasks keeps a million arrivals: their names are one
    # tuple, and each keeps only its keys.
    first = JoinInput.of("w", 2, {"name": "k0", "x": "k1"}, ())
    second = JoinInput.of("w", 3, {"name": "k0", "x": "k2"}, (), first.names)
    assert second.names is first.names and second.keys == ("k0", "k2")
    assert second.manifest == {"name": "k0", "x": "k2"}
    other = JoinInput.of("w", 4, {"name": "k0", "y": "k3"}, (), first.names)
    assert other.names == ("name", "y") and other.manifest == {"name": "k0", "y": "k3"}


async def test_a_foreach_join_keeps_one_names_tuple_for_all_its_inputs(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = """
from aioflow import FlowSpec, step

class F(FlowSpec):
    @step
    def start(self):
        self.items = list(range(50))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.shared = len({id(a.names) for a in inputs._arrivals})
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    run: Run = await run_in_temp_store(make_flow(source), aioflow_root)
    assert run["join"].task.data.shared == 1
    assert run["join"].task.data.total == sum(range(50))
