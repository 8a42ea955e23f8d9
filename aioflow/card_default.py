"""What the default card shows, and the DAG it draws.

`default_card_body` lays out the task's metadata, the run's parameters, the task's artifacts
(previews from `card_html.preview`), the step's code and the flow's DAG with the task's step
marked, followed by the components the step appended. `dag_svg` draws a graph as inline SVG:
steps in rows by their distance from `start`, arrows between them; nothing is fetched.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from .card_html import escape, preview, row
from .graph import FlowGraph

_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 140, 30, 24, 34
_LABEL_ROOM = 60


def _levels(graph: FlowGraph) -> dict[str, int]:
    """Each step's row: the longest path from `start` to it (a join sits below every branch)."""
    names = [node.name for node in graph]
    level = dict.fromkeys(names, 0)
    # The graph is acyclic (linted), so len(names) passes settle every longest path.
    for _ in range(len(names)):
        changed = False
        for node in graph:
            for target in node.out_funcs:
                if target in level and level[target] < level[node.name] + 1:
                    level[target] = level[node.name] + 1
                    changed = True
        if not changed:
            break
    return level


def _edges(node: Any) -> list[tuple[str, str | None]]:
    """(next step, label) of each transition of a step: a foreach edge names its variable, a
    switch edge its case."""
    if node.switch_cases is not None:
        return [(t, f"{node.condition} = {v!r}") for v, t in node.switch_cases.items()]
    label = f"foreach {node.foreach_param}" if node.type == "foreach" else None
    return [(t, label) for t in node.out_funcs]


def dag_svg(graph: FlowGraph, highlight: str | None = None) -> str:
    """The flow's DAG as an inline `<svg>`, the step `highlight` filled."""
    level = _levels(graph)
    rows: dict[int, list[str]] = {}
    for node in graph:
        rows.setdefault(level[node.name], []).append(node.name)
    widest = max((len(r) for r in rows.values()), default=1)
    width = widest * (_BOX_W + _GAP_X) + _GAP_X
    if any(label for node in graph for _, label in _edges(node)):
        width += 2 * _LABEL_ROOM  # edge labels sit right of the middle of their edge
    height = len(rows) * (_BOX_H + _GAP_Y) + _GAP_Y
    place: dict[str, tuple[float, float]] = {}
    for depth, names in rows.items():
        offset = (width - len(names) * (_BOX_W + _GAP_X) + _GAP_X) / 2
        for i, name in enumerate(names):
            place[name] = (offset + i * (_BOX_W + _GAP_X), _GAP_Y / 2 + depth * (_BOX_H + _GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="aioflow-dag" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="flow graph">'
        '<defs><marker id="af-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#57606a"/></marker></defs>'
    ]
    for node in graph:
        x, y = place[node.name]
        for target, label in _edges(node):
            if target not in place:
                continue
            tx, ty = place[target]
            x1, y1, x2, y2 = x + _BOX_W / 2, y + _BOX_H, tx + _BOX_W / 2, ty
            parts.append(
                f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                'stroke="#57606a" marker-end="url(#af-arrow)"/>'
            )
            if label:
                parts.append(
                    f'<text x="{(x1 + x2) / 2 + 6:.1f}" y="{(y1 + y2) / 2 + 4:.1f}" '
                    f'fill="#57606a" font-size="10">{escape(label)}</text>'
                )
    for node in graph:
        x, y = place[node.name]
        mine = node.name == highlight
        fill, color = ("#0969da", "#fff") if mine else ("#fff", "#1f2328")
        label = node.name if len(node.name) <= 18 else node.name[:17] + "\u2026"
        parts.append(
            f'<g class="af-step{" af-current" if mine else ""}" data-step="{escape(node.name)}">'
            f"<title>{escape(node.name)} ({escape(node.type)})</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="5" '
            f'fill="{fill}" stroke="#0969da"/>'
            f'<text x="{x + _BOX_W / 2:.1f}" y="{y + _BOX_H / 2 + 4:.1f}" text-anchor="middle" '
            f'fill="{color}">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _pairs(title: str, pairs: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in pairs)
    return row(f'<h2>{escape(title)}</h2><table class="af-meta">{body}</table>')


def step_source(func: Any) -> str | None:
    """The step function's source, or None when it cannot be read (no file, a notebook)."""
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None


def default_card_body(
    *,
    metadata: Sequence[tuple[str, str]],
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, Any],
    graph: FlowGraph | None,
    step: str,
    code: str | None,
    components: str,
    error: str | None = None,
) -> str:
    """The default card's HTML body. `artifacts` maps names to values, or to a `str` of HTML
    already made (`Unshown`) for one not previewed; `components` is the appended components'
    HTML."""
    parts = [row(f"<h1>Task {escape(metadata[0][1]) if metadata else ''}</h1>")]
    parts.append(_pairs("Task", [(k, escape(v)) for k, v in metadata]))
    if error:
        parts.append(row(f"<h3>Error</h3><pre>{escape(error)}</pre>", css="af-error"))
    if parameters:
        parts.append(_pairs("Parameters", [(k, _shown(v)) for k, v in parameters.items()]))
    if artifacts:
        parts.append(_pairs("Artifacts", [(k, _shown(v)) for k, v in artifacts.items()]))
    if components:
        parts.append(components)
    if graph is not None:
        parts.append(row(f"<h2>DAG</h2>{dag_svg(graph, step)}"))
    if code:
        parts.append(row(f"<h2>Code</h2><pre><code>{escape(code)}</code></pre>"))
    return "".join(parts)


class Unshown(str):
    """HTML standing for an artifact the card does not preview (too large, unreadable)."""


def _shown(value: Any) -> str:
    return str(value) if isinstance(value, Unshown) else preview(value)
