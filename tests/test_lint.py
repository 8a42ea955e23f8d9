"""The linter: every check, with Metaflow's exact message, the step, the file and the line."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from aioflow import lint
from aioflow.exceptions import FlowDefinitionError, LintError
from aioflow.graph import FlowGraph

FLOWS = Path(__file__).parent / "flows_lint"


@functools.cache
def load(module: str) -> ModuleType:
    """Import the fixture file tests/flows_lint/<module>.py."""
    path = FLOWS / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"flows_lint_{module}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def line_of(module: str, cls: str, text: str) -> int:
    """The number of the first line containing `text` after `class <cls>` in a fixture file.

    `text` may be "first >> then": the first line with `then` after the first with `first`.
    """
    lines = (FLOWS / f"{module}.py").read_text().splitlines()
    pos = next(i for i, line in enumerate(lines) if line.startswith(f"class {cls}("))
    for part in text.split(" >> "):
        pos = next(i for i in range(pos, len(lines)) if part in lines[i])
    return pos + 1


def lint_error(module: str, cls: str) -> LintError:
    """Lint a fixture flow that must fail; return the error."""
    graph = FlowGraph(getattr(load(module), cls))
    with pytest.raises(LintError) as info:
        graph.lint()
    return info.value


INVALID_TRANSITION = (
    "Step *start* specifies an invalid self.next() transition. Make sure the self.next() "
    "expression matches with one of the supported transition types:\n"
    "  • Linear: self.next(self.step_name)\n"
    "  • Fan-out: self.next(self.step1, self.step2, ...)\n"
    "  • Foreach: self.next(self.step, foreach='variable')\n"
    "  • Switch: self.next({\"key\": self.step, ...}, condition='variable')\n\n"
    "For switch statements, keys must be string literals, numbers or config expressions "
    "(self.config.key_name), not variables."
)

# (module, flow class, step reported, text on the reported line, exact message)
CASES = [
    (
        "bad_basics",
        "ReservedWordFlow",
        "index",
        "def index(",
        "Step name *index* is a reserved word. Choose another name for the step.",
    ),
    ("bad_basics", "NoStartFlow", "start", "class NoStartFlow", "Add a *start* step in your flow."),
    ("bad_basics", "NoEndFlow", "end", "class NoEndFlow", "Add an *end* step in your flow."),
    (
        "bad_basics",
        "EndWithNextFlow",
        "end",
        "self.next(self.start)",
        "The *end* step should not have a step.next() transition. Just remove it.",
    ),
    (
        "bad_basics",
        "EndIsJoinFlow",
        "end",
        "def end(self, inputs)",
        "The *end* step should not be a join step (it gets an extra argument). "
        "Add a join step before it.",
    ),
    (
        "bad_basics",
        "BadNameFlow",
        "stepTwo",
        "def stepTwo(",
        "Step *stepTwo* has an invalid name. Only lowercase ascii characters, underscores, "
        "and digits are allowed.",
    ),
    (
        "bad_basics",
        "TooManyArgsFlow",
        "join",
        "def join(",
        "Step join has too many arguments. Normal steps take only 'self' as an argument. "
        "Join steps take 'self' and 'inputs'.",
    ),
    (
        "bad_basics",
        "JoinAndSplitFlow",
        "join",
        "def join(",
        "Step *join* is both a join step (it takes an extra argument) and a split step (it "
        "transitions to multiple steps). This is not allowed. Add a new step so that split "
        "and join become separate steps.",
    ),
    (
        "bad_basics",
        "JoinWithoutNextFlow",
        "join",
        "def join(",
        "Step *join* is missing a self.next() transition to the next step. Add a self.next() "
        "as the last line in the function.",
    ),
    (
        "bad_basics",
        "JoinNextByNameFlow",
        "join",
        'self.next("end")',
        INVALID_TRANSITION.replace("*start*", "*join*", 1),
    ),
    (
        "bad_basics",
        "MissingSelfFlow",
        "end",
        "def end()",
        "Step *end* is missing the 'self' argument.",
    ),
    (
        "bad_basics",
        "MissingNextFlow",
        "middle",
        "def middle(",
        "Step *middle* is missing a self.next() transition to the next step. Add a self.next() "
        "as the last line in the function.",
    ),
    (
        "bad_basics",
        "NextNotLastFlow",
        "start",
        "def start(",
        "Step *start* is missing a self.next() transition to the next step. Add a self.next() "
        "as the last line in the function.",
    ),
    ("bad_transitions", "NextOfVariableFlow", "start", "self.next(target)", INVALID_TRANSITION),
    ("bad_transitions", "ForeachTwoTargetsFlow", "start", "self.next(", INVALID_TRANSITION),
    ("bad_transitions", "EmptyNextFlow", "start", "self.next()", INVALID_TRANSITION),
    ("bad_transitions", "DictWithoutConditionFlow", "start", "self.next(", INVALID_TRANSITION),
    ("bad_transitions", "SwitchVariableKeyFlow", "start", "self.next(", INVALID_TRANSITION),
    ("bad_transitions", "SwitchConditionVariableFlow", "start", "self.next(", INVALID_TRANSITION),
    ("bad_transitions", "SwitchEmptyFlow", "start", "self.next(", INVALID_TRANSITION),
    ("bad_switch", "SwitchWithForeachFlow", "start", "self.next(", INVALID_TRANSITION),
    (
        "bad_transitions",
        "UnknownStepFlow",
        "middle",
        "self.next(self.missing)",
        "Step *middle* specifies a self.next() transition to an unknown step, *missing*.",
    ),
    (
        "bad_transitions",
        "MisspelledStepFlow",
        "start",
        "self.next(self.proces)",
        "Step *start* specifies a self.next() transition to an unknown step, *proces*. "
        "Did you mean *process*?",
    ),
    (
        "bad_transitions",
        "SwitchUnknownStepFlow",
        "start",
        "self.nowhere",
        "Step *start* specifies a self.next() transition to an unknown step, *nowhere*.",
    ),
    (
        "bad_structure",
        "LoopFlow",
        "a",
        "self.next(self.b)",
        "There is a loop in your flow: *b->a->b*. Break the loop by fixing self.next() "
        "transitions.",
    ),
    (
        "bad_structure",
        "SelfLoopFlow",
        "again",
        "def again( >> self.next(self.again)",
        "There is a loop in your flow: *again->again*. Break the loop by fixing self.next() "
        "transitions.",
    ),
    (
        "bad_structure",
        "SwitchLoopFlow",
        "check",
        '"retry": self.work',
        "There is a loop in your flow: *work->check->work*. Break the loop by fixing "
        "self.next() transitions.",
    ),
    (
        "bad_structure",
        "OrphanFlow",
        "lost",
        "def lost(",
        "Step *lost* is unreachable from the start step. Add self.next(lost) in another step "
        "or remove *lost*.",
    ),
    (
        "bad_structure",
        "EndBeforeJoinFlow",
        "end",
        "def end(",
        "Step *end* reached before a split started at step(s) *a, b* were joined. Add a join "
        "step before *end*.",
    ),
    (
        "bad_structure",
        "MergeWithoutJoinFlow",
        "merge",
        "def merge(",
        "Step *merge* closes the split at step *start* (branches *a, b*) but does not take the "
        "'inputs' argument a join step needs. Declare it as def merge(self, inputs).",
    ),
    (
        "bad_structure",
        "ForeachJoinWithoutInputsFlow",
        "join",
        "def join(",
        "Step *join* closes the split at step *start* (branches *work*) but does not take the "
        "'inputs' argument a join step needs. Declare it as def join(self, inputs).",
    ),
    (
        "bad_structure",
        "ForeachNeverJoinedFlow",
        "end",
        "def end(",
        "Step *end* reached before a split started at step(s) *work* were joined. Add a join "
        "step before *end*.",
    ),
    (
        "bad_structure",
        "WrongJoinCountFlow",
        "join",
        "def join(",
        "Step *join* seems like a join step (it takes an extra input argument) but an incorrect "
        "number of steps (*a, b*) lead to it. This join was expecting 3 incoming paths, "
        "starting from split step(s) *a, b, c*.",
    ),
    (
        "bad_structure",
        "JoinWithoutSplitFlow",
        "join",
        "def join(",
        "Step *join* seems like a join step (it takes an extra input argument) but it is not "
        "preceded by a split. Ensure that there is a matching split for every join.",
    ),
    (
        "bad_structure",
        "JoinSkippingSplitFlow",
        "join",
        "def join(",
        "Step *join* joins steps from unrelated splits. Ensure that there is a matching join "
        "for every split.",
    ),
    (
        "bad_structure",
        "EmptyForeachFlow",
        "start",
        "def start(",
        "Step *start* is a foreach split that has no children: it is followed immediately by a "
        "join step, *join*. Add at least one step between the split and the join.",
    ),
    (
        "bad_structure",
        "NestedEmptyForeachFlow",
        "fan",
        "def fan(",
        "Step *fan* is a foreach split that has no children: it is followed immediately by a "
        "join step, *join_fan*. Add at least one step between the split and the join.",
    ),
    (
        "bad_switch",
        "SingleCaseSwitchFlow",
        "decide",
        "def decide(",
        "Step *decide* is a switch split but defines 1 transitions. Switch splits must define "
        "at least 2 transitions.",
    ),
    (
        "bad_switch",
        "SwitchIntoJoinFlow",
        "join",
        "def join(",
        "A conditional path cannot lead directly to a join step.\n"
        "In your conditional step(s) *b*, one or more of the possible paths transition "
        "directly to the join step *join*.\n"
        "As a workaround, please introduce an intermediate, unconditional step on that "
        "specific path before joining.",
    ),
    (
        "bad_switch",
        "SwitchCasesJoinFlow",
        "join",
        "def join(",
        "Step *join* seems like a join step (it takes an extra input argument) but it is not "
        "preceded by a split. Ensure that there is a matching split for every join.",
    ),
    (
        "bad_switch",
        "SwitchEscapesSplitFlow",
        "end",
        "def end(",
        "Step *end* reached before a split started at step(s) *a, b* were joined. Add a join "
        "step before *end*.",
    ),
    (
        "odd_sources",
        "TwoProblemsFlow",
        "alpha",
        "def alpha(",
        "Step *alpha* is missing a self.next() transition to the next step. Add a self.next() "
        "as the last line in the function.",
    ),
    (
        "odd_sources",
        "NameAndNextFlow",
        "Middle",
        "def Middle(",
        "Step *Middle* has an invalid name. Only lowercase ascii characters, underscores, and "
        "digits are allowed.",
    ),
]


@pytest.mark.parametrize(
    ("module", "cls", "step", "marker", "message"), CASES, ids=[c[1] for c in CASES]
)
def test_lint_error(module: str, cls: str, step: str, marker: str, message: str) -> None:
    err = lint_error(module, cls)
    assert err.bare_message == message
    assert err.step == step
    assert err.file == str(FLOWS / f"{module}.py")
    assert err.line == line_of(module, cls, marker)
    assert str(err) == f"{err.file}, line {err.line}: {message}"
    assert isinstance(err, FlowDefinitionError)


VALID = [
    "LinearFlow",
    "BranchFlow",
    "NestedBranchFlow",
    "ForeachFlow",
    "NestedForeachFlow",
    "ForeachInBranchFlow",
    "SwitchFlow",
    "SwitchConvergeFlow",
    "SwitchSkipFlow",
    "RecursiveSwitchFlow",
    "SwitchInBranchFlow",
    "SwitchInForeachFlow",
    "BranchInSwitchFlow",
    "ConfigSwitchFlow",
]


@pytest.mark.parametrize("cls", VALID)
def test_valid_flows_lint_cleanly(cls: str) -> None:
    FlowGraph(getattr(load("valid"), cls)).lint()


def test_odd_source_layout_lints_cleanly() -> None:
    FlowGraph(load("odd_sources").OddSourceFlow).lint()


def test_inherited_steps_lint_cleanly() -> None:
    base = load("inherit_base").BaseFlow
    FlowGraph(load("inherit_child").make(base)).lint()


def test_base_flow_alone_names_the_missing_step() -> None:
    err = lint_error("inherit_base", "BaseFlow")
    assert err.bare_message == (
        "Step *start* specifies a self.next() transition to an unknown step, *process*."
    )
    assert err.line == line_of("inherit_base", "BaseFlow", "self.next(self.process)")


def test_checks_run_in_metaflow_order() -> None:
    names = [func.__name__ for func in lint.CHECKS]
    assert names == [
        "check_reserved_words",
        "check_basic_steps",
        "check_that_end_is_end",
        "check_step_names",
        "check_num_args",
        "check_static_transitions",
        "check_valid_transitions",
        "check_unknown_transitions",
        "check_for_acyclicity",
        "check_for_orphans",
        "check_split_join_balance",
        "check_switch_splits",
        "check_empty_foreaches",
        "check_ambiguous_joins",
        "check_parallel_targets",
        "check_parallel_steps_are_reached_by_num_parallel",
        "check_parallel_steps_lead_to_a_join",
    ]
    assert all(func.__doc__ for func in lint.CHECKS)


def test_lint_function_matches_graph_method() -> None:
    graph = FlowGraph(load("bad_structure").OrphanFlow)
    with pytest.raises(LintError, match=r"\*lost\* is unreachable"):
        lint.lint(graph)


def test_switch_without_condition_variable() -> None:
    # The parser never builds such a node; the check still guards graphs built by hand.
    graph = FlowGraph(load("valid").SwitchFlow)
    graph["start"].condition = None
    with pytest.raises(LintError) as info:
        lint.check_switch_splits(graph)
    assert (
        info.value.bare_message == "Step *start* is a switch split but has no condition variable."
    )
    assert info.value.line == line_of("valid", "SwitchFlow", "def start(")


def test_long_flow_needs_no_deep_recursion(tmp_path: Path) -> None:
    """1,200 steps in a chain of switches: no recursion limit hit, no path enumeration."""
    lines = ["from aioflow.decorators import step", "class Big:"]
    lines += ["    @step", "    def start(self):", "        self.next(self.s0)"]
    for i in range(400):
        lines += [
            "    @step",
            f"    def s{i}(self):",
            f'        self.next({{"a": self.a{i}, "b": self.b{i}}}, condition="c")',
            "    @step",
            f"    def a{i}(self):",
            f"        self.next(self.s{i + 1})",
            "    @step",
            f"    def b{i}(self):",
            f"        self.next(self.s{i + 1})",
        ]
    lines += ["    @step", "    def s400(self):", "        self.next(self.end)"]
    lines += ["    @step", "    def end(self):", "        pass"]
    path = tmp_path / "big_flow.py"
    path.write_text("\n".join(lines) + "\n")
    spec = importlib.util.spec_from_file_location("big_flow", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    graph = FlowGraph(mod.Big)
    graph.lint()
    assert len(graph) == 1203
    assert graph["s400"].in_funcs == ["a399", "b399"]
