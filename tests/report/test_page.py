"""The report's pieces from plain values: statistics, the DAG's layers and states, and a
timeline that aggregates a 10,000-task step into a bounded number of bars."""

from __future__ import annotations

from aioflow.report.collect import RunView, StepView, TaskView
from aioflow.report.dag_svg import dag_svg, step_state
from aioflow.report.page import report_page, step_stats
from aioflow.report.timeline_svg import BUCKETS, DRAW_LIMIT, timeline_svg


def _task(task_id: int, step: str, start: float, seconds: float, **kw: object) -> TaskView:
    fields = {"status": "succeeded", "attempt": 0, "index": None, **kw}
    return TaskView(task_id, step, started=start, finished=start + seconds, **fields)  # type: ignore[arg-type]


def _steps(fan_out: int) -> dict[str, StepView]:
    start = StepView("start", "foreach", ["work"], "items", None, [_task(1, "start", 0.0, 1.0)])
    work = StepView("work", "linear", ["join"], None, None)
    work.tasks = [
        _task(2 + i, "work", 1.0 + (i % 100) * 0.01, 0.5 + (i % 7) * 0.1, index=i)
        for i in range(fan_out)
    ]
    work.tasks[3].status, work.tasks[4].attempt = "failed", 2
    join = StepView("join", "join", ["end"], None, None)
    end = StepView("end", "end", [], None, None)
    return {"start": start, "work": work, "join": join, "end": end}


def test_statistics_of_a_step() -> None:
    step = StepView("s", "linear", [], None, None)
    step.tasks = [_task(i, "s", 0.0, float(i), attempt=1 if i == 3 else 0) for i in range(1, 21)]
    step.tasks[0].status = "caught"
    stats = step_stats(step)
    assert stats == {
        "tasks": 20, "total": 210.0, "median": 10.5, "p95": 20.0, "max": 20.0,
        "retries": 1, "failures": 1,
    }  # fmt: skip


def test_the_dag_marks_failed_and_unreached_steps_and_the_fan_out() -> None:
    steps = _steps(10)
    assert [step_state(s) for s in steps.values()] == ["succeeded", "failed", "notrun", "notrun"]
    svg = dag_svg(steps)
    assert svg.count('class="dag-node') == 4
    assert '<g class="dag-node failed" data-step="work"' in svg
    assert "&#215;10</text>" in svg
    assert 'class="dag-edge taken" data-from="start" data-to="work"' in svg
    assert 'class="dag-edge nottaken" data-from="work" data-to="join"' in svg


def test_a_small_step_draws_each_task_and_a_big_one_is_aggregated() -> None:
    small = timeline_svg(_steps(DRAW_LIMIT))
    assert small.count('class="tl-task') == DRAW_LIMIT + 1
    big = timeline_svg(_steps(10_000))
    assert big.count('class="tl-task') == 1  # start's one task; work's 10,000 are buckets
    assert 0 < big.count('class="tl-bucket') <= BUCKETS
    assert 'class="tl-bucket failed"' in big
    assert len(big) < 100_000


def test_a_page_of_10_000_tasks_stays_small() -> None:
    view = RunView(
        flow="F", run_id="1", status="failed", user="me", tags=["user:me"], created=0.0,
        finished=9.0, steps=_steps(10_000), parameters={"alpha": "0.5"}, failed_logs=[],
        cards={}, error="ValueError: boom",
    )  # fmt: skip
    page = report_page(view, now=10.0)
    assert page.count("<tr") < 20  # the tasks travel as JSON, listed when a step is clicked
    assert len(page) < 2_000_000
