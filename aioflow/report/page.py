"""The report page: one self-contained HTML file built from a `RunView`.

Everything is inline (styles in `assets.py`, the script too, the DAG and timeline as SVG drawn
by `dag_svg.py` and `timeline_svg.py`), so the file opens with no network. The tasks of each
step travel as one JSON block; clicking a step (in the DAG, the timeline or the statistics)
lists its tasks from it, so 10,000 tasks cost JSON, not DOM nodes, until asked for.

Cards: `card_url` is the address of a task's n-th card with `{pathspec}` and `{n}` in it (the
live UI serves them, and `log_url` a task's logs); without one (a report file), the cards' own
HTML is carried in the page, up to EMBEDDED_CARDS_BYTES, and opened in a frame when clicked.
Cards with charts each carry the chart libraries (`card_html.chart_scripts`); the report
carries them once instead, and puts them back into a card's page when it opens it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from datetime import datetime, timezone
from html import escape
from typing import Any

from ..card_html import CHART_MARK, chart_scripts
from .assets import CSS, SCRIPT
from .collect import RunView, StepView
from .dag_svg import dag_svg, step_state
from .timeline_svg import timeline_svg

#: The most bytes of card HTML a report file carries (more cards are listed without content).
EMBEDDED_CARDS_BYTES = 2 * 1024 * 1024
#: What stands for the chart libraries in a card page the report carries.
CHART_SCRIPTS_PLACEHOLDER = "<!--aioflow:chart-scripts-->"

CardHtml = Callable[[str, int], str]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 100 else f"{value:,.0f} s"


def step_stats(step: StepView) -> dict[str, Any]:
    """tasks, total/median/p95/max duration (seconds, of finished tasks), retries, failures."""
    durations = sorted(
        t.finished - t.started
        for t in step.tasks
        if t.started is not None and t.finished is not None
    )
    p95 = durations[min(len(durations) - 1, int(0.95 * len(durations)))] if durations else 0.0
    return {
        "tasks": len(step.tasks),
        "total": sum(durations),
        "median": statistics.median(durations) if durations else 0.0,
        "p95": p95,
        "max": durations[-1] if durations else 0.0,
        "retries": sum(t.attempt for t in step.tasks),
        "failures": sum(t.status in ("failed", "caught", "killed") for t in step.tasks),
    }


def _stats_table(view: RunView) -> str:
    rows = []
    for step in view.steps.values():
        s = step_stats(step)
        rows.append(
            f'<tr class="step-row {step_state(step)}" data-step="{escape(step.name)}">'
            f'<td><a href="#step-{escape(step.name)}">{escape(step.name)}</a></td>'
            f"<td>{s['tasks']:,}</td><td>{_seconds(s['total'])}</td>"
            f"<td>{_seconds(s['median'])}</td><td>{_seconds(s['p95'])}</td>"
            f"<td>{_seconds(s['max'])}</td><td>{s['retries']:,}</td><td>{s['failures']:,}</td>"
            "</tr>"
        )
    return (
        '<table id="stats"><thead><tr><th>step</th><th>tasks</th><th>total</th><th>median</th>'
        "<th>p95</th><th>max</th><th>retries</th><th>failures</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _parameters(view: RunView) -> str:
    if not view.parameters:
        return '<p class="muted">No parameters.</p>'
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td><code>{escape(v)}</code></td></tr>"
        for k, v in view.parameters.items()
    )
    return f'<table id="parameters"><tbody>{rows}</tbody></table>'


def _artifacts(view: RunView) -> str:
    blocks = []
    for step in view.steps.values():
        if not step.artifacts:
            continue
        rows = "".join(
            f"<tr><td>{escape(a.name)}</td><td>{escape(a.type)}</td><td>{a.size:,}</td>"
            f"<td><code>{escape(a.preview)}</code></td></tr>"
            for a in step.artifacts
        )
        blocks.append(
            f'<details class="artifacts" data-step="{escape(step.name)}"><summary>'
            f'{escape(step.name)} <span class="muted">({len(step.artifacts)} artifacts, '
            f"from {escape(step.sample_task or '')})</span></summary><table><thead><tr>"
            "<th>name</th><th>type</th><th>bytes</th><th>value</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>"
        )
    return "".join(blocks) or '<p class="muted">No artifacts stored yet.</p>'


def _failed_logs(view: RunView) -> str:
    if not view.failed_logs:
        return '<p class="muted">No task failed.</p>'
    blocks = []
    for log in view.failed_logs:
        blocks.append(
            f'<details class="failed-log" open><summary>{escape(log.pathspec)} '
            f'<span class="badge {escape(log.status)}">{escape(log.status)}</span> '
            f"{escape(log.exception or '')}</summary>"
            f"<h4>stdout</h4><pre>{escape(log.stdout) or '(empty)'}</pre>"
            f"<h4>stderr</h4><pre>{escape(log.stderr) or '(empty)'}</pre></details>"
        )
    return "".join(blocks)


def _cards(view: RunView, card_url: str | None, card_html: CardHtml | None) -> str:
    if not view.cards:
        return '<p class="muted">No cards.</p>'
    items, budget = [], EMBEDDED_CARDS_BYTES
    templates: list[tuple[str, str]] = []
    charts: str | None = None
    by_task: dict[str, str] = {}
    for pathspec, cards in sorted(view.cards.items()):
        for n, label in cards:
            text = f"{pathspec} · {label}"
            if card_url is not None:
                href = card_url.replace("{pathspec}", pathspec).replace("{n}", str(n))
                items.append(
                    f'<li><a class="card-link" href="{escape(href)}" '
                    f'target="_blank">{escape(text)}</a></li>'
                )
                continue
            page = card_html(pathspec, n) if card_html is not None and budget > 0 else None
            if page is None:
                items.append(
                    f'<li>{escape(text)} <span class="muted">(not embedded: '
                    f"aioflow card view {escape(pathspec)})</span></li>"
                )
                continue
            if CHART_MARK in page and chart_scripts() in page:
                charts = chart_scripts()
                page = page.replace(charts, CHART_SCRIPTS_PLACEHOLDER)
            budget -= len(page)
            key = f"card-{len(templates)}"
            templates.append((key, page))
            by_task[f"{pathspec}#{n}"] = key
            items.append(
                f'<li><a class="card-link" href="#" data-card="{key}">{escape(text)}</a></li>'
            )
    # The pages travel as JSON (`</` written `<\\/`), so no card's markup can end the block.
    embedded = json.dumps(
        {
            "pages": dict(templates),
            "tasks": by_task,
            "charts": charts,
            "placeholder": CHART_SCRIPTS_PLACEHOLDER,
        }
    ).replace("</", "<\\/")
    return (
        f'<ul id="cards">{"".join(items)}</ul><script type="application/json" id="cards-data">'
        f'{embedded}</script><iframe id="card-frame" title="card" hidden></iframe>'
    )


def _tasks_json(view: RunView, card_url: str | None, log_url: str | None) -> str:
    data = {
        name: {
            "tasks": [
                [t.task_id, t.status, t.attempt, t.started, t.finished, t.index] for t in step.tasks
            ],
            "cards": {
                p.rsplit("/", 1)[1]: len(c)
                for p, c in view.cards.items()
                if p.split("/")[2] == name
            },
        }
        for name, step in view.steps.items()
    }
    # `</` cannot end the script element early when written as `<\/`.
    return json.dumps(
        {"run": view.pathspec, "steps": data, "card_url": card_url, "log_url": log_url}
    ).replace("</", "<\\/")


def report_body(
    view: RunView,
    *,
    card_url: str | None = None,
    log_url: str | None = None,
    card_html: CardHtml | None = None,
    now: float | None = None,
) -> str:
    """The report's content (`<div id="report">`), which the live UI also swaps in place."""
    tags = " ".join(f'<span class="tag">{escape(t)}</span>' for t in view.tags)
    error = f'<p class="error">{escape(view.error)}</p>' if view.error else ""
    return (
        f'<div id="report" data-status="{escape(view.status)}">'
        f'<header><h1>{escape(view.pathspec)} <span id="run-status" class="badge '
        f'{escape(view.status)}">{escape(view.status)}</span></h1>'
        f"<p>user {escape(view.user or '-')} · started {_when(view.created)} · "
        f"ended {_when(view.finished)}</p><p>{tags}</p>{error}</header>"
        f'<section><h2>Steps</h2><div class="scroll">{dag_svg(view.steps)}</div>'
        '<div id="step-tasks" class="muted">Click a step to list its tasks.</div></section>'
        f'<section><h2>Timeline</h2><div class="scroll">{timeline_svg(view.steps, now)}</div>'
        "</section>"
        f"<section><h2>Statistics</h2>{_stats_table(view)}</section>"
        f"<section><h2>Parameters</h2>{_parameters(view)}</section>"
        f"<section><h2>Artifacts</h2>{_artifacts(view)}</section>"
        f'<section><h2>Failed tasks</h2><div id="failed">{_failed_logs(view)}</div></section>'
        f"<section><h2>Cards</h2>{_cards(view, card_url, card_html)}</section>"
        '<script type="application/json" id="tasks-data">'
        f"{_tasks_json(view, card_url, log_url)}</script>"
        "</div>"
    )


def report_page(
    view: RunView,
    *,
    card_url: str | None = None,
    log_url: str | None = None,
    card_html: CardHtml | None = None,
    head_extra: str = "",
    now: float | None = None,
) -> str:
    """The whole HTML page of a report; `head_extra` is placed in its `<head>` (the UI's)."""
    body = report_body(view, card_url=card_url, log_url=log_url, card_html=card_html, now=now)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        # No icon to fetch: an empty one, so the browser asks no server for /favicon.ico.
        '<link rel="icon" href="data:,">'
        f"<title>{escape(view.pathspec)} · aioflow report</title><style>{CSS}</style>"
        f"{head_extra}</head><body>{body}<script>{SCRIPT}</script></body></html>\n"
    )
