"""The runner's arithmetic: per-task overhead, ratios, extrapolation, and the table's rows."""

from __future__ import annotations

import pytest

from benchmarks.cases import Settings, build_cases
from benchmarks.measure import Measurement
from benchmarks.report import table, targets
from benchmarks.summary import Outcome, find, summarize


def _runs(*walls: float) -> list[Measurement]:
    return [Measurement(w, 50.0, 1.0, True) for w in walls]


@pytest.fixture
def rows():
    settings = Settings(sizes=[10, 1_000, 10_000], workloads=["linear", "foreach"])
    cases = build_cases(settings)
    by = {(c.workload, c.tasks): c for c in cases}
    walls = {
        "aioflow": {0: 0.2, 1: 0.2, 10: 0.2005, 1_000: 0.25, 10_000: 0.7},
        "prefect": {0: 9.0, 1: 9.0, 10: 9.1, 1_000: 15.0, 10_000: 74.0},
        "metaflow": {0: 4.0, 1: 3.5, 10: 6.0, 1_000: 260.0},
    }
    outcomes = []
    for tool, by_n in walls.items():
        for (_, n), case in by.items():
            if n in by_n:
                outcomes.append(Outcome(tool, case, _runs(by_n[n], by_n[n] * 1.1, by_n[n] * 0.9)))
            else:
                outcomes.append(Outcome(tool, case, skipped="N > 1,000 (--peer-max-n)"))
    return summarize(outcomes, ["aioflow", "metaflow", "prefect"], cases)


def test_per_task_is_the_slope_from_n_equals_one(rows):
    mine = find(rows, "aioflow", "foreach", 10_000)
    assert mine.per_task_s == pytest.approx((0.7 - 0.2) / 9_999)
    assert find(rows, "aioflow", "foreach", 1).per_task_s is None


def test_ratios_are_the_peer_over_aioflow(rows):
    assert find(rows, "prefect", "linear").ratio == pytest.approx(45.0)
    prefect = find(rows, "prefect", "foreach", 10_000)
    assert prefect.per_task_ratio == pytest.approx(65.0 / 0.5)


def test_a_skipped_size_is_extrapolated_and_labelled(rows):
    metaflow = find(rows, "metaflow", "foreach", 10_000)
    assert metaflow.extrapolated and metaflow.runs == 0
    assert metaflow.per_task_s == pytest.approx((260.0 - 3.5) / 999)
    text = table(rows)
    line = next(x for x in text.splitlines() if "Metaflow" in x and "est." in x)
    assert "*" in line
    assert any("(extrapolated)" in t and "Metaflow" in t for t in targets(rows))


def test_targets_pass_on_good_figures(rows):
    checks = targets(rows)
    assert checks[0].startswith("PASS") and "N=10,000" in checks[0]
    assert any(c.startswith("n/a") and "100,000" in c for c in checks)
