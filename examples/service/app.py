"""A small web service that runs a flow per request, on the server's own event loop (FastAPI).

    pip install fastapi uvicorn
    uvicorn examples.service.app:app         # from the repository's root
    curl -X POST localhost:8000/score -H 'content-type: application/json' \
         -d '{"values": [1, 2, 3], "scale": 2}'
    curl localhost:8000/runs/1

Each request runs `ScoringFlow` with its own parameters and answers with the run's id and its
result; concurrent requests run concurrently, each run isolated from the others. A parameter
the flow rejects is a 422 with the same message the command line would print; a failed run is
a 500 naming the failed task. A client that disconnects cancels its run: the run is stored as
cancelled (resumable), and nothing is computed for nobody.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from aioflow import FlowFailed, Run, start_flow
from aioflow.events import Listener
from aioflow.exceptions import ParameterError
from aioflow.handle import FlowHandle

from .scoring import ScoringFlow


class ScoreRequest(BaseModel):
    values: list[float]
    scale: float = 1.0
    delay: float = 0.0


async def cancel_on_disconnect(request: Request, handle: FlowHandle) -> None:
    """Cancel the run when the client goes away (the server's next message is a disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            handle.cancel()
            return


def run_result(run: Run) -> dict[str, Any]:
    """The answer for a finished run (reads the store: call it in a worker thread)."""
    data = run["end"].task.data
    return {"run": run.pathspec, "scores": data.scores, "total": data.total}


def create_app(
    root: str | os.PathLike[str] | None = None, listeners: Sequence[Listener] = ()
) -> FastAPI:
    """The service, storing runs at `root` (default: $AIOFLOW_ROOT, else the nearest .aioflow).

    `listeners` receive every event of every run (for logs or metrics).
    """
    app = FastAPI(title="aioflow scoring service")

    @app.post("/score")
    async def score(body: ScoreRequest, request: Request) -> dict[str, Any]:
        failed: FlowFailed | None = None
        try:
            async with (
                start_flow(
                    ScoringFlow,
                    values=body.values,
                    scale=body.scale,
                    delay=body.delay,
                    root=root,
                    quiet=True,
                    listeners=listeners,
                ) as handle,
                anyio.create_task_group() as watch,
            ):
                watch.start_soon(cancel_on_disconnect, request, handle)
                try:
                    run = await handle.wait()
                except FlowFailed as exc:
                    failed = exc
                watch.cancel_scope.cancel()
        except ParameterError as exc:  # raised on entry, before anything is stored
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        if failed is not None:
            status = 499 if failed.run.status == "cancelled" else 500  # 499: client went away
            raise HTTPException(status_code=status, detail=str(failed)) from failed
        return await anyio.to_thread.run_sync(run_result, run)

    @app.get("/runs/{run_id}")
    async def read_run(run_id: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            run = Run(f"ScoringFlow/{run_id}", root=root)
            return {**run_result(run), "status": run.status}

        try:
            return await anyio.to_thread.run_sync(read)
        except Exception as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc

    return app


app = create_app()
