"""`aioflow.testing.run_step`: one step body with given state, no store, errors as a run's.

Each error case is checked against a whole run of the same flow: the exception run_step raises
is the one the run's FlowFailed carries, type and message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aioflow import FlowFailed, run_flow_sync
from aioflow.exceptions import (
    InvalidNextException,
    ParameterError,
    UnhandledInMergeArtifactsException,
)
from aioflow.flowspec import FlowSpec
from aioflow.store import Store
from aioflow.testing import run_step

FLOW = """
from aioflow import FlowSpec, Parameter, step


class StepFlow(FlowSpec):
    scale = Parameter("scale", default=10)
    LIMIT = 3

    @step
    def start(self):
        self.rows = [1, 2, 3]
        print("rows ready")
        self.next(self.square, foreach="rows")

    @step
    async def square(self):
        self.value = self.input * self.input * self.scale
        self.position = self.index
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.values = sorted(i.value for i in inputs)
        self.next(self.route)

    @step
    def route(self):
        self.mode = "big" if max(self.values) > self.LIMIT else "small"
        self.next({"big": self.big, "small": self.small}, condition="mode")

    @step
    def big(self):
        self.shared = 1
        self.label = "big"
        self.next(self.fork)

    @step
    def small(self):
        self.label = "small"
        self.next(self.fork)

    @step
    def fork(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left"
        self.common = 5
        self.next(self.merge)

    @step
    def right(self):
        self.side = "right"
        self.common = 5
        self.next(self.merge)

    @step
    def merge(self, inputs):
        self.merge_artifacts(inputs, exclude=["side"])
        self.sides = [i.side for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture
def flow(make_flow: Callable[[str], type[FlowSpec]]) -> type[FlowSpec]:
    return make_flow(FLOW)


def test_a_linear_step_returns_what_it_set_and_its_foreach(flow: type[FlowSpec]) -> None:
    result = run_step(flow, "start")
    assert result.artifacts == {"rows": [1, 2, 3]}
    assert result.next == ("square",) and result.foreach == "rows"
    assert result.items == [1, 2, 3] and result.stdout == ["rows ready"]
    assert result.data["scale"] == 10 and result.data["LIMIT"] == 3  # the run's own artifacts


def test_a_foreach_child_gets_input_and_index(flow: type[FlowSpec]) -> None:
    result = run_step(flow, "square", input=3, index=2, artifacts={"scale": 2})
    assert result.artifacts == {"value": 18, "position": 2}
    assert result.next == ("gather",) and result.items is None


async def test_an_async_step_from_an_async_test(flow: type[FlowSpec]) -> None:
    assert run_step(flow, "square", input=2).artifacts["value"] == 40


def test_a_foreach_join_and_a_switch(flow: type[FlowSpec]) -> None:
    gathered = run_step(flow, "gather", inputs=[{"value": 9}, {"value": 1}])
    assert gathered.artifacts == {"values": [1, 9]}
    routed = run_step(flow, "route", artifacts={"values": [1, 2]})
    assert routed.next == ("small",) and routed.condition == "mode"


def test_a_join_with_merge_artifacts(flow: type[FlowSpec]) -> None:
    result = run_step(
        flow, "merge", inputs=[{"side": "left", "common": 5}, {"side": "right", "common": 5}]
    )
    assert result.artifacts == {"common": 5, "sides": ["left", "right"]}


def _run_failure(flow: type[FlowSpec]) -> BaseException:
    with pytest.raises(FlowFailed) as info:
        run_flow_sync(flow, root=Store.memory(), quiet=True)
    assert info.value.__cause__ is not None
    return info.value.__cause__


def _same_error(raised: pytest.ExceptionInfo[Any], in_run: BaseException) -> None:
    assert type(raised.value) is type(in_run)
    assert str(raised.value) == str(in_run)


def test_a_merge_conflict_is_the_runs_error(make_flow: Callable[[str], type[FlowSpec]]) -> None:
    flow = make_flow(FLOW.replace("self.common = 5\n        self.next(self.merge)\n\n    @step\n"
                                  "    def right", "self.common = 6\n        self.next("
                                  "self.merge)\n\n    @step\n    def right"))  # fmt: skip
    in_run = _run_failure(flow)
    with pytest.raises(UnhandledInMergeArtifactsException) as raised:
        run_step(flow, "merge", inputs=[{"side": "l", "common": 6}, {"side": "r", "common": 5}])
    _same_error(raised, in_run)


def test_a_bad_transition_is_the_runs_error(make_flow: Callable[[str], type[FlowSpec]]) -> None:
    flow = make_flow(FLOW.replace("self.rows = [1, 2, 3]", "self.rows = 7"))
    in_run = _run_failure(flow)
    with pytest.raises(InvalidNextException) as raised:
        run_step(flow, "start")
    _same_error(raised, in_run)


def test_the_steps_own_error_is_raised(flow: type[FlowSpec]) -> None:
    with pytest.raises(TypeError):
        run_step(flow, "square", input="x")  # "x" * "x"


def test_mistakes_in_the_call_are_clear(flow: type[FlowSpec]) -> None:
    with pytest.raises(ParameterError, match="has no step 'nope'"):
        run_step(flow, "nope")
    with pytest.raises(ParameterError, match="is a join: give its inputs"):
        run_step(flow, "merge")
    with pytest.raises(ParameterError, match="'scale'"):  # checked as a run checks it
        run_step(flow, "start", artifacts={"scale": "ten"})
