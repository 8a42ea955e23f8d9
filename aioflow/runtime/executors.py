"""Where task bodies run: on the event loop (async steps) or in a run's worker threads.

`ThreadLane` is a small thread pool tuned for many short tasks: threads take jobs from one
queue and report back through a `LoopInbox`, so a finished job costs a few microseconds instead
of the 40-80 us of a round trip through `asyncio.to_thread`. Threads start lazily up to the run's
`max_workers` and are daemons: a body that never returns cannot keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import sniffio

from .bridge import LoopInbox

T = TypeVar("T")
_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", contextvars.Context]


class ThreadLane:
    """A pool of worker threads owned by one run."""

    def __init__(self, max_threads: int, name: str = "aioflow") -> None:
        self.max_threads = max(1, max_threads)
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._abandoned = 0
        self._inbox: LoopInbox[tuple[asyncio.Future[Any], bool, Any]] | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker thread, in a copy of the caller's context."""
        if sniffio.current_async_library() != "asyncio":
            # Other anyio backends take the portable (slower) path.
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(self.max_threads)
            ctx = contextvars.copy_context()
            return await anyio.to_thread.run_sync(ctx.run, fn, *args, limiter=self._limiter)
        loop = asyncio.get_running_loop()
        if self._inbox is None:
            self._inbox = LoopInbox(loop, _settle)
        future: asyncio.Future[T] = loop.create_future()
        self._busy += 1
        working = len(self._threads) - self._abandoned
        if self._busy > working and working < self.max_threads:
            self._start_thread()
        self._jobs.put((fn, args, future, contextvars.copy_context()))
        try:
            return await future
        finally:
            self._busy -= 1

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args, future, ctx = job
            try:
                result = (future, True, ctx.run(fn, *args))
            except BaseException as exc:  # delivered to the awaiting coroutine
                result = (future, False, exc)
            assert self._inbox is not None
            self._inbox.put(result)

    def abandon_one(self) -> None:
        """Forget one busy thread (a timed-out body that cannot be stopped).

        It finishes its body in the background and then exits; a new thread takes its place.
        """
        self._abandoned += 1

    def close(self) -> None:
        """Let threads exit; one still running a body (abandoned too) finishes it, then exits."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads = []


def _settle(item: tuple[asyncio.Future[Any], bool, Any]) -> None:
    future, ok, value = item
    if future.done():  # the awaiting coroutine was cancelled: nobody wants this result
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
