"""Tests of aioflow.flowspec: self.next() at run time, merge_artifacts, joins, foreach state,
read-only parameters and constants.

Every flow is written to a temp file (the graph is read from source) and run in a fresh store.
Run-time `self.next()` errors are reached through calls that are not the step's last statement
(the static lint already rejects an invalid final call).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aioflow import FlowFailed, FlowSpec
from aioflow.client import Run
from aioflow.exceptions import (
    AioflowException,
    MergeArtifactsException,
    MissingInMergeArtifactsException,
    ReadOnlyArtifactError,
    TransitionError,
    UnhandledInMergeArtifactsException,
)
from aioflow.testing import run_in_temp_store

MakeFlow = Callable[[str], type[FlowSpec]]

HEADER = "from aioflow import FlowSpec, Parameter, step\n"


async def run_ok(make_flow: MakeFlow, root: Path, source: str, **params: Any) -> Run:
    return await run_in_temp_store(make_flow(HEADER + source), root, **params)


async def run_failing(
    make_flow: MakeFlow, root: Path, source: str, **kwargs: Any
) -> tuple[FlowFailed, BaseException]:
    """Run a flow that must fail; return the FlowFailed and the step's exception."""
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(make_flow(HEADER + source), root, **kwargs)
    cause = info.value.__cause__
    assert cause is not None
    return info.value, cause


async def next_error(make_flow: MakeFlow, root: Path, source: str, **kwargs: Any) -> str:
    """Message of the TransitionError a failing run's start step raised."""
    failed, cause = await run_failing(make_flow, root, source, **kwargs)
    assert type(cause) is TransitionError, repr(cause)
    assert failed.pathspec is not None and failed.pathspec.split("/")[2] == "start"
    return str(cause)


LINEAR = """
class F(FlowSpec):
    @step
    def start(self):
{body}
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def linear(body: str) -> str:
    lines = body.strip("\n").splitlines()
    return LINEAR.format(body="\n".join("        " + line for line in lines))


# -- self.next() errors -----------------------------------------------------------------------


async def test_next_unknown_keyword_argument(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(
        make_flow, aioflow_root, linear("if True:\n    self.next(self.end, bogus=1, other=2)")
    )
    assert msg == "Step *start* passes an unknown keyword argument 'bogus' to self.next()."


async def test_next_called_twice(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(make_flow, aioflow_root, linear("self.next(self.end)"))
    assert msg == (
        "Multiple self.next() calls detected in step *start*. Call self.next() only once."
    )


async def test_a_failed_next_call_does_not_count_as_a_call(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    body = """
try:
    self.next()
except Exception as exc:
    self.first_error = type(exc).__name__
"""
    run = await run_ok(make_flow, aioflow_root, linear(body))
    assert run.successful
    assert run["start"].task.data.first_error == "TransitionError"


async def test_next_without_arguments(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(make_flow, aioflow_root, linear("if True:\n    self.next()"))
    assert msg == (
        "Step *start* has an invalid self.next() transition. Specify at least one step "
        "function as an argument in self.next()."
    )


@pytest.mark.parametrize(
    ("call", "position"),
    [("self.next(len)", 1), ("self.next('end')", 1), ("self.next(self.end, 3)", 2)],
)
async def test_next_with_an_argument_that_is_not_a_method(
    make_flow: MakeFlow, aioflow_root: Path, call: str, position: int
) -> None:
    msg = await next_error(make_flow, aioflow_root, linear(f"if True:\n    {call}"))
    assert msg == (
        f"In step *start* the {position}. argument in self.next() is not a function. "
        "Make sure all arguments in self.next() are methods of the Flow class."
    )


async def test_next_to_a_method_of_another_class(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = (
        linear("if True:\n    self.next(Other().elsewhere)")
        + """
class Other:
    def elsewhere(self):
        pass
"""
    )
    msg = await next_error(make_flow, aioflow_root, source)
    assert msg == "Step *start* specifies a self.next() transition to an unknown step, *elsewhere*."


async def test_next_with_a_dict_but_no_condition(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(
        make_flow, aioflow_root, linear("if True:\n    self.next({'a': self.end})")
    )
    assert msg == (
        "Step *start* has an invalid self.next() transition. Dictionary argument requires "
        "'condition' parameter."
    )


SWITCH_SHAPE = (
    "Step *start* has an invalid self.next() transition. When using 'condition', the "
    "transition must be to a single, non-empty dictionary mapping condition values to step "
    "methods."
)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("self.next({}, condition='mode')", SWITCH_SHAPE),
        ("self.next(self.end, condition='mode')", SWITCH_SHAPE),
        ("self.next({'a': self.end}, {'b': self.end}, condition='mode')", SWITCH_SHAPE),
        (
            "self.next({'a': self.end}, condition=1)",
            "Step *start* has an invalid self.next() transition. The argument to 'condition' "
            "must be a string.",
        ),
        (
            "self.next({'a': self.end}, condition='mode', foreach='items')",
            "Step *start* has an invalid self.next() transition. Switch statements cannot be "
            "combined with foreach or num_parallel.",
        ),
        (
            "self.next({'a': 1}, condition='mode')",
            "Step *start* specifies a switch transition that is not a function. Make sure the "
            "value in the dictionary is a method of the Flow class.",
        ),
    ],
)
async def test_switch_shape_errors(
    make_flow: MakeFlow, aioflow_root: Path, call: str, expected: str
) -> None:
    body = f"self.mode = 'a'\nself.items = [1]\nif True:\n    {call}"
    assert await next_error(make_flow, aioflow_root, linear(body)) == expected


async def test_switch_condition_variable_missing(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(
        make_flow,
        aioflow_root,
        linear("if True:\n    self.next({'a': self.end}, condition='mode')"),
    )
    assert msg == (
        "Condition variable *self.mode* in step *start* does not exist. "
        "Make sure you set self.mode in this step."
    )


SWITCH = """
class F(FlowSpec):
    mode = Parameter("mode", default="a")

    @step
    def start(self):
        self.choice = self.mode
        self.next({"a": self.a, "b": self.b}, condition="choice")

    @step
    def a(self):
        self.took = "a"
        self.next(self.end)

    @step
    def b(self):
        self.took = "b"
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_switch_takes_the_case_of_the_condition_value(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    run = await run_ok(make_flow, aioflow_root, SWITCH, mode="b")
    assert run["end"].task.data.took == "b"
    assert "a" not in run


async def test_unknown_switch_value_is_a_plain_runtime_error(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    failed, cause = await run_failing(make_flow, aioflow_root, SWITCH, mode="c")
    assert type(cause) is RuntimeError
    assert str(cause) == (
        "Switch condition variable 'choice' has value 'c' which is not in the available "
        "cases: ['a', 'b']"
    )
    assert failed.pathspec is not None and failed.pathspec.endswith("/start/1")


FOREACH_CALL = linear("{setup}\nif True:\n    self.next(self.end, foreach='items')")


async def test_foreach_variable_missing(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(make_flow, aioflow_root, FOREACH_CALL.format(setup="pass"))
    assert msg == (
        "Foreach variable *self.items* in step *start* does not exist. Check your variable."
    )


async def test_foreach_variable_not_iterable(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(make_flow, aioflow_root, FOREACH_CALL.format(setup="self.items = 5"))
    assert msg == (
        "Foreach variable *self.items* in step *start* is not iterable. Please check "
        "details: 'int' object is not iterable"
    )


async def test_foreach_over_nothing(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(make_flow, aioflow_root, FOREACH_CALL.format(setup="self.items = []"))
    assert msg == (
        "Foreach iterator over *items* in step *start* produced zero splits. Check your variable."
    )


async def test_foreach_argument_not_a_string(make_flow: MakeFlow, aioflow_root: Path) -> None:
    body = "self.items = [1]\nif True:\n    self.next(self.end, foreach=['items'])"
    assert await next_error(make_flow, aioflow_root, linear(body)) == (
        "Step *start* has an invalid self.next() transition. The argument to 'foreach' must "
        "be a string."
    )


async def test_foreach_with_two_targets(make_flow: MakeFlow, aioflow_root: Path) -> None:
    body = "self.items = [1]\nif True:\n    self.next(self.end, self.end, foreach='items')"
    assert await next_error(make_flow, aioflow_root, linear(body)) == (
        "Step *start* has an invalid self.next() transition. Specify exactly one target for "
        "'foreach'."
    )


FOREACH = """
class F(FlowSpec):
    @step
    def start(self):
        self.items = list(range(3))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.n = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_foreach_with_too_many_splits(make_flow: MakeFlow, aioflow_root: Path) -> None:
    msg = await next_error(make_flow, aioflow_root, FOREACH, max_num_splits=2)
    assert msg == (
        "Foreach in step *start* yielded 3 child steps which is more than the current maximum "
        "of 2 children. You can raise the maximum with the keyword argument max_num_splits=."
    )


async def test_parallel_over_the_split_limit(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = FOREACH.replace(
        'self.next(self.work, foreach="items")', "self.next(self.work, num_parallel=3)"
    ).replace("    @step\n    def work", "    @parallel\n    @step\n    def work")
    source = "from aioflow import parallel\n" + source
    msg = await next_error(make_flow, aioflow_root, source, max_num_splits=2)
    assert msg == (
        "Step *start* asks for 3 parallel tasks, more than the current maximum of 2 children. "
        "You can raise the maximum with the keyword argument max_num_splits=."
    )


async def test_foreach_at_the_split_limit_runs(make_flow: MakeFlow, aioflow_root: Path) -> None:
    run = await run_ok(make_flow, aioflow_root, FOREACH, max_num_splits=3)
    assert run["end"].task.data.n == 3


MISMATCH = """
class F(FlowSpec):
    go_b = Parameter("go_b", default=False)

    @step
    def start(self):
        self.items = [1, 2]
        if self.go_b:
            self.next(self.b{extra})
            return
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize(("extra", "actual"), [("", "b"), (", self.a", "b, a")])
async def test_run_time_transition_that_does_not_match_the_graph(
    make_flow: MakeFlow, aioflow_root: Path, extra: str, actual: str
) -> None:
    source = MISMATCH.replace("{extra}", extra)
    assert (await run_ok(make_flow, aioflow_root, source)).successful
    msg = await next_error(make_flow, aioflow_root, source, go_b=True)
    assert msg == (
        "Based on static analysis of the code, step *start* was expected to transition to "
        f"step(s) *a*. However, when the code was executed, self.next() was called with "
        f"*{actual}*. Make sure there is only one unconditional self.next() call in the end "
        "of your step. "
    )


async def test_run_time_foreach_where_the_graph_has_none(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    body = "self.items = [1]\nif True:\n    self.next(self.end, foreach='items')\n    return"
    msg = await next_error(make_flow, aioflow_root, linear(body))
    assert msg.startswith(
        "Based on static analysis of the code, step *start* was expected to transition to "
        "step(s) *end*."
    )


async def test_step_that_never_calls_next(make_flow: MakeFlow, aioflow_root: Path) -> None:
    failed, cause = await run_failing(make_flow, aioflow_root, linear("if True:\n    return"))
    assert type(cause) is TransitionError
    assert str(cause) == (
        "Based on static analysis of the code, step *start* was expected to transition to "
        "step(s) *end*. However, when the code was executed, self.next() was called with **. "
        "Make sure there is only one unconditional self.next() call in the end of your step. "
    )
    assert failed.run is not None
    assert "end" not in failed.run


# -- merge_artifacts --------------------------------------------------------------------------

BRANCH = """
class F(FlowSpec):
    alpha = Parameter("alpha", default=1)
    CONST = "constant"

    @step
    def start(self):
        self.before = "from start"
        self.next(self.a, self.b)

    @step
    def a(self):
{a}
        self.next(self.join)

    @step
    def b(self):
{b}
        self.next(self.join)

    @step
    def join(self, inputs):
{join}
        self.next(self.end)

    @step
    def end(self):
{end}
"""


def branch(a: str = "pass", b: str = "pass", join: str = "pass", end: str = "pass") -> str:
    def indent(code: str) -> str:
        return "\n".join("        " + line for line in code.strip("\n").splitlines())

    return BRANCH.format(a=indent(a), b=indent(b), join=indent(join), end=indent(end))


async def merge_error(make_flow: MakeFlow, root: Path, source: str) -> MergeArtifactsException:
    failed, cause = await run_failing(make_flow, root, source)
    assert isinstance(cause, MergeArtifactsException), repr(cause)
    assert failed.pathspec is not None and failed.pathspec.split("/")[2] == "join"
    return cause


CONFLICT = (
    "Step *join* cannot merge the following artifacts due to them having conflicting "
    "values:\n[{names}].\nTo remedy this issue, be sure to explicitly set those artifacts "
    "(using self.<artifact_name> = ...) prior to calling merge_artifacts."
)


async def test_merge_compares_content_not_identity(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = branch(
        a="self.x = [1, {'k': 'v'}]\nself.only_a = 'A'",
        b="self.x = [1, {'k': 'v'}]\nself.only_b = 'B'",
        join="self.merge_artifacts(inputs)",
        end="self.seen = (self.x, self.only_a, self.only_b, self.before)",
    )
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["end"].task.data.seen == ([1, {"k": "v"}], "A", "B", "from start")


@pytest.mark.parametrize(
    ("value_a", "value_b"),
    [("1", "1.0"), ("{'p': 1, 'q': 2}", "{'q': 2, 'p': 1}"), ("True", "1"), ("(1,)", "[1]")],
)
async def test_merge_conflicts_on_values_that_compare_equal(
    make_flow: MakeFlow, aioflow_root: Path, value_a: str, value_b: str
) -> None:
    source = branch(
        a=f"self.x = {value_a}", b=f"self.x = {value_b}", join="self.merge_artifacts(inputs)"
    )
    cause = await merge_error(make_flow, aioflow_root, source)
    assert type(cause) is UnhandledInMergeArtifactsException
    assert str(cause) == CONFLICT.format(names="x")
    assert cause.artifact_names == ["x"]  # type: ignore[attr-defined]


async def test_merge_conflict_lists_every_conflicting_name_once(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = """
class F(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input
        self.same = "same"
        self._priv = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    cause = await merge_error(make_flow, aioflow_root, source)
    # deliberate difference: Metaflow repeats a name once per differing input
    assert cause.artifact_names == ["x", "_priv"]  # type: ignore[attr-defined]
    assert str(cause) == CONFLICT.format(names="x, _priv")


async def test_merge_leaves_names_already_set_alone(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = branch(
        a="self.x = 1\nself.y = 'y'",
        b="self.x = 2\nself.y = 'y'",
        join="self.x = 'mine'\nself.merge_artifacts(inputs)",
        end="self.seen = (self.x, self.y, self.alpha, self.CONST)",
    )
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["end"].task.data.seen == ("mine", "y", 1, "constant")


async def test_merge_skips_excluded_names(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = branch(
        a="self.x = 1\nself.y = 'y'",
        b="self.x = 2\nself.y = 'y'",
        join="self.merge_artifacts(inputs, exclude=['x', 'not_anywhere'])",
        end="self.seen = (hasattr(self, 'x'), self.y)",
    )
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["end"].task.data.seen == (False, "y")


async def test_merge_include_merges_only_those_names(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = branch(
        a="self.x = 1\nself.y = 'y'\nself.z = 'z'\nself.only_a = 'A'",
        b="self.x = 2\nself.y = 'y'\nself.z = 'z'",
        join="self.merge_artifacts(inputs, include=['y', 'only_a', 'alpha'])",
        end="self.seen = sorted(n for n in ('x', 'y', 'z', 'only_a') if hasattr(self, n))",
    )
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["end"].task.data.seen == ["only_a", "y"]
    assert run["join"].task.data.only_a == "A"


async def test_merge_include_and_exclude_together(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = branch(join="self.merge_artifacts(inputs, include=['a'], exclude=['b'])")
    cause = await merge_error(make_flow, aioflow_root, source)
    assert type(cause) is MergeArtifactsException
    assert str(cause) == "`exclude` and `include` are mutually exclusive in merge_artifacts"


async def test_merge_include_of_missing_names(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = branch(
        a="self.only_a = 1",
        join="self.merge_artifacts(inputs, include=['only_a', 'nope', 'nope2', 'alpha'])",
    )
    cause = await merge_error(make_flow, aioflow_root, source)
    assert type(cause) is MissingInMergeArtifactsException
    assert cause.artifact_names == ["nope", "nope2"]  # type: ignore[attr-defined]
    assert str(cause) == (
        "Step *join* specifies that [only_a, nope, nope2, alpha] should be merged but "
        "[nope, nope2] are not present.\nTo remedy this issue, make sure that the values "
        "specified in only come from at least one branch"
    )


async def test_merge_reports_conflicts_before_missing_names(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    source = branch(
        a="self.x = 1", b="self.x = 2", join="self.merge_artifacts(inputs, include=['x', 'nope'])"
    )
    cause = await merge_error(make_flow, aioflow_root, source)
    assert type(cause) is UnhandledInMergeArtifactsException
    assert cause.artifact_names == ["x"]  # type: ignore[attr-defined]


async def test_merge_is_all_or_nothing(make_flow: MakeFlow, aioflow_root: Path) -> None:
    join = """
try:
    self.merge_artifacts(inputs)
except Exception as exc:
    self.error = type(exc).__name__
self.merged = [n for n in ('x', 'y', 'only_a') if hasattr(self, n)]
try:
    self.merge_artifacts(inputs, include=['y', 'nope'])
except Exception as exc:
    self.error2 = type(exc).__name__
self.merged2 = [n for n in ('x', 'y', 'only_a') if hasattr(self, n)]
"""
    source = branch(
        a="self.x = 1\nself.y = 'y'\nself.only_a = 'A'", b="self.x = 2\nself.y = 'y'", join=join
    )
    run = await run_ok(make_flow, aioflow_root, source)
    data = run["join"].task.data
    assert data.error == "UnhandledInMergeArtifactsException"
    assert data.merged == []
    assert data.error2 == "MissingInMergeArtifactsException"
    assert data.merged2 == []


async def test_merge_includes_underscore_artifacts(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = branch(
        a="self._same = 's'\nself.__mangled = 'm'",
        b="self._same = 's'\nself.__mangled = 'm'",
        join="self.merge_artifacts(inputs)",
        end="self.seen = (self._same, self.__mangled)",
    )
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["end"].task.data.seen == ("s", "m")

    conflicting = branch(
        a="self._priv = 1", b="self._priv = 2", join="self.merge_artifacts(inputs)"
    )
    cause = await merge_error(make_flow, aioflow_root, conflicting)
    assert cause.artifact_names == ["_priv"]  # type: ignore[attr-defined]


async def test_merge_include_underscore_artifact(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = branch(
        a="self._priv = 1\nself.x = 1",
        b="self._priv = 1\nself.x = 2",
        join="self.merge_artifacts(inputs, include=['_priv'])",
        end="self.seen = self._priv",
    )
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["end"].task.data.seen == 1


async def test_merge_only_in_a_join(make_flow: MakeFlow, aioflow_root: Path) -> None:
    failed, cause = await run_failing(make_flow, aioflow_root, branch(a="self.merge_artifacts([])"))
    assert type(cause) is MergeArtifactsException
    assert str(cause) == "merge_artifacts can only be called in a join and step *a* is not a join"
    assert failed.pathspec is not None and failed.pathspec.split("/")[2] == "a"


async def test_merge_of_a_foreach_join(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = """
class F(FlowSpec):
    @step
    def start(self):
        self.items = ["p", "q"]
        self.shared = {"k": [1, 2]}
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.per_item = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, exclude=["per_item"])
        self.next(self.end)

    @step
    def end(self):
        self.seen = (self.items, self.shared, hasattr(self, "per_item"))
"""
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["end"].task.data.seen == (["p", "q"], {"k": [1, 2]}, False)


# -- what flows through a join ----------------------------------------------------------------


async def test_join_starts_with_parameters_constants_and_name_only(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    join = """
self.at_join = sorted(n for n in ('before', 'x', 'only_a') if hasattr(self, n))
self.visible = (self.alpha, self.CONST, self.name)
self.set_in_join = 'j'
"""
    end = """
self.at_end = sorted(
    n for n in ('before', 'x', 'only_a', 'at_join', 'set_in_join') if hasattr(self, n)
)
self.visible_end = (self.alpha, self.CONST, self.name, self.set_in_join)
"""
    source = branch(a="self.x = 1\nself.only_a = 'A'", b="self.x = 1", join=join, end=end)
    run = await run_ok(make_flow, aioflow_root, source, alpha=7)
    join_task = run["join"].task
    assert join_task.data.at_join == []
    assert join_task.data.visible == (7, "constant", "F")
    assert "before" not in join_task and "x" not in join_task
    end_data = run["end"].task.data
    assert end_data.at_end == ["at_join", "set_in_join"]
    assert end_data.visible_end == (7, "constant", "F", "j")
    assert run["end"].task.data.alpha == 7
    assert run["end"].task.data.CONST == "constant"
    assert run["end"].task.data.name == "F"


async def test_missing_attribute_error_names_the_flow(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    _, cause = await run_failing(make_flow, aioflow_root, branch(join="print(self.x)"))
    assert type(cause) is AttributeError
    assert str(cause) == "Flow F has no attribute 'x'"


# -- self.input, self.index, self.foreach_stack() ----------------------------------------------

NESTED = """
class F(FlowSpec):
    @step
    def start(self):
        self.record = (self.index, self.input, self.foreach_stack())
        self.outer = ["a", "b"]
        self.next(self.mid, foreach="outer")

    @step
    def mid(self):
        self.record = (self.index, self.input, self.foreach_stack())
        self.inner = [10, 20, 30]
        self.next(self.leaf, foreach="inner")

    @step
    def leaf(self):
        self.record = (self.index, self.input, self.foreach_stack())
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.record = (self.index, self.input, self.foreach_stack())
        self.seen = [(i.index, i.input, i.foreach_stack()) for i in inputs]
        self.merge_artifacts(inputs, include=["outer"])
        self.after_merge = (self.index, self.input, self.foreach_stack())
        self.next(self.after)

    @step
    def after(self):
        self.record = (self.index, self.input, self.foreach_stack())
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.record = (self.index, self.input, self.foreach_stack())
        self.seen = [(i.index, i.input) for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.record = (self.index, self.input, self.foreach_stack())
"""


def records(run: Run, step: str) -> list[Any]:
    return sorted((t.data.record for t in run[step]), key=repr)


async def test_foreach_state_in_nested_foreach(make_flow: MakeFlow, aioflow_root: Path) -> None:
    run = await run_ok(make_flow, aioflow_root, NESTED)
    assert records(run, "start") == [(None, None, [])]
    assert records(run, "mid") == [(0, "a", [(0, 2, "a")]), (1, "b", [(1, 2, "b")])]
    assert records(run, "leaf") == sorted(
        [
            (j, value, [(i, 2, outer), (j, 3, value)])
            for i, outer in enumerate("ab")
            for j, value in enumerate([10, 20, 30])
        ],
        key=repr,
    )
    # In the inner join the outer foreach variable is not on self (nothing flows through a
    # join), so as in Metaflow the item is None until it is merged.
    assert records(run, "inner_join") == [(0, None, [(0, 2, None)]), (1, None, [(1, 2, None)])]
    for task in run["inner_join"]:
        i = task.index
        outer = "ab"[i]
        assert task.data.seen == [
            (j, value, [(i, 2, outer), (j, 3, value)]) for j, value in enumerate([10, 20, 30])
        ]
        assert task.data.after_merge == (i, outer, [(i, 2, outer)])
    assert records(run, "after") == [(0, "a", [(0, 2, "a")]), (1, "b", [(1, 2, "b")])]
    assert records(run, "outer_join") == [(None, None, [])]
    assert run["outer_join"].task.data.seen == [(0, "a"), (1, "b")]
    assert records(run, "end") == [(None, None, [])]
    assert sorted(t.index for t in run["leaf"]) == [0, 0, 1, 1, 2, 2]
    assert run["end"].task.index is None


async def test_foreach_state_in_static_branches(make_flow: MakeFlow, aioflow_root: Path) -> None:
    record = "self.record = (self.index, self.input, self.foreach_stack())"
    source = branch(
        a=record,
        b=record,
        join=record + "\nself.seen = [(i.index, i.input, i.foreach_stack()) for i in inputs]",
    )
    run = await run_ok(make_flow, aioflow_root, source)
    for step in ("a", "b", "join"):
        assert run[step].task.data.record == (None, None, [])
    assert run["join"].task.data.seen == [(None, None, []), (None, None, [])]
    assert run["a"].task.index is None


async def test_foreach_item_of_any_iterable(make_flow: MakeFlow, aioflow_root: Path) -> None:
    source = """
class F(FlowSpec):
    @step
    def start(self):
        self.items = {"x": 1, "y": 2}
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.got = (self.index, self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.got = [i.got for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    run = await run_ok(make_flow, aioflow_root, source)
    assert run["join"].task.data.got == [(0, "x"), (1, "y")]


# -- read-only parameters and constants, name -------------------------------------------------

READONLY = """
class F(FlowSpec):
    alpha = Parameter("alpha", default=1)
    CONST = [1, 2]

    @step
    def start(self):
        {assignment}
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize(
    ("assignment", "name"),
    [
        ("self.alpha = 2", "alpha"),
        ("self.CONST = 3", "CONST"),
        ("setattr(self, 'CONST', 3)", "CONST"),
    ],
)
async def test_parameters_and_constants_are_read_only(
    make_flow: MakeFlow, aioflow_root: Path, assignment: str, name: str
) -> None:
    _, cause = await run_failing(
        make_flow, aioflow_root, READONLY.replace("{assignment}", assignment)
    )
    assert type(cause) is ReadOnlyArtifactError
    assert isinstance(cause, AttributeError) and isinstance(cause, AioflowException)
    # Metaflow's message, followed by what and where
    assert str(cause).startswith("Flow level attributes and Parameters are not modifiable")
    assert f"'{name}'" in str(cause) and "*start*" in str(cause)


async def test_read_only_error_can_be_caught_as_attribute_error(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    body = """try:
            self.alpha = 5
        except AttributeError:
            self.caught = True"""
    run = await run_ok(make_flow, aioflow_root, READONLY.replace("{assignment}", body), alpha=3)
    data = run["start"].task.data
    assert data.caught is True
    assert data.alpha == 3
    assert data.CONST == [1, 2]


async def test_name_can_be_assigned(make_flow: MakeFlow, aioflow_root: Path) -> None:
    body = "self.before = self.name\n        self.name = 'Renamed'\n        self.after = self.name"
    run = await run_ok(make_flow, aioflow_root, READONLY.replace("{assignment}", body))
    data = run["start"].task.data
    assert (data.before, data.after, data.name) == ("F", "Renamed", "Renamed")


async def test_foreach_over_a_variable_holding_the_name(make_flow, aioflow_root) -> None:
    from aioflow.testing import run_in_temp_store

    flow = make_flow(
        """
        from aioflow import FlowSpec, step

        class DynamicForeachFlow(FlowSpec):
            @step
            def start(self):
                self.things = [1, 2, 3]
                var = "things"
                self.next(self.a, foreach=var)

            @step
            def a(self):
                self.v = self.input * 2
                self.next(self.join)

            @step
            def join(self, inputs):
                self.vs = [i.v for i in inputs]
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = await run_in_temp_store(flow, aioflow_root)
    assert run["end"].task.data.vs == [2, 4, 6]
