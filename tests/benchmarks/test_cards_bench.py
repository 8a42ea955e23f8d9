"""benchmarks/cards.py keeps working: its quick run prints both figures. Not a benchmark: the
figures are not checked, only that they are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_both_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cards", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("a default card costs", "rendering it alone", "without @card, a task spends"):
        assert line in done.stdout, done.stdout
