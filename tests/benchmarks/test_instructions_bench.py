"""benchmarks/instructions.py keeps working: a small count prints a case's row in both tools,
of every thread and of the main thread, its ratio's verdict and the start-up counts; without
valgrind, or with a case it does not know, it says what is wrong in one line. The counts
themselves are not checked (of a 3-wide foreach less a 1-wide one, they are mostly noise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def _instructions(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=280, env=env,
    )  # fmt: skip


def test_small_count_prints_the_case_its_ratio_and_the_start_up() -> None:
    done = _instructions("--n", "3", "--cases", "empty")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    count, ratio = r"(-?[\d,]+)", r"(-|\d+\.\d\dx)"
    row = rf"^empty sync step +{count} +{count} +{ratio} +{count} +{count} +{ratio}$"
    assert re.search(row, out, re.M), out  # every thread's counts, then the main thread's
    assert re.search(r"^ +every thread +main thread \(the event loop\)$", out, re.M), out
    assert re.search(r"^  (PASS|MISS|-   )  empty sync step: .* \(target <= 1.3x\)$", out, re.M)
    assert "async step" not in out  # only the case asked for
    found = re.findall(r"^  (aioflow run examples|dependency floor).* ([\d,.]+) M$", out, re.M)
    counts = {what: float(figure.replace(",", "")) for what, figure in found}
    assert set(counts) == {"aioflow run examples", "dependency floor"}, out
    run, floor = counts["aioflow run examples"], counts["dependency floor"]
    assert run > floor > 0  # aioflow's run does more than import its dependencies
    assert "aioflow own share (the difference)" in out


def test_without_valgrind_it_says_what_to_install() -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python, no valgrind
    done = _instructions("--n", "3", "--cases", "empty", "--no-startup", env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: benchmarks.instructions counts with valgrind"), (
        done.stderr
    )
    assert "Debian's valgrind package" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_unknown_case_is_named() -> None:
    done = _instructions("--cases", "sync,bogus", "--no-startup")
    assert done.returncode == 2
    assert "unknown case(s) bogus: choose from sync, async, empty" in done.stderr
