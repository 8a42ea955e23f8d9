"""Tests of aioflow.runtime.executors.thread_lane: the thread lane that runs sync task bodies."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import anyio
import pytest

from aioflow.runtime.executors import ThreadLane

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_executors_var", default="unset")


def _fail(message: str) -> None:
    raise ValueError(message)


async def test_submit_hands_results_and_errors_to_the_callback_on_the_loop() -> None:
    lane = ThreadLane(2)
    loop_thread = threading.get_ident()
    results: list[tuple[bool, Any, bool]] = []
    both = anyio.Event()

    def done(ok: bool, value: Any) -> None:
        results.append((ok, value, threading.get_ident() == loop_thread))
        if len(results) == 2:
            both.set()

    try:
        lane.submit(threading.get_ident, (), done)
        lane.submit(_fail, ("nope",), done)
        await both.wait()
    finally:
        lane.close()
    by_ok = {ok: (value, on_loop) for ok, value, on_loop in results}
    thread_id, on_loop = by_ok[True]
    assert thread_id != loop_thread and on_loop  # ran in a worker, reported on the loop
    error, on_loop = by_ok[False]
    assert isinstance(error, ValueError) and str(error) == "nope" and on_loop


async def test_submit_runs_in_a_copy_of_the_callers_context() -> None:
    lane = ThreadLane(1)
    seen: list[Any] = []
    finished = anyio.Event()

    def body() -> str:
        value = VAR.get()
        VAR.set("changed by the job")
        return value

    def done(ok: bool, value: Any) -> None:
        seen.append(value)
        finished.set()

    token = VAR.set("the caller's")
    try:
        lane.submit(body, (), done)
        await finished.wait()
        assert VAR.get() == "the caller's"  # the job's change stayed in its copy
    finally:
        VAR.reset(token)
        lane.close()
    assert seen == ["the caller's"]


async def test_run_returns_the_value_and_raises_the_error() -> None:
    lane = ThreadLane(1)
    try:
        assert await lane.run(sum, [1, 2, 3]) == 6
        with pytest.raises(ValueError, match="bad"):
            await lane.run(_fail, "bad")
    finally:
        lane.close()


async def test_a_closed_lane_takes_no_more_jobs() -> None:
    lane = ThreadLane(1, name="L")
    assert await lane.run(sum, [1]) == 1
    lane.close()
    with pytest.raises(RuntimeError, match="thread lane L is closed"):
        lane.submit(sum, ([2],), lambda ok, value: None)
