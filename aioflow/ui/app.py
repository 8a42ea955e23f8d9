"""The live UI's Starlette application: read-only pages over one store.

    GET /                                        the runs (?flow= &tag= &status= &user=)
    GET /runs/{flow}/{run_id}                    the run's report page, live while it runs
    GET /runs/{flow}/{run_id}/events             server-sent events: the report's new body
    GET /cards/{flow}/{run_id}/{step}/{task}/{n} a task's n-th card
    GET /logs/{flow}/{run_id}/{step}/{task}      a task's stdout and stderr, as text

Every page reads the store through the client in a worker thread (SQLite reads block), in no
namespace (every user's runs are listed; `?user=` narrows), and nothing here writes: the
routes are GETs and the client's readers change nothing. A run's page follows it whether this
process or another started it: its event stream reads the store about once a second and sends
the report's body again when a task started or ended or the run's status changed, then `end`
once the run is over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from html import escape
from typing import Any, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..client import Run, Task
from ..client.cards import get_cards
from ..client.namespaces import scoped_namespace
from ..exceptions import AioflowException
from ..report import collect, report_body, report_page
from ..store import Store
from .runs_page import runs_page

#: How often a run's event stream reads the store, in seconds.
POLL_SECONDS = 1.0
CARD_URL = "/cards/{pathspec}/{n}"
LOG_URL = "/logs/{pathspec}"

T = TypeVar("T")


def _sse(event: str, data: str) -> str:
    # One `data:` line per line of the payload: an event ends at the first blank line.
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


def create_app(store: Store, *, poll_seconds: float = POLL_SECONDS) -> Starlette:
    """The UI's ASGI application over `store` (opened by the caller and kept open)."""
    limiter = anyio.CapacityLimiter(4)

    async def read(func: Callable[..., T], *args: Any) -> T:
        def in_no_namespace() -> T:
            with scoped_namespace(None):
                return func(*args)

        return await anyio.to_thread.run_sync(in_no_namespace, limiter=limiter)

    def find_run(flow: str, run_id: str) -> Run:
        return Run(f"{flow}/{run_id}", _store=store, _namespace_check=False)

    async def index(request: Request) -> Response:
        query = {k: v for k, v in request.query_params.items() if v}
        return HTMLResponse(await read(runs_page, store, query))

    async def run_page(request: Request) -> Response:
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]

        def render() -> str:
            run = find_run(flow, run_id)
            live = run.status == "running"
            head = (
                f'<meta name="aioflow-live" content="/runs/{escape(flow)}/{escape(run_id)}/events">'
                if live
                else ""
            ) + "<style>.ui-nav{max-width:1180px;margin:8px auto 0;padding:0 20px}</style>"
            page = report_page(
                collect(run, artifacts=not live), card_url=CARD_URL, log_url=LOG_URL,
                head_extra=head,
            )  # fmt: skip
            nav = '<nav class="ui-nav"><a href="/">← all runs</a></nav>'
            return page.replace("<body>", f"<body>{nav}", 1)

        return HTMLResponse(await read(render))

    async def events(request: Request) -> Response:
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]
        run = await read(find_run, flow, run_id)

        def snapshot() -> tuple[Any, str, bool]:
            finished = run.status != "running"
            view = collect(run, artifacts=finished)
            body = report_body(view, card_url=CARD_URL, log_url=LOG_URL)
            return view.fingerprint(), body, finished

        async def stream() -> AsyncIterator[str]:
            seen: Any = None
            while True:
                fingerprint, body, finished = await read(snapshot)
                if fingerprint != seen or finished:
                    seen = fingerprint
                    yield _sse("report", body)
                if finished:
                    yield _sse("end", run.id)
                    return
                # Polling the store is how a run started by another process is followed.
                await anyio.sleep(poll_seconds)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    def task_of(request: Request) -> Task:
        p = request.path_params
        return Task(
            f"{p['flow']}/{p['run_id']}/{p['step']}/{p['task_id']}",
            _store=store,
            _namespace_check=False,
        )

    async def card(request: Request) -> Response:
        def html() -> str | None:
            cards = get_cards(task_of(request))
            n = int(request.path_params["n"])
            return cards[n].html if 0 <= n < len(cards) else None

        page = await read(html)
        if page is None:
            return PlainTextResponse("No such card.", status_code=404)
        return HTMLResponse(page)

    async def logs(request: Request) -> Response:
        def text() -> str:
            task = task_of(request)
            return f"--- stdout\n{task.stdout}--- stderr\n{task.stderr}"

        return PlainTextResponse(await read(text))

    async def not_found(request: Request, exc: Exception) -> Response:
        message = getattr(exc, "message", None) or str(exc)
        return PlainTextResponse(message, status_code=404)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/runs/{flow}/{run_id}", run_page),
            Route("/runs/{flow}/{run_id}/events", events),
            Route("/cards/{flow}/{run_id}/{step}/{task_id}/{n:int}", card),
            Route("/logs/{flow}/{run_id}/{step}/{task_id}", logs),
        ],
        # A pathspec that names nothing is a 404 with the client's one-line message.
        exception_handlers={AioflowException: not_found, KeyError: not_found},
    )
