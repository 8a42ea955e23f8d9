"""The text `aioflow show` prints for a flow's graph: Metaflow's description, Graphviz or Mermaid.

`graph_text(graph, "text")` is Metaflow's `show` (steps, docstrings, transitions);
`"dot"` is a Graphviz digraph (`aioflow show flow.py --format dot | dot -Tsvg`), and
`"mermaid"` a Mermaid flowchart (pasted into Markdown that renders Mermaid, e.g. GitHub's). In
both, a foreach edge is labelled with the variable it iterates, a switch edge with its case.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..graph import FlowGraph, StepNode

#: The formats `graph_text` knows, as `--format` takes them.
FORMATS = ("text", "dot", "mermaid")

# Node shapes by step type: a split, foreach or switch reads as a branching point.
_DOT_SHAPES = {"split": "diamond", "foreach": "diamond", "split-switch": "diamond"}
_MERMAID_SHAPES = {"split": '{{"{}"}}', "foreach": '{{"{}"}}', "split-switch": '{{"{}"}}'}


def _case(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json  # (here: a run's command line needs none)

    return json.dumps(value)


def _edges(graph: FlowGraph) -> Iterator[tuple[StepNode, str, str | None]]:
    """(step, next step, label) for every transition, in the graph's order."""
    for node in graph:
        if node.switch_cases is not None:
            for value, target in node.switch_cases.items():
                yield node, target, f"{node.condition} = {_case(value)}"
            continue
        for target in node.out_funcs:
            label = f"foreach {node.foreach_param}" if node.type == "foreach" else None
            yield node, target, label


def _dot(graph: FlowGraph) -> str:
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;", "  node [shape=box];"]
    for node in graph:
        shape = _DOT_SHAPES.get(node.type or "")
        attrs = f" [shape={shape}]" if shape else ""
        lines.append(f'  "{node.name}"{attrs};')
    for node, target, label in _edges(graph):
        attrs = f' [label="{label}"]' if label else ""
        lines.append(f'  "{node.name}" -> "{target}"{attrs};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid(graph: FlowGraph) -> str:
    # Node ids get a prefix: `end` is a keyword of Mermaid's flowchart syntax.
    lines = ["flowchart TD"]
    for node in graph:
        shape = _MERMAID_SHAPES.get(node.type or "", '["{}"]')
        lines.append(f"    step_{node.name}" + shape.format(node.name))
    for node, target, label in _edges(graph):
        arrow = f'-->|"{label}"|' if label else "-->"
        lines.append(f"    step_{node.name} {arrow} step_{target}")
    return "\n".join(lines) + "\n"


def graph_text(graph: FlowGraph, fmt: str = "text") -> str:
    """The graph in format `fmt` (one of FORMATS)."""
    if fmt == "dot":
        return _dot(graph)
    if fmt == "mermaid":
        return _mermaid(graph)
    if fmt == "text":
        return graph.describe()
    raise ValueError(f"Unknown graph format {fmt!r}: use one of {', '.join(FORMATS)}.")
