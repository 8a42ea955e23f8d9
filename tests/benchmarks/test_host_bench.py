"""benchmarks/host.py keeps working: a small run prints each way's figure and the ratio. Not a
benchmark: the figures are not checked, only that they are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_run_prints_each_way_and_the_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.host", "--n", "20", "--objects", "1000",
         "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "aioflow run (command line)",
        "run_flow in a host holding 1,000 live objects",
        "run_flow in a bare process",
        "host / command line, CPU per task",
    ):
        assert line in done.stdout, done.stdout
