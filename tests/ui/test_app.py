"""The UI's pages over a real store, served by uvicorn on 127.0.0.1: the runs and their filters,
a run's report with links to its cards and logs, the event stream of a finished run, a card,
a task's logs, a 404 naming what is missing, and nothing written to the store."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from aioflow import run_flow_sync
from aioflow.client import Step, shared_store
from aioflow.ui.app import create_app
from aioflow.ui.server import bind
from tests.report.flows import ReportFlow


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui") / "store"
    run_flow_sync(ReportFlow, root=root, quiet=True, tags=["nightly"])
    run_flow_sync(ReportFlow, root=root, quiet=True, width=2)
    return root


@pytest.fixture(scope="module")
def client(store_root: Path) -> Iterator[httpx.Client]:
    # The socket listens before the server starts, so requests queue until it accepts them.
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(
        create_app(shared_store(store_root)), lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        port = sock.getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _digest(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith("-shm"))
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


@pytest.mark.parametrize(
    ("query", "runs"),
    [
        ("", ["ReportFlow/2", "ReportFlow/1"]),
        ("?tag=nightly", ["ReportFlow/1"]),
        ("?status=succeeded&flow=ReportFlow", ["ReportFlow/2", "ReportFlow/1"]),
        ("?status=failed", []),
        ("?user=nobody-at-all", []),
        ("?flow=OtherFlow", []),
    ],
)
def test_the_runs_page_lists_runs_by_flow_tag_status_and_user(
    client: httpx.Client, query: str, runs: list[str]
) -> None:
    page = client.get("/" + query)
    assert page.status_code == 200
    listed = [part.split('"', 1)[0] for part in page.text.split('data-run="')[1:]]
    assert listed == runs
    if not runs:
        assert "No runs match." in page.text


def test_a_run_page_is_its_report_with_links_to_cards_and_logs(client: httpx.Client) -> None:
    page = client.get("/runs/ReportFlow/1")
    assert page.status_code == 200
    assert 'id="dag"' in page.text and 'id="timeline"' in page.text
    assert 'href="/cards/ReportFlow/1/square/2/0"' in page.text
    assert '"log_url": "/logs/{pathspec}"' in page.text
    assert 'name="aioflow-live"' not in page.text  # the run is over: nothing to follow


def test_the_event_stream_of_a_finished_run_sends_its_report_then_ends(
    client: httpx.Client,
) -> None:
    with client.stream("GET", "/runs/ReportFlow/1/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert text.startswith('event: report\ndata: <div id="report" data-status="succeeded">')
    assert text.endswith("event: end\ndata: 1\n\n")


def test_cards_and_logs_are_served_and_what_is_missing_is_a_404(
    client: httpx.Client, store_root: Path
) -> None:
    card = client.get("/cards/ReportFlow/1/square/2/0")
    assert card.status_code == 200 and "Square of 0" in card.text
    assert client.get("/cards/ReportFlow/1/square/2/5").status_code == 404
    failed = next(iter(Step("ReportFlow/1/small", root=store_root, _namespace_check=False)))
    logs = client.get(f"/logs/{failed.pathspec}")
    assert logs.status_code == 200
    assert "about to fail on purpose" in logs.text and "ValueError" in logs.text
    missing = client.get("/runs/ReportFlow/99")
    assert missing.status_code == 404 and missing.text == "Run('ReportFlow/99') does not exist"


def test_the_ui_writes_nothing(client: httpx.Client, store_root: Path) -> None:
    before = _digest(store_root)
    for url in (
        "/",
        "/runs/ReportFlow/1",
        "/runs/ReportFlow/1/events",
        "/cards/ReportFlow/1/square/2/0",
    ):
        assert client.get(url).status_code == 200
    assert client.post("/runs/ReportFlow/1").status_code == 405
    assert _digest(store_root) == before
