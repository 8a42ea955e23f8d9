"""The printed table, its notes, and the check of issue 6's targets against it."""

from __future__ import annotations

from .cases import Case
from .summary import Row, find
from .tools import LABELS

COLUMNS = (
    ("workload", 31, "<"),
    ("tool", 9, "<"),
    ("runs", 5, ">"),
    ("median", 9, ">"),
    ("min - max", 19, ">"),
    ("peak MB", 8, ">"),
    ("store MB", 9, ">"),
    ("per task", 9, ">"),
    ("x aioflow", 10, ">"),
    ("per task x", 11, ">"),
)


def seconds(value: float | None) -> str:
    """A duration for the table: s above a second, ms below, us below a millisecond."""
    if value is None:
        return "-"
    size = abs(value)
    if size >= 100:
        return f"{value:.0f} s"
    if size >= 1:
        return f"{value:.2f} s"
    if size >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def _span(row: Row) -> str:
    if row.min_s is None or row.max_s is None or row.runs < 2:
        return "-"
    return f"{seconds(row.min_s)} - {seconds(row.max_s)}"


def _mb(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _times(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}x" if value < 1000 else f"{value:,.0f}x"


def _cells(row: Row, first: bool) -> list[str]:
    label = row.case.label if first else ""
    tool = LABELS[row.tool]
    if row.skipped and not row.extrapolated:
        return [label, tool, "-", f"skipped: {row.skipped}", "", "", "", "", "", ""]
    if row.runs == 0 and not row.extrapolated:
        return [label, tool, "0", f"FAILED ({row.failed} run(s))", "", "", "", "", "", ""]
    runs = "est." if row.extrapolated else str(row.runs)
    median = seconds(row.median_s) + ("*" if row.extrapolated else "")
    per_task = "-" if row.per_task_s is None else seconds(row.per_task_s)
    per_task += "*" if row.extrapolated and row.per_task_s is not None else ""
    star = "*" if row.extrapolated else ""
    return [
        label, tool, runs, median, _span(row), _mb(row.peak_mb), _mb(row.store_mb), per_task,
        _times(row.ratio) + star, _times(row.per_task_ratio) + star,
    ]  # fmt: skip


def _line(cells: list[str]) -> str:
    out = []
    for (_, width, align), cell in zip(COLUMNS, cells, strict=True):
        out.append(f"{cell:{align}{width}}")
    return " ".join(out).rstrip()


def table(rows: list[Row]) -> str:
    """The comparison table as fixed-width text."""
    lines = [_line([name for name, _, _ in COLUMNS])]
    lines.append("-" * len(lines[0]))
    previous: Case | None = None
    for row in rows:
        first = row.case != previous
        if first and previous is not None and row.case.workload != previous.workload:
            lines.append("")
        previous = row.case
        cells = _cells(row, first)
        if cells[3].startswith(("skipped", "FAILED")):
            lines.append(_line(cells[:3] + [""] * 7) + " " + cells[3])
        else:
            lines.append(_line(cells))
    return "\n".join(lines)


def legend() -> str:
    """What the columns mean."""
    return (
        "median, min - max: wall time of the whole process (start, imports, run, exit).\n"
        "peak MB: largest resident memory of the run's processes, together.  store MB: growth "
        "of the tool's store on disk.\nper task: (median(N) - median(N=1)) / (N - 1).  "
        "x aioflow: the tool's median over aioflow's; per task x: the same for per-task "
        "overhead.\n* est.: not measured: extrapolated from the tool's per-task overhead at its "
        "largest measured N.  Per-task figures at N <= 100 are within run-to-run noise."
    )


def notes(rows: list[Row]) -> list[str]:
    """Notes the runs reported (the flows' own notes, failures), one per line."""
    out = []
    for row in rows:
        for note in row.notes:
            if not note.startswith("extrapolated"):
                out.append(f"{row.case.label}, {LABELS[row.tool]}: {note}")
        if row.failed:
            out.append(f"{row.case.label}, {LABELS[row.tool]}: {row.failed} run(s) failed")
    return out


def _check(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "MISS")


def targets(rows: list[Row]) -> list[str]:
    """Issue 6's figures, each with PASS / MISS, or n/a when the run did not measure it."""
    out = []
    at10k = find(rows, "aioflow", "foreach", 10_000)
    mine = at10k.per_task_s if at10k else None
    out.append(
        f"{_check(None if mine is None else mine <= 100e-6)}  aioflow per-task overhead at "
        f"N=10,000: {seconds(mine)} (target <= 100 us)"
    )
    for peer, goal in (("prefect", 60), ("metaflow", 2_500)):
        row = find(rows, peer, "foreach", 10_000)
        ratio = row.per_task_ratio if row else None
        est = " (extrapolated)" if row is not None and row.extrapolated else ""
        out.append(
            f"{_check(None if ratio is None else ratio >= goal)}  per-task overhead at "
            f"N=10,000, {LABELS[peer]} / aioflow: {_times(ratio)}{est} (target >= {goal:,}x)"
        )
    for peer, goal in (("metaflow", 10), ("prefect", 20)):
        row = find(rows, peer, "linear")
        ratio = row.ratio if row else None
        out.append(
            f"{_check(None if ratio is None else ratio >= goal)}  linear flow, whole process, "
            f"{LABELS[peer]} / aioflow: {_times(ratio)} (target >= {goal}x)"
        )
    big = find(rows, "aioflow", "foreach", 100_000)
    small = find(rows, "aioflow", "foreach", 1_000)
    if big is None or big.runs == 0:
        out.append(f"{_check(None)}  foreach N=100,000 (aioflow): not run")
    else:
        growth = None
        if big.per_task_s and small is not None and small.per_task_s:
            growth = big.per_task_s / small.per_task_s
        out.append(
            f"{_check(None if growth is None else growth <= 1.5)}  foreach N=100,000: per-task "
            f"{seconds(big.per_task_s)} vs {seconds(small.per_task_s if small else None)} at "
            f"N=1,000: {'-' if growth is None else f'{growth:.2f}x'} (target <= 1.5x)"
        )
        peak = big.peak_mb
        out.append(
            f"{_check(peak < 1024 if peak is not None else None)}  foreach N=100,000: "
            f"completes in {seconds(big.median_s)}, peak memory {_mb(peak)} MB (target < 1 GB)"
        )
    return out
