"""The UI's first page: the store's runs, newest first, filtered by flow, tag, status and user.

Read through the client: every flow's runs, newest first, up to MAX_RUNS in all after the
filters; a run's row links to its report page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timezone
from html import escape
from urllib.parse import quote

from ..client import Metaflow, Run
from ..report.assets import CSS
from ..store import Store

#: The most runs the page lists.
MAX_RUNS = 500
STATUSES = ("", "running", "succeeded", "failed", "cancelled")


def _matches(run: Run, query: Mapping[str, str]) -> bool:
    if "tag" in query and query["tag"] not in run.tags:
        return False
    if "user" in query and run.user != query["user"]:
        return False
    return "status" not in query or run.status == query["status"]


def _row(run: Run) -> str:
    flow, run_id = run.path_components
    started = run.created_at
    when = (
        "-" if started is None else started.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    )
    status = run.status
    tags = " ".join(f'<span class="tag">{escape(t)}</span>' for t in sorted(run.user_tags))
    href = f"/runs/{quote(flow)}/{quote(run_id)}"
    return (
        f'<tr class="run-row" data-run="{escape(run.pathspec)}"><td>{escape(flow)}</td>'
        f'<td><a href="{escape(href)}">{escape(run_id)}</a></td>'
        f'<td><span class="badge {escape(status)}">{escape(status)}</span></td>'
        f"<td>{escape(run.user or '-')}</td><td>{when} UTC</td><td>{tags}</td></tr>"
    )


def _filters(query: Mapping[str, str], flows: list[str]) -> str:
    def field(name: str, placeholder: str) -> str:
        value = escape(query.get(name, ""))
        return f'<input name="{name}" placeholder="{placeholder}" value="{value}">'

    flow_options = "".join(
        f'<option value="{escape(f)}"{" selected" if query.get("flow") == f else ""}>'
        f"{escape(f or 'every flow')}</option>"
        for f in ["", *flows]
    )
    status_options = "".join(
        f'<option value="{s}"{" selected" if query.get("status") == s else ""}>'
        f"{s or 'any status'}</option>"
        for s in STATUSES
    )
    return (
        f'<form class="filters" method="get"><select name="flow">{flow_options}</select>'
        f'<select name="status">{status_options}</select>{field("tag", "tag")}'
        f'{field("user", "user")}<button type="submit">Filter</button></form>'
    )


def runs_page(store: Store, query: Mapping[str, str]) -> str:
    """The HTML of the runs page for the filters in `query` (flow, tag, status, user)."""
    everything = Metaflow(_store=store)
    flows = sorted(flow.id for flow in everything)
    rows: list[str] = []
    for name in flows:
        if "flow" in query and name != query["flow"]:
            continue
        for run in everything[name].runs():
            if len(rows) >= MAX_RUNS:
                break
            if _matches(run, query):
                rows.append(_row(run))
    table = (
        '<table id="runs"><thead><tr><th>flow</th><th>run</th><th>status</th><th>user</th>'
        f"<th>started</th><th>tags</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No runs match.</p>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "<title>aioflow runs</title>"
        f'<style>{CSS}</style></head><body><main class="ui"><h1>Runs</h1>'
        f"<section>{_filters(query, flows)}</section><section>{table}</section></main>"
        "</body></html>\n"
    )
