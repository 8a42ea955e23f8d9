"""benchmarks/postgres.py keeps working: its quick run starts a server, runs both figures and
prints them. Not a benchmark: the figures are not checked, only that they are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_both_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.postgres", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "foreach of 50 trivial tasks" in out
    for line in ("  SQLite ", "  PostgreSQL ", "  PostgreSQL + S3 ", "per task:", "cold read of"):
        assert line in out, out
