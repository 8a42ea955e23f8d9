"""Every task of a run on a timeline, as an SVG: a lane per step, time left to right.

A step with up to DRAW_LIMIT tasks draws each task as a bar (`rect.tl-task`), packed into
rows so tasks that overlap in time sit one above the other (at most MAX_ROWS rows; more
overlap). A larger step (a foreach of 10,000 tasks) is aggregated instead: its lane is cut
into BUCKETS slices of time and each slice is one bar (`rect.tl-bucket`) as tall as the mean
number of its tasks running then, in red when any of its tasks failed then. So a lane is at
most a few hundred elements whatever the fan-out, and the page stays fluid.
"""

from __future__ import annotations

import time
from html import escape

from .collect import StepView, TaskView

DRAW_LIMIT = 300
MAX_ROWS = 8
BUCKETS = 240
LABEL_W, PLOT_W = 130, 860
ROW_H, LANE_PAD, AXIS_H = 9, 8, 22


def _span(task: TaskView, now: float) -> tuple[float, float] | None:
    if task.started is None:
        return None
    return task.started, task.finished if task.finished is not None else now


def _pack(tasks: list[TaskView], now: float) -> list[tuple[TaskView, float, float, int]]:
    """Each task with its span and row: the first row whose last bar ended before it began."""
    placed: list[tuple[TaskView, float, float, int]] = []
    row_ends: list[float] = []
    spans = [(t, *s) for t in tasks if (s := _span(t, now)) is not None]
    for task, start, end in sorted(spans, key=lambda item: item[1]):
        row = next((i for i, free in enumerate(row_ends) if free <= start), None)
        if row is None:
            row = len(row_ends) if len(row_ends) < MAX_ROWS else len(placed) % MAX_ROWS
            if row == len(row_ends):
                row_ends.append(end)
        row_ends[row] = max(row_ends[row], end)
        placed.append((task, start, end, row))
    return placed


def _concurrency(
    tasks: list[TaskView], t0: float, width: float, now: float
) -> tuple[list[float], list[bool]]:
    """Mean number of running tasks in each bucket, and whether a task that failed ran in it.

    Linear in tasks + buckets: partial buckets at each end, a difference array between."""
    load = [0.0] * BUCKETS
    full = [0] * (BUCKETS + 1)
    failed = [False] * BUCKETS
    for task in tasks:
        span = _span(task, now)
        if span is None:
            continue
        a, b = (span[0] - t0) / width, (span[1] - t0) / width
        a, b = min(max(a, 0.0), BUCKETS - 1e-9), min(max(b, 0.0), BUCKETS - 1e-9)
        first, last = int(a), int(b)
        if first == last:
            load[first] += b - a
        else:
            load[first] += first + 1 - a
            load[last] += b - last
            full[first + 1] += 1
            full[last] -= 1
        if task.status in ("failed", "caught", "killed"):
            for i in range(first, last + 1):
                failed[i] = True
    running = 0
    for i in range(BUCKETS):
        running += full[i]
        load[i] += running
    return load, failed


def _tick(span: float, fraction: float) -> str:
    value = span * fraction
    if span < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s" if span < 100 else f"{value:,.0f} s"


def timeline_svg(steps: dict[str, StepView], now: float | None = None) -> str:
    """The timeline of every task in `steps` (in the flow's order) as an inline `<svg>`."""
    now = time.time() if now is None else now
    lanes = [step for step in steps.values() if step.tasks]
    spans = [s for step in lanes for t in step.tasks if (s := _span(t, now)) is not None]
    if not spans:
        return (
            '<svg id="timeline" width="400" height="30">'
            '<text x="4" y="20">No task started yet.</text></svg>'
        )
    t0 = min(s[0] for s in spans)
    t1 = max(max(s[1] for s in spans), t0 + 1e-3)
    scale = PLOT_W / (t1 - t0)
    parts = []
    y = AXIS_H
    for step in lanes:
        big = len(step.tasks) > DRAW_LIMIT
        packed = [] if big else _pack(step.tasks, now)
        rows = MAX_ROWS if big else max((p[3] for p in packed), default=0) + 1
        lane_h = rows * ROW_H + 2 * LANE_PAD
        name = escape(step.name)
        parts.append(
            f'<g class="tl-lane" data-step="{name}"><rect class="tl-band" x="0" y="{y}" '
            f'width="{LABEL_W + PLOT_W}" height="{lane_h}"/><text class="tl-label" x="4" '
            f'y="{y + lane_h / 2 + 4:.0f}">{escape(step.name[:18])}</text>'
        )
        if big:
            load, failed = _concurrency(step.tasks, t0, (t1 - t0) / BUCKETS, now)
            peak = max(load) or 1.0
            width = PLOT_W / BUCKETS
            for i, value in enumerate(load):
                if value <= 0:
                    continue
                h = max(value / peak * (lane_h - 2 * LANE_PAD), 1.0)
                parts.append(
                    f'<rect class="tl-bucket{" failed" if failed[i] else ""}" '
                    f'x="{LABEL_W + i * width:.1f}" y="{y + lane_h - LANE_PAD - h:.1f}" '
                    f'width="{width:.2f}" height="{h:.1f}"><title>{value:.1f} running</title>'
                    "</rect>"
                )
        for task, start, end, row in packed:
            x = LABEL_W + (start - t0) * scale
            w = max((end - start) * scale, 1.5)
            parts.append(
                f'<rect class="tl-task {task.status}" data-task="{task.task_id}" x="{x:.1f}" '
                f'y="{y + LANE_PAD + row * ROW_H}" width="{w:.1f}" height="{ROW_H - 2}">'
                f"<title>{name}/{task.task_id} {task.status} {end - start:.3f} s</title></rect>"
            )
        parts.append("</g>")
        y += lane_h
    ticks = []
    for i in range(6):
        x = LABEL_W + PLOT_W * i / 5
        ticks.append(
            f'<text class="tl-tick" x="{x:.0f}" y="14">{_tick(t1 - t0, i / 5)}</text>'
            f'<line class="tl-grid" x1="{x:.0f}" x2="{x:.0f}" y1="{AXIS_H - 4}" y2="{y}"/>'
        )
    total_w = LABEL_W + PLOT_W + 40
    return (
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{total_w}" '
        f'height="{y + 4}" viewBox="0 0 {total_w} {y + 4}" style="max-width:100%;height:auto" '
        'role="img" '
        f'aria-label="Every task on a timeline">{"".join(ticks)}{"".join(parts)}</svg>'
    )
