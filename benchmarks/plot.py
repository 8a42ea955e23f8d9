"""The scaling curve as a PNG: total time and per-task overhead against N, one line per tool.

Needs matplotlib (`pip install -e '.[bench]'`); without it the runner saves the CSV only.
`python -m benchmarks.plot [RESULTS_DIR]` redraws `scaling.png` from a saved `scaling.csv`.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from .cases import Case
from .summary import Row
from .tools import LABELS

COLORS = {"aioflow": "#1f77b4", "metaflow": "#d62728", "prefect": "#2ca02c"}


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def title(machine: dict[str, Any]) -> str:
    """The plot's title: tool versions, the machine, the date."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return f"{versions}; {machine['cpu']}, {machine['cores']} cores; {machine['date']}"


def scaling_plot(rows: list[Row], path: Path, title: str) -> None:
    """Draw the foreach rows of every tool; extrapolated points are hollow, on dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    for tool in LABELS:
        mine = sorted(
            (r for r in rows if r.tool == tool and r.case.workload == "foreach"),
            key=lambda r: r.case.tasks,
        )
        for axis, value, scale in ((left, "median_s", 1.0), (right, "per_task_s", 1e6)):
            points = [
                (r.case.tasks, getattr(r, value) * scale, r.extrapolated)
                for r in mine
                if getattr(r, value) is not None
                and getattr(r, value) > 0
                and (value == "median_s" or r.case.tasks > 1)
            ]
            measured = [(n, v) for n, v, est in points if not est]
            guessed = [(n, v) for n, v, est in points if est]
            color = COLORS[tool]
            if measured:
                xs, ys = zip(*measured, strict=True)
                axis.plot(xs, ys, "o-", color=color, label=LABELS[tool])
            if guessed and measured:
                xs, ys = zip(measured[-1], *guessed, strict=True)
                axis.plot(xs, ys, "--", color=color)
                xs, ys = zip(*guessed, strict=True)
                axis.plot(xs, ys, "o", color=color, mfc="white",
                          label=f"{LABELS[tool]} (extrapolated)")  # fmt: skip
    left.set_title("foreach of N trivial tasks: whole process")
    left.set_ylabel("wall time (s)")
    right.set_title("per-task overhead: (T(N) - T(1)) / (N - 1)")
    right.set_ylabel("microseconds per task")
    right.axhline(100, color="grey", linestyle=":", linewidth=1)
    right.text(0.01, 108, "aioflow's target: 100 us", fontsize=7, color="grey",
               transform=right.get_yaxis_transform())  # fmt: skip
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("N (tasks)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="best", framealpha=0.8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _float(text: str) -> float | None:
    return float(text) if text else None


def rows_from_csv(path: Path) -> list[Row]:
    """The foreach rows saved in a `scaling.csv`."""
    with open(path, newline="") as f:
        return [
            Row(
                r["tool"],
                Case("foreach", r["case"], (("n", int(r["n"])),), int(r["n"])),
                median_s=_float(r["median_s"]),
                per_task_s=_float(r["per_task_s"]),
                extrapolated=r["extrapolated"] == "True",
            )
            for r in csv.DictReader(f)
        ]


def main(argv: list[str]) -> None:
    """Redraw `scaling.png` in a results folder from its `scaling.csv` and `machine.json`."""
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results"
    info = json.loads((folder / "machine.json").read_text())
    scaling_plot(rows_from_csv(folder / "scaling.csv"), folder / "scaling.png", title(info))
    print(folder / "scaling.png")


if __name__ == "__main__":
    main(sys.argv[1:])
