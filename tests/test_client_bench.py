"""`python -m benchmarks.client --quick` keeps working (its figures are not checked here, only
that every workload runs and what is deterministic: which tasks a resume clones and re-runs).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)


def test_client_benchmark_quick() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.client", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["benchmark", "figure", "target"]
    labels = [re.split(r"\s{2,}", line.strip())[0] for line in lines[1:]]
    assert labels == [
        "store: 50 runs of a 100-task flow, built in",
        "Flow(name).latest_run + one artifact, cold (fresh process)",
        "the same, warm (median of 20)",
        "list the 1,000 tasks of a run with .successful",
        "resume a 1,000-task foreach whose join failed: clones",
        "the whole resume",
        "tasks cloned",
        "steps run again",
    ]
    assert re.split(r"\s{2,}", lines[-2].strip())[1] == "998"  # start and the 997 work tasks
    assert lines[-1].split()[-4:] == ["join,", "end", "join,", "end"]
