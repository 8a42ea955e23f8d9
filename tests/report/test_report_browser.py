"""The report in a real browser (Debian's chromium, headless, driven by Playwright): a flow
with a foreach, a switch and a failed task that @catch caught opens with no console error,
its DAG and timeline are drawn, a click on a step lists its tasks, and a card renders. A card
with a VegaChart draws its chart offline, on its own and inside a report, asking for nothing
but its own file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from aioflow import run_flow_sync
from aioflow.card_html import VEGA_VERSIONS, chart_scripts, row
from aioflow.card_html import page as card_page
from aioflow.cards import VegaChart, get_cards
from aioflow.report import write_report
from tests.browser import DOCS_SCREENSHOT, artifacts_folder, browser_page
from tests.report.flows import ChartFlow, ReportFlow


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


def _drawn_size(chart: Any) -> tuple[float, float]:
    """The width and height of the SVG a chart's box was drawn with."""
    svg = chart.locator(".af-vega svg").first
    svg.wait_for(state="visible")
    box = svg.bounding_box()
    assert box is not None
    return box["width"], box["height"]


def test_a_card_with_a_vega_chart_draws_it_offline(tmp_path: Path) -> None:
    run = run_flow_sync(ChartFlow, root=tmp_path / "store", quiet=True)
    (card,) = get_cards(next(iter(run["plot"])), id="chart")
    target = card.write(tmp_path / "chart.html")
    with browser_page(tmp_path / "profile") as (page, errors):
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(target.as_uri(), wait_until="load")
        width, height = _drawn_size(page.locator(".af-vega-chart"))
        assert width > 100 and height > 50
        # A bar per value, and the title the spec gives.
        assert page.locator(".af-vega svg .mark-rect path").count() >= 3
        assert "squares" in page.locator(".af-vega svg").first.inner_html()
        loaded = page.evaluate("[vega.version, vegaLite.version, vegaEmbed.version]")
        assert loaded == [VEGA_VERSIONS[name] for name in ("vega", "vega-lite", "vega-embed")]
        page.screenshot(path=str(artifacts_folder(tmp_path) / "card-chart.png"), full_page=True)
        # A spec the libraries refuse: their message in the chart's place, no console error.
        refused = VegaChart({"mark": "no-such-mark", "data": {"values": [{"a": 1}]}})
        page.set_content(card_page("t", row(refused.render()), card_type="blank", card_id=None))
        message = page.locator(".af-vega-error")
        message.wait_for(state="visible")
        assert message.inner_text().startswith("The chart could not be drawn: ")
        assert errors == []
        assert [url for url in requests if url != target.as_uri()] == []


def test_the_report_carries_the_chart_libraries_once_and_its_cards_draw_their_charts(
    tmp_path: Path,
) -> None:
    run = run_flow_sync(ChartFlow, root=tmp_path / "store", quiet=True)
    report = write_report(run, tmp_path / "run.html")
    text = report.read_text()
    # Two chart cards embedded, the libraries once (as JSON text, a little longer than as is).
    assert text.count('data-card="card-') == 2
    assert len(chart_scripts()) < len(text) < 1.5 * len(chart_scripts())
    with browser_page(tmp_path / "profile") as (page, errors):
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri(), wait_until="load")
        for n in range(2):
            page.locator("#cards a.card-link").nth(n).click()
            frame = page.frame_locator("#card-frame")
            frame.locator("h1", has_text=f"Squares up to {2 + 2 * n}").wait_for(state="visible")
            width, height = _drawn_size(frame.locator(".af-vega-chart"))
            assert width > 100 and height > 50
        page.screenshot(path=str(artifacts_folder(tmp_path) / "report-chart.png"), full_page=True)
        assert errors == []
        assert [url for url in requests if url != report.as_uri()] == []
