"""What `aioflow runs` (alias `aioflow list`) prints: the newest runs as a table.

    RUN            STATUS     STARTED              DURATION  USER    ORIGIN  TAGS
    HelloFlow/4    running    2026-01-02 10:11:12  3.2s+     alice   -       nightly
    HelloFlow/3    succeeded  2026-01-02 10:01:40  0.41s     alice   2       -
    HelloFlow/2    failed     2026-01-02 10:00:03  12.0s     bob     -       exp, blue

Runs come newest first from one flow or from every flow of the store. A running run shows the
time it has taken so far (`+`); one whose process died reads `failed`. ORIGIN is the run a
resume started from; TAGS are the user tags (system tags are the same on every run).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..client import Flow, Run
from ..client.namespaces import get_namespace
from ..client.tags import displayable
from ..store import Store

HEADERS = ("RUN", "STATUS", "STARTED", "DURATION", "USER", "ORIGIN", "TAGS")
#: Tag lists longer than this are cut (the full list: `aioflow tag list RUN`).
MAX_TAGS_WIDTH = 60


@dataclass(frozen=True)
class RunLine:
    """One row of the table, as text."""

    run: str
    status: str
    started: str
    duration: str
    user: str
    origin: str
    tags: str

    def cells(self) -> tuple[str, ...]:
        """The row's cells in HEADERS order."""
        return (self.run, self.status, self.started, self.duration, self.user, self.origin,
                self.tags)  # fmt: skip


def format_duration(seconds: float) -> str:
    """`0.41s`, `12.0s`, `4m05s`, `2h03m`: short, and precise where it matters."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}m{secs:02d}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


def run_line(run: Run, now: float | None = None) -> RunLine:
    """The table row of one run."""
    status = run.status
    created = run.created_at
    finished = run.finished_at if status != "running" else None
    started = local_time(created)
    if created is None:
        duration = "-"
    elif finished is not None:
        duration = format_duration((finished - created).total_seconds())
    elif status == "running":
        now = time.time() if now is None else now
        duration = format_duration(max(0.0, now - created.timestamp())) + "+"
    else:
        duration = "-"  # a run whose process died before recording its end
    origin = run.origin_pathspec
    # What users stored is shown escaped: a newline or escape sequence would spoof the table.
    tags = ", ".join(displayable(tag) for tag in sorted(run.user_tags)) or "-"
    if len(tags) > MAX_TAGS_WIDTH:
        tags = tags[: MAX_TAGS_WIDTH - 3] + "..."
    return RunLine(
        displayable(run.pathspec),
        status,
        started,
        duration,
        displayable(run.user or "-"),
        "-" if origin is None else displayable(origin.rsplit("/", 1)[-1]),
        tags,
    )


def newest_runs(store: Store, flow: str | None, limit: int) -> Iterator[Run]:
    """Up to `limit` runs of `flow` (or of every flow), newest first, in the namespace."""
    if flow is not None:
        runs: Iterator[Run] = Flow(flow, _store=store).runs()
    else:
        runs = _all_runs(store)
    for count, run in enumerate(runs):
        if count >= limit:
            return
        yield run


def _all_runs(store: Store) -> Iterator[Run]:
    ns = get_namespace()
    flows: dict[str, Flow] = {}
    before: int | None = None
    while True:
        page = store.metadata.run_page(None, before=before, limit=100)
        for row in page:
            name = row.flow
            if name not in flows:
                flows[name] = Flow(name, _store=store, _checked=True)
            run = Run._from_row(flows[name], row)
            if ns is None or ns in run.tags:
                yield run
        if len(page) < 100:
            return
        before = page[-1].run_id


def format_table(lines: Sequence[RunLine]) -> list[str]:
    """The header and the rows, each column as wide as its widest cell."""
    rows = [HEADERS, *(line.cells() for line in lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def runs_table(store: Store, flow: str | None = None, limit: int = 20) -> list[str]:
    """The lines `aioflow runs [FLOW]` prints (an empty list when there is no run)."""
    now = time.time()
    lines = [run_line(run, now) for run in newest_runs(store, flow, limit)]
    return format_table(lines) if lines else []


def local_time(moment: datetime | None) -> str:
    """A time as the table shows it: local, to the second."""
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


__all__ = [
    "HEADERS",
    "RunLine",
    "format_duration",
    "format_table",
    "local_time",
    "newest_runs",
    "run_line",
    "runs_table",
]
