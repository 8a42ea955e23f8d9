"""The micro-benchmarks (benchmarks/micro) keep working: each runs once, untimed, as a test.

They cover issue 19's per-task costs one by one, so that a regression shows there first; one
broken by a change of the code it measures would show nothing. The figures are not checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_micro_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/micro", "-p", "no:cacheprovider",
         "--benchmark-disable"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, done.stdout
