"""examples/service: a FastAPI app that runs a flow per request, driven through ASGI clients.

Concurrent requests through httpx's ASGI transport each get their own run and their own result;
a failing run is a 500 naming its task; a client that disconnects mid-run cancels its run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from aioflow import Flow, Run
from aioflow.events import Event, TaskStarted

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.service.app import create_app  # noqa: E402

REQUESTS = 20


async def test_concurrent_requests_each_get_their_own_run(aioflow_root: Path) -> None:
    app = create_app(root=aioflow_root)
    answers: dict[int, httpx.Response] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:

        async def ask(i: int) -> None:
            body = {"values": list(range(i + 1)), "scale": i / 2, "delay": 0.01}
            answers[i] = await client.post("/score", json=body)

        async with anyio.create_task_group() as tg:
            for i in range(REQUESTS):
                tg.start_soon(ask, i)

        runs = set()
        for i, response in answers.items():
            assert response.status_code == 200, response.text
            answer = response.json()
            expected = [v * (i / 2) for v in range(i + 1)]
            assert answer["scores"] == expected
            assert answer["total"] == sum(expected)
            runs.add(answer["run"])
            # the run is stored, with this request's parameters, and reads back the same
            run_id = answer["run"].split("/")[1]
            again = await client.get(f"/runs/{run_id}")
            assert again.json() == {**answer, "status": "succeeded"}
            run = Run(answer["run"])
            assert run.data.values == list(range(i + 1)) and run.data.scale == i / 2
            assert run.data.run_id == run_id
        assert len(runs) == REQUESTS  # each request got its own run

        missing = await client.get("/runs/999")
        assert missing.status_code == 404
    assert len(list(Flow("ScoringFlow"))) == REQUESTS


async def test_a_failing_run_is_a_500_naming_the_task(aioflow_root: Path) -> None:
    transport = httpx.ASGITransport(app=create_app(root=aioflow_root))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.post("/score", json={"values": []})
        invalid = await client.post("/score", json={"values": "not a list"})
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert "ScoringFlow/1/start/1" in detail and "Nothing to score" in detail
    assert invalid.status_code == 422  # the request model rejects it; no run is stored
    assert [run.id for run in Flow("ScoringFlow")] == ["1"]


async def test_a_client_that_disconnects_cancels_its_run(aioflow_root: Path) -> None:
    scoring = anyio.Event()

    def listen(event: Event) -> None:
        if isinstance(event, TaskStarted) and event.step_name == "score":
            scoring.set()

    app = create_app(root=aioflow_root, listeners=[listen])
    body = json.dumps({"values": [1, 2], "delay": 3600}).encode()  # would take an hour
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await scoring.wait()  # the run is under way: now the client goes away
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/score",
        "raw_path": b"/score",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"service")],
        "client": ("127.0.0.1", 1234),
        "server": ("service", 80),
    }
    with anyio.fail_after(30):
        await app(scope, receive, send)
    assert sent[0]["status"] == 499
    (run,) = list(Flow("ScoringFlow"))
    assert run.status == "cancelled" and not run.successful
    assert all(not task.finished for task in run["score"])


async def test_runs_are_read_back_from_the_services_own_store(
    aioflow_root: Path, tmp_path: Path
) -> None:
    # A store other than $AIOFLOW_ROOT's: the service writes and reads it through `root=`.
    own = tmp_path / "service-store"
    transport = httpx.ASGITransport(app=create_app(root=own))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        answer = (await client.post("/score", json={"values": [1, 2], "scale": 3})).json()
        again = await client.get(f"/runs/{answer['run'].split('/')[1]}")
    assert again.status_code == 200, again.text
    assert again.json() == {**answer, "status": "succeeded"}
    assert [run.pathspec for run in Flow("ScoringFlow", root=own)] == [answer["run"]]
    assert not aioflow_root.exists()
