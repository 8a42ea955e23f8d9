"""The benchmark runner keeps working: aioflow alone, smallest sizes, one run each.

Not a benchmark: the figures are not checked, only that every workload runs and the report and
its files have their shape. matplotlib is made unimportable, as it is in the test environment.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABELS = [
    "linear, 10 steps",
    "foreach N=1",
    "foreach N=10",
    "8-way branch + merge_artifacts",
    "8 MB artifact carried",
    "CPU-bound 8 x",
    "20 async steps x 0.1 s",
]
RUN = (
    "import sys; sys.modules['matplotlib'] = None\n"
    "from benchmarks.runner import main\n"
    "raise SystemExit(main(sys.argv[1:]))"
)


def test_runner_quick_aioflow_only(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-c", RUN, "--quick", "--tools", "aioflow", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = done.stdout
    lines = report.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("workload"))
    assert lines[header].split()[:3] == ["workload", "tool", "runs"]
    assert set(lines[header + 1]) == {"-"}
    for label in LABELS:
        row = next((line for line in lines if line.startswith(label)), None)
        assert row is not None, f"no row for {label!r} in:\n{report}"
        assert "aioflow" in row and "FAILED" not in row, row
    assert "Targets (issue 6):" in report
    rows = report.split("median, min - max")[0]
    assert "Metaflow" not in rows and "Prefect" not in rows
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert {r["tool"] for r in runs} == {"aioflow"}
    assert all(r["ok"] == "True" for r in runs)
    assert len(runs) == len(LABELS)
    assert (out / "scaling.csv").exists() and (out / "table.txt").read_text().strip()
    assert not (out / "scaling.png").exists()  # no matplotlib, no plot, no failure
