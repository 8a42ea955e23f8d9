"""benchmarks/run_report.py keeps working: its quick run prints its three figures. Not a
benchmark: the figures are not checked, only that they are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_three_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_report", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("report written in", "report file size", "opened (load event)"):
        assert line in done.stdout, done.stdout
