"""benchmarks/shared_store.py keeps working: its quick run starts an S3 server, runs both
figures and prints them. Not a benchmark: only the re-run's 0 bytes is checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_both_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.shared_store", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "second run uploaded             0 bytes" in out, out
    for line in ("foreach of 20 tasks", "    local blob files ", "    S3 blobs "):
        assert line in out, out
