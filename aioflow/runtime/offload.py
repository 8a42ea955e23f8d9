"""aioflow's own blocking calls (SQLite, files, preparing a run) in anyio's worker threads.

At most `OFFLOAD_THREADS` such calls run at once per event loop. anyio starts a worker thread on
the event loop's thread whenever none is idle, and a thread start waits for the new thread to
get the GIL: a burst of a hundred runs would otherwise grow the pool to its 40 threads, holding
the loop up for a hundred milliseconds and more, and then keep forty threads fighting the loop
for the GIL. Four threads keep up with SQLite on two cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

T = TypeVar("T")

#: aioflow's own calls into worker threads running at once, per event loop.
OFFLOAD_THREADS = 4

_limiter: RunVar[anyio.CapacityLimiter] = RunVar("aioflow_offload_limiter")


def offload_limiter() -> anyio.CapacityLimiter:
    """The running event loop's limiter for aioflow's own blocking calls."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(OFFLOAD_THREADS)
        _limiter.set(limiter)
        return limiter


async def offload(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in a worker thread, within the loop's `offload_limiter()`.

    Only for calls that never wait for another offloaded call (that could deadlock).
    """
    return await anyio.to_thread.run_sync(func, *args, limiter=offload_limiter())


__all__ = ["OFFLOAD_THREADS", "offload", "offload_limiter"]
