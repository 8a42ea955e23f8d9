"""The run's DAG as an SVG drawn here in Python: a layered layout, one layer per depth.

Each step sits in the layer of its longest path from `start` (so a join is always right of
every branch it joins), in the order the flow declares its steps within a layer. A node shows
the step's name, its number of tasks (a foreach's fan-out: `x 10,000`) and is coloured by what
happened: succeeded, failed (a task failed), caught (@catch handled a failure), running, or
not reached (dashed: a switch's case not taken, or a step after a failure). An edge the run
took is solid; one it did not (a switch's other cases) is dashed, so the switch's path shows.
Each node is a `<g class="dag-node" data-step=...>`, which the page's script makes clickable.
"""

from __future__ import annotations

from html import escape

from .collect import StepView

NODE_W, NODE_H = 150, 46
GAP_X, GAP_Y = 60, 22
PAD = 12


def step_state(step: StepView) -> str:
    """succeeded, failed, caught, running or notrun: what the node's colour says."""
    statuses = {t.status for t in step.tasks}
    if not statuses:
        return "notrun"
    for state in ("failed", "killed", "running", "cancelled", "caught"):
        if state in statuses:
            return "failed" if state in ("killed", "cancelled") else state
    return "succeeded"


def _layers(steps: dict[str, StepView]) -> list[list[str]]:
    depth: dict[str, int] = {}
    order = list(steps)
    # Longest path from the roots; the graph is a DAG, so |steps| relaxation rounds suffice.
    incoming = {name: 0 for name in steps}
    for step in steps.values():
        for child in step.next:
            if child in incoming:
                incoming[child] += 1
    for name in order:
        if incoming[name] == 0:
            depth[name] = 0
    for _ in range(len(steps)):
        changed = False
        for name in order:
            if name not in depth:
                continue
            for child in steps[name].next:
                if child in steps and depth.get(child, -1) < depth[name] + 1:
                    depth[child] = depth[name] + 1
                    changed = True
        if not changed:
            break
    layers: list[list[str]] = []
    for name in order:
        level = depth.get(name, 0)
        while len(layers) <= level:
            layers.append([])
        layers[level].append(name)
    return layers


def _label(step: StepView) -> str:
    count = len(step.tasks)
    if not count:
        return "not run"
    word = "task" if count == 1 else "tasks"
    return f"{count:,} {word}" + (" · switch" if step.type == "split-switch" else "")


def dag_svg(steps: dict[str, StepView]) -> str:
    """The DAG of `steps` (in the flow's order) as an inline `<svg>` element."""
    layers = _layers(steps)
    tallest = max((len(layer) for layer in layers), default=1)
    width = PAD * 2 + len(layers) * NODE_W + max(len(layers) - 1, 0) * GAP_X
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for column, layer in enumerate(layers):
        # Centre each layer vertically, so a linear flow is one straight line.
        top = PAD + (height - 2 * PAD - (len(layer) * NODE_H + (len(layer) - 1) * GAP_Y)) / 2
        for row, name in enumerate(layer):
            where[name] = (PAD + column * (NODE_W + GAP_X), top + row * (NODE_H + GAP_Y))
    edges = []
    for name, step in steps.items():
        x0, y0 = where[name]
        for child in step.next:
            if child not in where:
                continue
            x1, y1 = where[child]
            taken = bool(step.tasks) and bool(steps[child].tasks)
            sx, sy, ex, ey = x0 + NODE_W, y0 + NODE_H / 2, x1, y1 + NODE_H / 2
            mid = (sx + ex) / 2
            edges.append(
                f'<path class="dag-edge {"taken" if taken else "nottaken"}" '
                f'data-from="{escape(name)}" data-to="{escape(child)}" '
                f'd="M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} {mid:.0f},{ey:.0f} {ex:.0f},{ey:.0f}"'
                ' marker-end="url(#arrow)"/>'
            )
            if step.type == "foreach" and steps[child].tasks:
                # The fan-out: how many tasks the foreach started, on its edge.
                edges.append(
                    f'<text class="fanout" x="{mid:.0f}" y="{(sy + ey) / 2 - 5:.0f}">'
                    f"&#215;{len(steps[child].tasks):,}</text>"
                )
    nodes = []
    for name, step in steps.items():
        x, y = where[name]
        state = step_state(step)
        nodes.append(
            f'<g class="dag-node {state}" data-step="{escape(name)}" tabindex="0" '
            f'transform="translate({x:.0f},{y:.0f})"><title>{escape(name)}: {state}</title>'
            f'<rect width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<text class="name" x="{NODE_W / 2:.0f}" y="19">{escape(name[:22])}</text>'
            f'<text class="count" x="{NODE_W / 2:.0f}" y="36">{escape(_label(step))}</text></g>'
        )
    return (
        # Drawn at its size, or shrunk to the page's width (never cut): the viewBox scales.
        f'<svg id="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'style="max-width:100%;height:auto" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="The run\'s steps">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>" + "".join(edges) + "".join(nodes) + "</svg>"
    )
