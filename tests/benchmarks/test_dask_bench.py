"""benchmarks/dask.py keeps working: its quick run starts its clusters, runs the three figures
and prints them. Not a benchmark: the figures are not checked, only that they are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_three_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.dask", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for line in (
        "raw client.submit round trip",
        "aioflow task in a chain of 20",
        "foreach 50 wide",
        "20 MB artifact worker to worker: this process grew by",
    ):
        assert line in out, out
    assert "read 20 MB on another worker" in out
