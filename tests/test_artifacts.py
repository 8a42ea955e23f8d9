"""Tests of artifacts end to end: what a task persists, what it inherits, when values are decoded.

Covers aioflow.runtime.artifacts (the persist rules and encoding errors) through real runs, and
the lazy artifact reads of aioflow.flowspec that keep untouched artifacts undecoded and branches
isolated.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioflow import FlowFailed, FlowSpec
from aioflow.exceptions import ArtifactEncodingError
from aioflow.store import SMALL
from aioflow.testing import run_in_temp_store

MakeFlow = Callable[[str], type[FlowSpec]]

FLOW_NOT_SERIALIZABLE = (
    "Flows can't be serialized. Maybe you tried to assign *self* or one of the *inputs* to an "
    "attribute? Instead of serializing the whole flow, you should choose specific attributes, "
    "e.g. *input.some_var*, to be stored."
)


async def run_failing(flow: type[FlowSpec], root: Path) -> tuple[FlowFailed, BaseException]:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(flow, root)
    assert info.value.__cause__ is not None
    return info.value, info.value.__cause__


# -- what is persisted ------------------------------------------------------------------------

PERSIST = """
import functools
import threading

from aioflow import FlowSpec, step


def helper():
    return "helper"


class Thing:
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return type(other) is Thing and other.value == self.value


class Doubler:
    def __call__(self, x):
        return 2 * x


class ArtFlow(FlowSpec):
    @step
    def start(self):
        self.public = 1
        self._single = "single"
        self.__mangled = "mangled"
        setattr(self, "__dunder__", "dunder")
        setattr(self, "__x", "x")
        self.func = helper
        self.lam = lambda: 1
        self.meth = self.a
        self.partial = functools.partial(max, 10)
        self.cls = Thing
        self.obj = Thing(3)
        self.callable_obj = Doubler()
        self.next(self.a)

    @step
    def a(self):
        self.seen = (
            self._single,
            self.__mangled,
            self.partial(3),
            self.cls(5).value,
            self.obj.value,
            self.callable_obj(21),
            hasattr(self, "func"),
            hasattr(self, "lam"),
            hasattr(self, "meth"),
        )
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_persist_rules(make_flow: MakeFlow, aioflow_root: Path) -> None:
    run = await run_in_temp_store(make_flow(PERSIST), aioflow_root)
    task = run["start"].task
    stored = set(task.manifest)
    assert {"public", "_single", "_ArtFlow__mangled", "partial", "cls", "obj", "callable_obj"} <= (
        stored
    )
    assert {"func", "lam", "meth", "__dunder__", "__x", "__mangled"}.isdisjoint(stored)
    assert task["_single"].data == "single"
    assert task["_ArtFlow__mangled"].data == "mangled"
    assert task["partial"].data(1) == 10
    assert task["obj"].data.value == 3
    assert task["callable_obj"].data(4) == 8
    assert task["cls"].data.__name__ == "Thing"
    assert run["a"].task.data.seen == ("single", "mangled", 10, 5, 3, 42, False, False, False)


async def test_underscore_artifacts_are_hidden_from_listings(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    run = await run_in_temp_store(make_flow(PERSIST), aioflow_root)
    task = run["start"].task
    listed = [artifact.id for artifact in task]
    assert "public" in listed and "obj" in listed
    assert not any(name.startswith("_") for name in listed)
    assert [a.id for a in task.artifacts] == listed
    assert "_single" not in repr(task.data) and "public" in repr(task.data)
    assert "_single" in task and "_single" in task.data  # stored, only hidden


UNENCODABLE = """
import threading

from aioflow import FlowSpec, step


class UnFlow(FlowSpec):
    @step
    def start(self):
        self.fine = "kept"
        self.bad = {value}
        self.also_fine = [1, 2]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize(
    "value", ["(i for i in range(3))", "threading.Lock()", "[threading.Lock()]"]
)
async def test_unencodable_artifact_fails_the_task(
    make_flow: MakeFlow, aioflow_root: Path, value: str
) -> None:
    failed, cause = await run_failing(
        make_flow(UNENCODABLE.replace("{value}", value)), aioflow_root
    )
    assert type(cause) is ArtifactEncodingError
    message = str(cause)
    assert message.startswith("Artifact 'bad' set in step *start* cannot be stored: ")
    assert "cannot be pickled" in message
    assert cause.artifact == "bad" and cause.step == "start"  # type: ignore[attr-defined]
    assert failed.pathspec is not None and failed.pathspec.endswith("/start/1")
    assert failed.run is not None
    task = failed.run["start"].task
    assert not task.successful
    assert task.data.fine == "kept" and task.data.also_fine == [1, 2]
    assert "bad" not in task
    assert "end" not in failed.run


SELF_STORE = """
from aioflow import FlowSpec, step


class SelfFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        {in_a}
        self.next(self.join)

    @step
    def b(self):
        self.x = 2
        self.next(self.join)

    @step
    def join(self, inputs):
        {in_join}
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize(
    ("in_a", "in_join", "failing_step", "artifact"),
    [
        ("self.me = self", "pass", "a", "me"),
        ("self.in_list = [1, self]", "pass", "a", "in_list"),
        ("pass", "self.saved = inputs[0]", "join", "saved"),
        ("pass", "self.saved = inputs.b", "join", "saved"),
        ("pass", "self.saved = {'all': inputs}", "join", "saved"),
        ("pass", "self.saved = inputs", "join", "saved"),
    ],
)
async def test_storing_the_flow_or_inputs_gives_metaflows_message(
    make_flow: MakeFlow,
    aioflow_root: Path,
    in_a: str,
    in_join: str,
    failing_step: str,
    artifact: str,
) -> None:
    source = SELF_STORE.replace("{in_a}", in_a).replace("{in_join}", in_join)
    failed, cause = await run_failing(make_flow(source), aioflow_root)
    assert type(cause) is ArtifactEncodingError
    assert str(cause) == (
        f"Artifact '{artifact}' set in step *{failing_step}* cannot be stored: "
        + FLOW_NOT_SERIALIZABLE
    )
    assert failed.pathspec is not None and failed.pathspec.split("/")[2] == failing_step


async def test_failing_step_keeps_the_artifacts_it_set(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = """
from aioflow import FlowSpec, step


class FailFlow(FlowSpec):
    @step
    def start(self):
        self.inherited = "from start"
        self.next(self.work)

    @step
    def work(self):
        self.first = 1
        self.second = {"k": (1, 2)}
        self.gen = (i for i in range(2))  # unencodable: left out, the step already failed
        raise ValueError("boom")
        self.never = 1
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    failed, cause = await run_failing(make_flow(source), aioflow_root)
    assert type(cause) is ValueError and str(cause) == "boom"
    assert failed.run is not None
    task = failed.run["work"].task
    assert not task.successful
    assert task.data.first == 1
    assert task.data.second == {"k": (1, 2)}
    assert task.data.inherited == "from start"
    assert "never" not in task and "gen" not in task
    assert failed.run.end_task is None


# -- inherited artifacts are not decoded ------------------------------------------------------

COUNTED = """
from aioflow import FlowSpec, step

DECODES = []


def _rebuild(value):
    DECODES.append(value)
    return Counted(value)


class Counted:
    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return (_rebuild, (self.value,))
"""

LAZY = (
    COUNTED
    + """

class LazyFlow(FlowSpec):
    @step
    def start(self):
        self.obj = Counted("obj")
        self.big = b"x" * (SMALL + 10)
        self.next(self.a, self.b)

    @step
    def a(self):
        self.in_a = 1
        self.next(self.join)

    @step
    def b(self):
        self.in_b = 1
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.reader)

    @step
    def reader(self):
        self.value = self.obj.value
        self.next(self.end)

    @step
    def end(self):
        pass
""".replace("SMALL", str(SMALL))
)


async def test_untouched_artifacts_keep_their_key_and_are_never_decoded(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    flow = make_flow(LAZY)
    decodes = sys.modules[flow.__module__].DECODES  # type: ignore[attr-defined]
    run = await run_in_temp_store(flow, aioflow_root)
    # only `reader` read self.obj: one decode in the whole run (the client has not read it yet)
    assert decodes == ["obj"]
    steps = ["start", "a", "b", "join", "reader", "end"]
    shas = {step: run[step].task["obj"].sha for step in steps}
    assert len(set(shas.values())) == 1, shas
    big = {step: run[step].task["big"].sha for step in steps}
    assert len(set(big.values())) == 1
    assert run["end"].task.data.value == "obj"
    assert run["end"].task.data.obj.value == "obj"
    assert decodes == ["obj", "obj"]


async def test_foreach_children_decode_only_their_item(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = (
        COUNTED
        + """

class ItemFlow(FlowSpec):
    @step
    def start(self):
        self.items = [Counted(i) for i in range(4)]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.value = self.input.value
        self.again = self.input.value
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    flow = make_flow(source)
    decodes = sys.modules[flow.__module__].DECODES  # type: ignore[attr-defined]
    run = await run_in_temp_store(flow, aioflow_root)
    assert sorted(decodes) == [0, 1, 2, 3]
    assert run["join"].task.data.values == [0, 1, 2, 3]
    item_shas = {t["items"].sha for t in run["work"]}
    assert item_shas == {run["start"].task["items"].sha}


# -- isolation between tasks ------------------------------------------------------------------

ISOLATION = """
import numpy as np

from aioflow import FlowSpec, step


class IsoFlow(FlowSpec):
    @step
    def start(self):
        self.lst = [0]
        self.st = {0}
        self.small_arr = np.zeros(4)
        self.big_arr = np.zeros(SIZE)
        self.next(self.a, self.b)

    def mutate(self, tag):
        self.before = (list(self.lst), sorted(self.st), float(self.small_arr.sum()),
                       float(self.big_arr.sum()))
        self.lst.append(tag)
        self.st.add(tag)
        self.small_arr += tag
        self.big_arr[:] = tag

    @step
    def a(self):
        self.mutate(1)
        self.next(self.join)

    @step
    def b(self):
        self.mutate(2)
        self.next(self.join)

    @step
    def join(self, inputs):
        inputs[0].lst.append("join")
        inputs[0].big_arr[:] = 7
        self.seen = [(i.lst, float(i.big_arr[0])) for i in inputs]
        self.again = [(i.lst, float(i.big_arr[0])) for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_branches_never_see_each_others_mutations(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    size = SMALL // 8 + 100  # a float64 array larger than SMALL goes to the file store
    run = await run_in_temp_store(make_flow(ISOLATION.replace("SIZE", str(size))), aioflow_root)
    for step, tag in (("a", 1), ("b", 2)):
        data = run[step].task.data
        assert data.before == ([0], [0], 0.0, 0.0)
        assert data.lst == [0, tag]
        assert data.st == {0, tag}
        assert data.small_arr.tolist() == [tag] * 4
        assert data.big_arr.shape == (size,) and float(data.big_arr.min()) == tag
    start = run["start"].task.data
    assert start.lst == [0] and start.st == {0}
    assert float(start.big_arr.max()) == 0.0 and float(start.small_arr.max()) == 0.0
    # a view caches its value for the join, so both reads see the join's own mutation
    assert run["join"].task.data.seen == [([0, 1, "join"], 7.0), ([0, 2], 2.0)]
    assert run["join"].task.data.again == run["join"].task.data.seen
    assert run["a"].task.data.lst == [0, 1]


async def test_sibling_foreach_tasks_are_isolated(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = """
from aioflow import FlowSpec, step


class ForeachIso(FlowSpec):
    @step
    def start(self):
        self.shared = {"seen": []}
        self.items = [{"n": 0}] * 5  # the same object five times
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.before = list(self.shared["seen"])
        self.shared["seen"].append(self.index)
        self.input["n"] += self.index
        self.item_after = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.result = [(i.before, i.shared, i.item_after) for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    run = await run_in_temp_store(make_flow(source), aioflow_root)
    assert run["join"].task.data.result == [([], {"seen": [i]}, {"n": i}) for i in range(5)]
    assert run["start"].task.data.shared == {"seen": []}


async def test_numpy_artifacts_are_writable_in_the_next_step(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = """
import numpy as np

from aioflow import FlowSpec, step


class NpFlow(FlowSpec):
    @step
    def start(self):
        self.small = np.arange(5)
        self.large = np.ones((SIZE,), dtype=np.int64)
        self.next(self.end)

    @step
    def end(self):
        self.flags = (self.small.flags.writeable, self.large.flags.writeable)
        self.small[0] = 100
        self.large[0] = 100
""".replace("SIZE", str(SMALL // 8 + 10))
    run = await run_in_temp_store(make_flow(source), aioflow_root)
    data: Any = run["end"].task.data
    assert data.flags == (True, True)
    assert int(data.small[0]) == 100 and int(data.large[0]) == 100
    assert isinstance(data.large, np.ndarray) and data.large.dtype == np.int64
    assert int(run["start"].task.data.large[0]) == 1
