"""From individual runs to the table's rows: medians, spreads, per-task overheads and ratios.

Per-task overhead of a foreach at N is `(median(N) - median(N=1)) / (N - 1)`. A peer that did not
run a size (above its `--peer-max-n`) gets that size extrapolated from its largest measured N,
where its per-task cost is assumed to stay flat (both peers' costs grow linearly in N over the
sizes they ran), and the row says so; nothing is extrapolated beyond the largest N a peer ran.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .cases import BASELINE_N, Case
from .measure import Measurement


@dataclass
class Outcome:
    """Every run of one tool on one case, or why it was not run."""

    tool: str
    case: Case
    runs: list[Measurement] = field(default_factory=list)
    skipped: str | None = None

    @property
    def good(self) -> list[Measurement]:
        """The runs that succeeded."""
        return [m for m in self.runs if m.ok]


@dataclass
class Row:
    """One line of the table."""

    tool: str
    case: Case
    runs: int = 0
    median_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    peak_mb: float | None = None
    store_mb: float | None = None
    per_task_s: float | None = None
    extrapolated: bool = False
    failed: int = 0
    skipped: str | None = None
    ratio: float | None = None  # this tool's median over aioflow's
    per_task_ratio: float | None = None  # this tool's per-task overhead over aioflow's
    notes: list[str] = field(default_factory=list)


def _row(outcome: Outcome) -> Row:
    row = Row(outcome.tool, outcome.case, skipped=outcome.skipped)
    good = outcome.good
    row.failed = len(outcome.runs) - len(good)
    row.runs = len(good)
    for m in outcome.runs:
        row.notes.extend(n for n in m.notes if n not in row.notes)
    if good:
        walls = [m.wall_s for m in good]
        row.median_s = statistics.median(walls)
        row.min_s, row.max_s = min(walls), max(walls)
        row.peak_mb = max(m.peak_mb for m in good)
        row.store_mb = statistics.median(m.store_mb for m in good)
    return row


def _per_task(rows: list[Row]) -> None:
    """Fill per-task overheads of one tool's foreach rows, extrapolating skipped sizes."""
    by_n = {r.case.tasks: r for r in rows}
    base = by_n.get(BASELINE_N)
    if base is None or base.median_s is None:
        return
    for n, row in by_n.items():
        if n != BASELINE_N and row.median_s is not None:
            row.per_task_s = (row.median_s - base.median_s) / (n - BASELINE_N)
    measured = [n for n, r in by_n.items() if r.per_task_s is not None]
    if not measured:
        return
    largest = max(measured)
    per_task = by_n[largest].per_task_s
    assert per_task is not None
    for n, row in by_n.items():
        if row.skipped and row.median_s is None and n > largest:
            row.per_task_s = per_task
            row.median_s = base.median_s + per_task * (n - BASELINE_N)
            row.extrapolated = True
            row.notes.append(f"extrapolated from N={largest:,}")


def summarize(outcomes: list[Outcome], tools: list[str], cases: list[Case]) -> list[Row]:
    """The table's rows, case by case in `cases` order, tools in `tools` order."""
    rows = {(o.tool, o.case): _row(o) for o in outcomes}
    for tool in tools:
        foreach = [r for (t, c), r in rows.items() if t == tool and c.workload == "foreach"]
        _per_task(foreach)
    largest_peer_n = max(
        (r.case.tasks for (t, c), r in rows.items()
         if t != "aioflow" and c.workload == "foreach" and r.runs),
        default=0,
    )  # fmt: skip
    ordered = []
    for case in cases:
        mine = rows.get(("aioflow", case))
        for tool in tools:
            row = rows.get((tool, case))
            if row is None:
                continue
            if row.extrapolated and case.tasks > largest_peer_n:
                row.median_s = row.per_task_s = None  # beyond what any peer measured
                row.extrapolated = False
                row.notes = [n for n in row.notes if not n.startswith("extrapolated")]
            if tool != "aioflow" and mine is not None:
                row.ratio = _ratio(row.median_s, mine.median_s)
                row.per_task_ratio = _ratio(row.per_task_s, mine.per_task_s)
            ordered.append(row)
    return ordered


def _ratio(theirs: float | None, ours: float | None) -> float | None:
    if theirs is None or ours is None or ours <= 0 or theirs <= 0:
        return None
    return theirs / ours


def find(rows: list[Row], tool: str, workload: str, n: int | None = None) -> Row | None:
    """The row of `tool` on `workload` (at foreach size `n`), if the table has one."""
    for row in rows:
        if row.tool == tool and row.case.workload == workload and n in (None, row.case.tasks):
            return row
    return None
