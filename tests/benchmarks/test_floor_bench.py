"""benchmarks/floor.py keeps working, and its reference orchestrator keeps persisting what aioflow
persists: a small run prints every case, ratio and target, and says the two stores of each case
hold the same rows and blobs. The figures themselves are not checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_each_case_and_finds_the_same_stores() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", "--quick", "--n", "50"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for case in ("sync step, one small artifact", "async step, one small artifact",
                 "empty sync step"):  # fmt: skip
        assert f"{case}: CPU per task / the reference's" in out, out
        assert f"  {case}: the same (53 task rows" in out, out
    assert "whole process" in out and "memory per foreach task" in out, out
