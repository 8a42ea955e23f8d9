"""benchmarks/big_artifact.py keeps working: a small run prints each figure and the ratios,
and the flow's memory, store and untouched-step figures. Not a benchmark: the figures are not
checked, only that they are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_run_prints_the_figures_and_the_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.big_artifact", "--size-mb", "8", "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "aioflow: encoded and put in a store folder",
        "raw write to a file",
        "BLAKE3 of the same bytes",
        "aioflow / (write + hash)",
        "overlap floor",
        "hashed, then written",
        "peak memory / artifact size",
        "store size / artifact size",
        "untouched step",
    ):
        assert line in done.stdout, done.stdout
