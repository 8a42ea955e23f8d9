"""What a session leaves behind: CSV files, the table as text, the machine, and the plot.

    runs.csv       every run: tool, case, wall time, peak memory, store growth, status
    summary.csv    every row of the table
    scaling.csv    the foreach rows only: the scaling curve's data
    scaling.png    the scaling curve (when matplotlib is installed)
    table.txt      the printed report
    machine.json   where it ran

With `--save` they go to `benchmarks/results/` and the block between the result markers of
`benchmarks/README.md` is replaced with the new report.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from . import plot
from .cases import describe
from .summary import Outcome, Row

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _num(value: float | None, digits: int = 6) -> float | str:
    return "" if value is None else round(value, digits)


def _summary_row(row: Row) -> dict[str, Any]:
    return {
        "tool": row.tool,
        **describe(row.case),
        "runs": row.runs,
        "median_s": _num(row.median_s),
        "min_s": _num(row.min_s),
        "max_s": _num(row.max_s),
        "peak_mb": _num(row.peak_mb, 1),
        "store_mb": _num(row.store_mb, 2),
        "per_task_s": _num(row.per_task_s, 9),
        "ratio_to_aioflow": _num(row.ratio, 2),
        "per_task_ratio_to_aioflow": _num(row.per_task_ratio, 1),
        "extrapolated": row.extrapolated,
        "skipped": row.skipped or "",
        "failed_runs": row.failed,
    }


def save(
    out: Path, outcomes: list[Outcome], rows: list[Row], report: str, machine: dict[str, Any]
) -> list[Path]:
    """Write every file into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    runs = [
        {"tool": o.tool, **describe(o.case), "run": i + 1, "wall_s": round(m.wall_s, 6),
         "peak_mb": round(m.peak_mb, 1), "store_mb": round(m.store_mb, 2), "ok": m.ok}
        for o in outcomes
        for i, m in enumerate(o.runs)
    ]  # fmt: skip
    _write_csv(out / "runs.csv", runs)
    _write_csv(out / "summary.csv", [_summary_row(r) for r in rows])
    scaling = [_summary_row(r) for r in rows if r.case.workload == "foreach"]
    _write_csv(out / "scaling.csv", scaling)
    (out / "table.txt").write_text(report + "\n")
    (out / "machine.json").write_text(json.dumps(machine, indent=2) + "\n")
    written = [out / n for n in ("runs.csv", "summary.csv", "scaling.csv", "table.txt")]
    written.append(out / "machine.json")
    if scaling and plot.available():
        plot.scaling_plot(rows, out / "scaling.png", plot.title(machine))
        written.append(out / "scaling.png")
    return written


def update_readme(readme: Path, report: str) -> bool:
    """Replace the report between the README's result markers; False when it has none."""
    if not readme.exists():
        return False
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    block = f"{README_START}\n```text\n{report}\n```\n"
    readme.write_text(text[:start] + block + text[end:])
    return True
