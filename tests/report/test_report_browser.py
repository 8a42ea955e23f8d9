"""The report in a real browser (Debian's chromium, headless, driven by Playwright): a flow
with a foreach, a switch and a failed task that @catch caught opens with no console error,
its DAG and timeline are drawn, a click on a step lists its tasks, and a card renders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aioflow import run_flow_sync
from aioflow.report import write_report
from tests.browser import DOCS_SCREENSHOT, artifacts_folder, browser_page
from tests.report.flows import ReportFlow


def test_the_report_opens_draws_its_charts_lists_tasks_and_shows_a_card(tmp_path: Path) -> None:
    run = run_flow_sync(ReportFlow, root=tmp_path / "store", quiet=True)
    report = write_report(run, tmp_path / "run.html")
    shots = artifacts_folder(tmp_path)
    with browser_page(tmp_path / "profile") as (page, errors):
        page.goto(report.as_uri(), wait_until="load")
        # The DAG: a node per step, with what happened to each.
        nodes = page.locator("#dag .dag-node")
        assert nodes.count() == 7
        box = page.locator("#dag").bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 20
        assert page.locator('.dag-node.caught[data-step="small"]').count() == 1
        assert page.locator('.dag-node.notrun[data-step="large"]').count() == 1
        assert page.locator('.dag-edge.taken[data-to="small"]').count() == 1
        assert page.locator('.dag-edge.nottaken[data-to="large"]').count() == 1
        assert page.locator("#dag .fanout").text_content() == "\N{MULTIPLICATION SIGN}4"
        # The timeline: a bar per task (7 steps ran 9 tasks), drawn with a size.
        bars = page.locator("#timeline rect.tl-task")
        assert bars.count() == 9
        bar = bars.first.bounding_box()
        assert bar is not None and bar["width"] > 0 and bar["height"] > 0
        assert page.locator("#failed .failed-log").count() == 1
        assert "a failure the report shows" in page.locator("#failed").inner_text()
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        # A click on a step lists its tasks.
        page.locator('.dag-node[data-step="square"]').click()
        rows = page.locator("#step-task-table tr.task-row")
        rows.first.wait_for(state="visible")
        assert rows.count() == 4
        # The README's picture: the top of the page, a step's tasks listed.
        page.screenshot(path=str(shots / "report-top.png"))
        # A card (embedded in the file) renders its components in a frame.
        page.locator("#step-task-table a.card-link").first.click()
        frame = page.frame_locator("#card-frame")
        frame.locator("main.aioflow-card").wait_for(state="visible")
        assert frame.locator("h1", has_text="Square of 0").count() == 1
        assert frame.locator("table").count() >= 1
        page.screenshot(path=str(shots / "report-card.png"), full_page=True)
        assert errors == []
    assert (shots / "report.png").stat().st_size > 10_000
    if os.environ.get("AIOFLOW_UPDATE_DOCS") == "1":
        shutil.copyfile(shots / "report-top.png", DOCS_SCREENSHOT)
