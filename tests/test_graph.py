"""The static flow graph: step types, transitions, lineage, lines, describe() and to_dict()."""

from __future__ import annotations

import functools
import importlib.util
import json
import linecache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from aioflow.decorators import step
from aioflow.exceptions import LintError
from aioflow.graph import FlowGraph, StepNode

FLOWS = Path(__file__).parent / "flows_lint"
VALID = str(FLOWS / "valid.py")


@functools.cache
def load(module: str) -> ModuleType:
    """Import the fixture file tests/flows_lint/<module>.py."""
    path = FLOWS / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"flows_lint_graph_{module}", path)
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


def graph(cls: str, module: str = "valid") -> FlowGraph:
    """The graph of a fixture flow."""
    return FlowGraph(getattr(load(module), cls))


def shape(g: FlowGraph) -> dict[str, tuple[str | None, list[str], list[str]]]:
    """Each step's (type, in_funcs, out_funcs)."""
    return {n.name: (n.type, n.in_funcs, n.out_funcs) for n in g}


# flow -> step -> (type, in_funcs, out_funcs)
SHAPES: dict[str, dict[str, tuple[str, list[str], list[str]]]] = {
    "LinearFlow": {
        "start": ("start", [], ["middle"]),
        "middle": ("linear", ["start"], ["finish"]),
        "finish": ("linear", ["middle"], ["end"]),
        "end": ("end", ["finish"], []),
    },
    "BranchFlow": {
        "start": ("split", [], ["a", "b"]),
        "a": ("linear", ["start"], ["join"]),
        "b": ("linear", ["start"], ["join"]),
        "join": ("join", ["a", "b"], ["end"]),
        "end": ("end", ["join"], []),
    },
    "NestedBranchFlow": {
        "start": ("split", [], ["a", "b"]),
        "a": ("split", ["start"], ["a1", "a2"]),
        "a1": ("linear", ["a"], ["join_a"]),
        "a2": ("linear", ["a"], ["join_a"]),
        "join_a": ("join", ["a1", "a2"], ["join"]),
        "b": ("linear", ["start"], ["join"]),
        "join": ("join", ["b", "join_a"], ["end"]),
        "end": ("end", ["join"], []),
    },
    "ForeachFlow": {
        "start": ("foreach", [], ["work"]),
        "work": ("linear", ["start"], ["join"]),
        "join": ("join", ["work"], ["end"]),
        "end": ("end", ["join"], []),
    },
    "NestedForeachFlow": {
        "start": ("foreach", [], ["row"]),
        "row": ("foreach", ["start"], ["cell"]),
        "cell": ("linear", ["row"], ["join_cols"]),
        "join_cols": ("join", ["cell"], ["join_rows"]),
        "join_rows": ("join", ["join_cols"], ["end"]),
        "end": ("end", ["join_rows"], []),
    },
    "ForeachInBranchFlow": {
        "start": ("split", [], ["fan", "other"]),
        "fan": ("foreach", ["start"], ["each"]),
        "each": ("linear", ["fan"], ["join_each"]),
        "join_each": ("join", ["each"], ["join"]),
        "other": ("linear", ["start"], ["join"]),
        "join": ("join", ["join_each", "other"], ["end"]),
        "end": ("end", ["join"], []),
    },
    "SwitchFlow": {
        "start": ("split-switch", [], ["fast", "slow"]),
        "fast": ("linear", ["start"], ["end"]),
        "slow": ("linear", ["start"], ["end"]),
        "end": ("end", ["fast", "slow"], []),
    },
    "SwitchConvergeFlow": {
        "start": ("start", [], ["decide"]),
        "decide": ("split-switch", ["start"], ["small", "large"]),
        "small": ("linear", ["decide"], ["merge"]),
        "large": ("linear", ["decide"], ["merge"]),
        "merge": ("linear", ["large", "small"], ["end"]),
        "end": ("end", ["merge"], []),
    },
    "SwitchSkipFlow": {
        "start": ("split-switch", [], ["extra", "common"]),
        "extra": ("linear", ["start"], ["common"]),
        "common": ("linear", ["extra", "start"], ["end"]),
        "end": ("end", ["common"], []),
    },
    "RecursiveSwitchFlow": {
        "start": ("start", [], ["loop"]),
        "loop": ("split-switch", ["start"], ["loop", "end"]),
        "end": ("end", ["loop"], []),
    },
    "SwitchInBranchFlow": {
        "start": ("split", [], ["a", "b"]),
        "a": ("linear", ["start"], ["join"]),
        "b": ("split-switch", ["start"], ["c", "d"]),
        "c": ("linear", ["b"], ["join"]),
        "d": ("linear", ["b"], ["join"]),
        "join": ("join", ["a", "c", "d"], ["end"]),
        "end": ("end", ["join"], []),
    },
    "SwitchInForeachFlow": {
        "start": ("foreach", [], ["work"]),
        "work": ("split-switch", ["start"], ["work", "c", "d"]),
        "c": ("linear", ["work"], ["after"]),
        "d": ("linear", ["work"], ["after"]),
        "after": ("linear", ["c", "d"], ["join"]),
        "join": ("join", ["after"], ["end"]),
        "end": ("end", ["join"], []),
    },
    "BranchInSwitchFlow": {
        "start": ("split-switch", [], ["one", "two"]),
        "one": ("linear", ["start"], ["end"]),
        "two": ("split", ["start"], ["p", "q"]),
        "p": ("linear", ["two"], ["join_pq"]),
        "q": ("linear", ["two"], ["join_pq"]),
        "join_pq": ("join", ["p", "q"], ["end"]),
        "end": ("end", ["join_pq", "one"], []),
    },
}


@pytest.mark.parametrize("cls", list(SHAPES))
def test_shapes(cls: str) -> None:
    g = graph(cls)
    assert shape(g) == SHAPES[cls]
    # iteration follows the order of the definitions in the file
    assert [n.name for n in g] == list(SHAPES[cls])
    assert list(g.nodes) == list(SHAPES[cls])
    for node in g:
        assert node.lineno == line_of("valid", cls, f"def {node.name}(")
        assert node.file == VALID
        assert node.is_join == (node.type == "join")
        assert not node.invalid_tail_next
        assert node.has_tail_next == (node.type != "end")


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        ("BranchFlow", {"a": ["start"], "join": ["start"], "end": []}),
        ("NestedBranchFlow", {"a1": ["start", "a"], "join_a": ["start", "a"], "join": ["start"]}),
        ("NestedForeachFlow", {"cell": ["start", "row"], "join_rows": ["start"], "end": []}),
        ("SwitchInBranchFlow", {"b": ["start"], "c": ["start"], "join": ["start"]}),
        ("SwitchInForeachFlow", {"work": ["start"], "after": ["start"], "end": []}),
        ("BranchInSwitchFlow", {"two": [], "p": ["two"], "join_pq": ["two"], "end": []}),
    ],
)
def test_split_parents(cls: str, expected: dict[str, list[str]]) -> None:
    g = graph(cls)
    assert {name: g[name].split_parents for name in expected} == expected


def test_matching_join_and_inside_foreach() -> None:
    g = graph("NestedForeachFlow")
    assert g["start"].matching_join == "join_rows"
    assert g["row"].matching_join == "join_cols"
    assert g["cell"].matching_join is None
    assert [n.name for n in g if n.is_inside_foreach] == ["row", "cell", "join_cols"]
    g = graph("SwitchInBranchFlow")
    assert g["start"].matching_join == "join"
    assert g["c"].split_branches == ["b"]
    assert g["b"].matching_join is None


def test_foreach_node() -> None:
    node = graph("ForeachFlow")["start"]
    assert node.foreach_param == "items"
    assert node.condition is None and node.switch_cases is None
    assert node.tail_next_lineno == line_of("valid", "ForeachFlow", 'foreach="items"')


def test_switch_nodes() -> None:
    start = graph("SwitchFlow")["start"]
    assert start.condition == "mode"
    assert start.switch_cases == {"fast": "fast", "slow": "slow"}
    assert start.foreach_param is None
    decide = graph("SwitchConvergeFlow")["decide"]
    assert decide.switch_cases == {1: "small", 2: "small", 3: "large", "cfg": "large"}
    # a multi-line self.next() is reported at its first line
    assert decide.tail_next_lineno == line_of(
        "valid", "SwitchConvergeFlow", "def decide( >> self.next("
    )
    assert graph("SwitchSkipFlow")["start"].switch_cases == {True: "extra", False: "common"}
    config = graph("ConfigSwitchFlow")["start"].switch_cases
    assert config == {"config:config.fast": "fast", "config:config.slow": "slow"}


def test_recursive_switch() -> None:
    loop = graph("RecursiveSwitchFlow")["loop"]
    assert loop.out_funcs == ["loop", "end"]
    assert loop.successors() == ["end"]
    assert loop.in_funcs == ["start"]
    assert loop.switch_cases == {True: "loop", False: "end"}


def test_async_steps_and_docstrings() -> None:
    g = graph("LinearFlow")
    assert g.name == "LinearFlow"
    assert g.doc == "A flow in a straight line.\n\nIt has two steps between start and end."
    assert g.file == VALID
    assert g.lineno == line_of("valid", "LinearFlow", "class LinearFlow(")
    assert [n.name for n in g if n.is_async] == ["middle"]
    assert g["start"].doc == "Begin here."
    assert g["finish"].doc is None
    assert g["start"].func is load("valid").LinearFlow.start
    assert g["start"].num_args == 1
    assert g["start"].decorators == []
    assert g["start"].func_lineno == g["start"].lineno
    assert "start" in g and "nope" not in g
    assert len(g) == 4
    assert repr(g["start"]) == f"<StepNode start start line {g['start'].lineno} -> ['middle']>"


def test_join_node() -> None:
    join = graph("BranchFlow")["join"]
    assert join.num_args == 2 and join.is_join


def test_describe() -> None:
    assert graph("LinearFlow").describe() == (
        "A flow in a straight line.\n"
        "\n"
        "It has two steps between start and end.\n"
        "\n"
        "Step start\n"
        "    Begin here.\n"
        "    => middle\n"
        "\n"
        "Step middle\n"
        "    An async step.\n"
        "    => finish\n"
        "\n"
        "Step finish\n"
        "    ?\n"
        "    => end\n"
        "\n"
        "Step end\n"
        "    Done.\n"
    )


def test_describe_splits() -> None:
    text = graph("SwitchInForeachFlow").describe()
    assert "Step start\n    ?\n    => work (foreach over items)\n" in text
    assert "Step work\n    ?\n    => work or c or d (switch on case)\n" in text
    assert "Step join\n    ?\n    => end\n" in text
    assert graph("BranchFlow").describe().startswith("Step start\n    ?\n    => a, b\n\nStep a\n")


def test_describe_shows_decorators() -> None:
    class Retry:
        name = "retry"

    g = graph("LinearFlow")
    g["start"].decorators = [Retry()]
    assert "end.\n\n@retry\nStep start\n" in g.describe()


def test_to_dict_is_json() -> None:
    data = json.loads(json.dumps(graph("SwitchConvergeFlow").to_dict()))
    assert data["name"] == "SwitchConvergeFlow"
    assert data["file"] == VALID
    decide = data["steps"]["decide"]
    assert decide == {
        "type": "split-switch",
        "line": line_of("valid", "SwitchConvergeFlow", "def decide("),
        "file": VALID,
        "doc": None,
        "next": ["small", "large"],
        "in": ["start"],
        "foreach": None,
        "condition": "size",
        "cases": {"1": "small", "2": "small", "3": "large", "cfg": "large"},
        "matching_join": None,
        "is_async": False,
        "decorators": [],
    }
    assert list(data["steps"]) == ["start", "decide", "small", "large", "merge", "end"]
    foreach = json.loads(json.dumps(graph("ForeachFlow").to_dict()))["steps"]["start"]
    assert (foreach["type"], foreach["foreach"], foreach["matching_join"]) == (
        "foreach",
        "items",
        "join",
    )


def test_foreach_over_a_variable_name_is_valid_as_in_metaflow() -> None:
    g = graph("ForeachOfVariableFlow", "bad_transitions")
    start = g["start"]
    assert start.type == "foreach" and start.out_funcs == ["work"]
    assert start.foreach_param is None and not start.invalid_tail_next
    g.lint()


def test_invalid_transitions_are_recorded_not_raised() -> None:
    g = graph("ForeachTwoTargetsFlow", "bad_transitions")
    start = g["start"]
    assert start.has_tail_next and start.invalid_tail_next
    assert start.type is None and start.out_funcs == []
    missing = graph("MissingNextFlow", "bad_basics")["middle"]
    assert not missing.has_tail_next and missing.tail_next_lineno is None
    end = graph("EndWithNextFlow", "bad_basics")["end"]
    assert end.type == "end" and end.has_tail_next


def test_graph_of_cyclic_flow() -> None:
    g = graph("LoopFlow", "bad_structure")
    assert g["a"].in_funcs == ["b", "start"]
    assert g["b"].in_funcs == ["a"]
    assert g["end"].in_funcs == []


def test_inherited_steps_keep_their_own_file() -> None:
    base = load("inherit_base").BaseFlow
    child = load("inherit_child").make(base)
    g = FlowGraph(child)
    # ordered by line number, whichever file each step is in
    assert [n.name for n in g] == ["process", "start", "end"]
    assert g["start"].file == str(FLOWS / "inherit_base.py")
    assert g["start"].is_async
    assert g["start"].doc == "Inherited start."
    assert g["start"].lineno == line_of("inherit_base", "BaseFlow", "async def start(")
    assert g["process"].file == str(FLOWS / "inherit_child.py")
    lines = (FLOWS / "inherit_child.py").read_text().splitlines()
    assert g["process"].lineno == lines.index("        def process(self):") + 1
    assert g.lineno == lines.index("    class ChildFlow(base):") + 1
    assert g.file == str(FLOWS / "inherit_child.py")
    assert shape(g) == {
        "start": ("start", [], ["process"]),
        "process": ("linear", ["start"], ["end"]),
        "end": ("end", ["process"], []),
    }


def test_odd_source_layout() -> None:
    g = graph("OddSourceFlow", "odd_sources")
    start = g["start"]
    assert start.lineno == line_of("odd_sources", "OddSourceFlow", "def start(")
    assert start.tail_next_lineno == line_of("odd_sources", "OddSourceFlow", "self.next(")
    assert start.doc == "A docstring whose second line\nis not indented at all."
    assert start.out_funcs == ["middle"]
    middle = g["middle"]
    assert middle.type == "split-switch"
    assert middle.switch_cases == {"x": "end", "y": "middle"}
    assert middle.tail_next_lineno == line_of(
        "odd_sources", "OddSourceFlow", "def middle( >> self.next("
    )


def _notebook_flow(source: str, cell: str) -> Any:
    """Define a flow the way a notebook does: code compiled from a cell kept in linecache."""
    lines = source.splitlines(keepends=True)
    linecache.cache[cell] = (len(source), None, lines, cell)
    namespace: dict[str, Any] = {"__name__": "notebook_cell_module", "step": step}
    exec(compile(source, cell, "exec"), namespace)
    return namespace["CellFlow"]


def test_flow_defined_in_a_notebook_cell() -> None:
    cell = "<ipython-input-3-0123456789ab>"
    source = (
        "class CellFlow:\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
    )
    try:
        g = FlowGraph(_notebook_flow(source, cell))
    finally:
        del linecache.cache[cell]
    g.lint()
    assert g.file == cell
    assert g.lineno == 1
    assert (g["start"].lineno, g["start"].tail_next_lineno, g["end"].lineno) == (3, 4, 7)


def test_unreadable_source_is_a_lint_error() -> None:
    namespace: dict[str, Any] = {"step": step}
    exec(
        compile("class F:\n    @step\n    def start(self):\n        pass\n", "<nowhere>", "exec"),
        namespace,
    )
    with pytest.raises(LintError, match=r"Cannot read the source code of step \*start\*") as info:
        FlowGraph(namespace["F"])
    assert info.value.step == "start"


def test_step_node_alone() -> None:
    node = StepNode("start", load("valid").BranchFlow.start)
    assert (node.type, node.out_funcs, node.in_funcs) == ("split", ["a", "b"], [])
    assert node.successors() == ["a", "b"]


def test_non_steps_are_ignored() -> None:
    g = graph("OddSourceFlow", "odd_sources")
    assert set(g.nodes) == {"start", "middle", "end"}
