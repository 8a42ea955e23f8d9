"""benchmarks/calls.py keeps working: a small count prints a case's calls per task in both tools,
by thread, what one call costs and what aioflow's extra calls come to; without valgrind it says
so in one line, and `--no-cost` needs none; an unknown case is named.

And aioflow's hot path keeps its call budget: Python calls per task do not depend on the load
(but for how many results share a hand-off between threads, a few calls at most), so a layer
added to every task fails here, on any machine, long before a timing would show it. A change
that adds calls on purpose raises `CALL_BUDGET`, saying why in its commit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import env_without_valgrind

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)

FIGURE = r"(-?\d+\.\d)"
MORE = r"([+-]\d+\.\d)"
#: A case's row: aioflow's, the reference's and the difference, of three parts (main thread,
#: the others, every thread).
ROW = "^empty sync step" + rf" +{FIGURE} +{FIGURE} +{MORE}" * 3 + "$"


#: Python calls per task, every thread, at most (2026-12-07, at `226a491`: 87-90, 79-83 and 60-64
#: on Pythons 3.11-3.14, n = 201 to 2,001, with the machine idle or loaded by three CPU burners).
CALL_BUDGET = {"sync step, one small artifact": 105, "async step, one small artifact": 95,
               "empty sync step": 75}  # fmt: skip


def _calls(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.calls", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=280, env=env,
    )  # fmt: skip


def test_a_small_count_prints_calls_by_thread_and_what_they_cost() -> None:
    done = _calls("--n", "5", "--cases", "empty")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^ +main thread \(event loop\) +other threads +every thread$", out, re.M)
    row = re.search(ROW, out, re.M)
    assert row, out
    main, main_ref, main_more, other, other_ref, other_more, every, every_ref, more = (
        float(figure) for figure in row.groups()
    )
    # Each task runs Python code on the loop and in a worker thread, in both tools.
    assert min(main, main_ref, other, other_ref) > 0, out
    assert main_more == pytest.approx(main - main_ref, abs=0.11)
    assert other_more == pytest.approx(other - other_ref, abs=0.11)
    assert every == pytest.approx(main + other, abs=0.11)
    assert every_ref == pytest.approx(main_ref + other_ref, abs=0.11)
    cost = re.search(r"^one Python call costs ([\d,]+) instructions on this interpreter", out, re.M)
    assert cost, out
    per_call = int(cost.group(1).replace(",", ""))
    assert 50 < per_call < 5000, out  # a frame pushed and popped: hundreds, not nothing
    extra = re.search(rf"^  empty sync step +{MORE} calls +([+-][\d,]+) instructions$", out, re.M)
    assert extra, out
    assert float(extra.group(1)) == more
    # (each figure printed rounded: the calls to a tenth, the cost to an instruction)
    assert abs(int(extra.group(2).replace(",", "")) - more * per_call) <= (
        0.05 * per_call + 0.5 * abs(more) + 1
    )
    assert "async step" not in out  # only the case asked for


def test_no_cost_needs_no_valgrind() -> None:
    done = _calls("--n", "3", "--cases", "empty", "--no-cost", env=env_without_valgrind())
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(ROW, done.stdout, re.M), done.stdout
    assert "one Python call costs" not in done.stdout


def test_without_valgrind_it_says_what_to_install() -> None:
    done = _calls("--n", "3", "--cases", "empty", env=env_without_valgrind())
    assert done.returncode == 2
    assert done.stderr.startswith("error: benchmarks.calls counts what a call costs with "), (
        done.stderr
    )
    assert "Debian's valgrind package" in done.stderr and "or pass --no-cost." in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_unknown_case_is_named() -> None:
    done = _calls("--cases", "sync,bogus", "--no-cost")
    assert done.returncode == 2
    assert "unknown case(s) bogus: choose from sync, async, empty" in done.stderr
    done = _calls("--cases", ",", "--no-cost")
    assert done.returncode == 2
    assert "no case named: choose from sync, async, empty" in done.stderr


def test_the_hot_path_keeps_its_call_budget() -> None:
    done = _calls("--n", "201", "--no-cost")
    assert done.returncode == 0, done.stdout + done.stderr
    for case, budget in CALL_BUDGET.items():
        row = re.search(rf"^{re.escape(case)} .* {FIGURE} +{FIGURE} +{MORE}$", done.stdout, re.M)
        assert row, done.stdout
        calls = float(row.group(1))  # aioflow's, every thread
        assert 0 < calls <= budget, f"{case}: {calls} calls per task, budget {budget}"
