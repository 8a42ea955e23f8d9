"""benchmarks/instructions.py keeps working: a small count prints a case's row in both tools,
of every thread and of the main thread, its ratio's verdict and the start-up counts; without
valgrind, or with a case it does not know, it says what is wrong in one line. The counts
themselves are not checked (of a 3-wide foreach less a 1-wide one, they are mostly noise)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aioflow.store import Store
from benchmarks import stretched_timers
from benchmarks.floor import whole_command
from benchmarks.stretched_timers import stretched_command
from tests.helpers import env_without_valgrind

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
    env = env_without_valgrind()
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


def test_the_counted_runs_timers_are_stretched_and_a_renamed_one_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timers = [
        (importlib.import_module(module), name)
        for runner in stretched_timers.TIMERS
        for module, names in stretched_timers.TIMERS[runner]
        for name in names
    ]
    before = {}
    for module, name in timers:  # (each restored after the test)
        before[module.__name__, name] = getattr(module, name)
        monkeypatch.setattr(module, name, before[module.__name__, name])
    for runner in stretched_timers.TIMERS:
        stretched_timers.stretch(runner, 50)
    assert {(m.__name__, n): getattr(m, n) for m, n in timers} == {
        key: value * 50 for key, value in before.items()
    }
    assert {m.__name__ for m, _ in timers} >= {
        "aioflow.store.writer",
        "aioflow.runtime.executors.thread_lane",
        "benchmarks.reference_store",
    }
    monkeypatch.setitem(
        stretched_timers.TIMERS, "aioflow", (("aioflow.store.writer", ("COMMIT_EVERY",)),)
    )
    with pytest.raises(AttributeError, match="COMMIT_EVERY"):
        stretched_timers.stretch("aioflow", 50)
    with pytest.raises(ValueError, match="no timers known for 'prefect'"):
        stretched_timers.stretch("prefect", 50)


def test_a_stretched_command_runs_the_same_module_with_its_arguments(tmp_path: Path) -> None:
    command = whole_command("aioflow", "empty", 3, tmp_path / "store")
    stretched = stretched_command(command, 50)
    assert stretched == [sys.executable, "-m", "benchmarks.stretched_timers", "50", *command[2:]]
    done = subprocess.run(stretched, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    store = Store(tmp_path / "store", create=False)
    try:
        run_id = store.metadata.latest_run_id("FloorEmptyFlow")
        assert run_id is not None
        run = store.metadata.run("FloorEmptyFlow", run_id)
        assert run is not None and run.status == "succeeded"
    finally:
        store.close()
    with pytest.raises(ValueError, match="not a `python -m MODULE` command"):
        stretched_command([sys.executable, "flow.py", "run"])
