"""Where task bodies run: on the event loop (async steps) or in a run's worker threads.

`ThreadLane` is a small thread pool tuned for many short tasks: threads take jobs from one
queue and report back through a `LoopInbox`, so a finished job costs a few microseconds instead
of the 40-80 us of a round trip through `asyncio.to_thread`. A lane uses at most the run's
`max_workers` threads at once, added lazily: a job that finds every thread busy gets a new one
only when no job was taken for `GROW_AFTER`, so a run of tiny tasks stays on a thread or two
while blocked tasks (sleeping, waiting on I/O) still get a thread each.

Threads are borrowed from the event loop's `IdleThreads` and given back when the run ends, so a
process running many short runs (a service, a notebook) does not start threads for each: a
thread start costs milliseconds of GIL handoffs that every other thread, the event loop's
included, waits through. A thread serves one lane at a time, so a run's tasks never wait for
another run's. New threads are started off the loop, idle ones exit after `IDLE_SECONDS`, and
all are daemons: a body that never returns cannot keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio.lowlevel import RunVar

from ..bridge import LoopInbox

T = TypeVar("T")
#: Receives a job's result on the loop: (True, value) or (False, the exception it raised).
Done = Callable[[bool, Any], None]
_Job = tuple[Callable[..., Any], tuple[Any, ...], Done, contextvars.Context]

#: Seconds without any job taken after which a waiting job gets a new thread.
GROW_AFTER = 0.005
#: Seconds an idle thread waits for a lane before it exits.
IDLE_SECONDS = 10.0

_names = itertools.count()


class _Worker:
    """A thread that serves one lane after another."""

    def __init__(self, pool: IdleThreads) -> None:
        self._pool = weakref.ref(pool)
        self.assign: queue.SimpleQueue[ThreadLane | None] = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._main, name=f"aioflow-worker-{next(_names)}", daemon=True
        )

    def _main(self) -> None:
        while True:
            try:
                lane = self.assign.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                pool = self._pool()
                if pool is None or pool.retire(self):
                    return
                continue  # handed a lane just now
            if lane is None:
                return
            lane._work()
            pool = self._pool()
            if pool is None or not pool.give_back(self):
                return


class IdleThreads:
    """The event loop's idle worker threads (one per loop, see `idle_threads()`)."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> _Worker | None:
        """An idle worker, or None."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give_back(self, worker: _Worker) -> bool:
        """Park a worker whose lane closed (its thread); False when it should exit."""
        with self._lock:
            if self._closed:
                return False
            self._idle.append(worker)
            return True

    def retire(self, worker: _Worker) -> bool:
        """Remove an idle worker that timed out (its thread); False if it was just taken."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False

    def __del__(self) -> None:
        # The loop is gone: let the idle threads exit now rather than after IDLE_SECONDS.
        self._closed = True
        for worker in self._idle:
            worker.assign.put(None)


_idle_threads: RunVar[IdleThreads] = RunVar("aioflow_idle_threads")


def idle_threads() -> IdleThreads:
    """The running event loop's IdleThreads."""
    try:
        return _idle_threads.get()
    except LookupError:
        pool = IdleThreads()
        _idle_threads.set(pool)
        return pool


class ThreadLane:
    """The worker threads of one run (at most `max_threads` at once)."""

    def __init__(self, max_threads: int, name: str = "aioflow") -> None:
        self.max_threads = max(1, max_threads)
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = 0
        self._taken = 0  # jobs taken so far (counted by the threads; a hint, not exact)
        self._busy = 0
        self._abandoned = 0
        self._inbox: LoopInbox[tuple[Done, bool, Any]] | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._pool: IdleThreads | None = None
        self._check: asyncio.TimerHandle | None = None
        self._closed = False

    def accepts_callbacks(self) -> bool:
        """True when `submit` can be used: on asyncio (other backends take `run`'s slow path)."""
        if self._inbox is not None:
            return True
        try:  # anyio on asyncio has a running asyncio loop; on trio there is none
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], done: Done) -> None:
        """Run `fn(*args)` in a worker thread (in a copy of the caller's context) and hand its
        result to `done` on the loop (event loop thread, asyncio only; see accepts_callbacks).

        No future and no coroutine resumption: a scheduler that reacts to results directly
        saves both on every task, which a foreach of many tiny tasks feels.
        """
        if self._closed:
            raise RuntimeError(f"thread lane {self.name} is closed")
        loop = asyncio.get_running_loop()
        if self._inbox is None:
            self._inbox = LoopInbox(loop, self._deliver)
            self._pool = idle_threads()
        self._busy += 1
        self._jobs.put((fn, args, done, contextvars.copy_context()))
        working = self._threads - self._abandoned
        if working == 0:
            # As in _grow_check: starting a thread must not block the event loop.
            self._start_thread(loop)
        elif self._busy > working and working < self.max_threads and self._check is None:
            self._check = loop.call_later(GROW_AFTER, self._grow_check, loop, self._taken)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker thread, in a copy of the caller's context."""
        if not self.accepts_callbacks():
            # Other anyio backends take the portable (slower) path.
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(self.max_threads)
            ctx = contextvars.copy_context()
            return await anyio.to_thread.run_sync(ctx.run, fn, *args, limiter=self._limiter)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.submit(fn, args, functools.partial(_settle, future))
        return await future

    def _grow_check(self, loop: asyncio.AbstractEventLoop, progress: int) -> None:
        """Add a thread when jobs wait and the lane's threads are stuck, not just busy.

        Most jobs take microseconds, so a job that finds every thread busy just waits in the
        queue: while the threads keep taking jobs they will get to it, and a run of many tiny
        tasks stays on a thread or two (a hundred concurrent runs then do not keep hundreds of
        threads fighting the event loop for the GIL). When no job was taken for `GROW_AFTER`,
        the threads are blocked (sleeping, waiting on I/O): the lane adds one, up to
        `max_threads`, and looks again. One timer per lane, not one per job: jobs pay nothing.
        """
        self._check = None
        working = self._threads - self._abandoned
        if self._busy <= working or working >= self.max_threads:
            return
        if self._taken == progress:
            self._start_thread(loop)
        self._check = loop.call_later(GROW_AFTER, self._grow_check, loop, self._taken)

    def _start_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put one more thread to work on this lane: an idle one, or a new one."""
        assert self._pool is not None
        self._threads += 1
        worker = self._pool.take() or _Worker(self._pool)
        if worker.thread.ident is None:
            # Thread.start() waits until the new thread runs, which takes milliseconds when
            # other threads hold the GIL: it must not block the loop, so a helper thread of the
            # loop's executor starts it.
            loop.run_in_executor(None, _start_and_assign, worker, self)
        else:
            worker.assign.put(self)

    def _work(self) -> None:
        """Serve this lane's jobs until the lane closes (in a worker thread)."""
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args, done, ctx = job
            self._taken += 1
            try:
                result = (done, True, ctx.run(fn, *args))
            except BaseException as exc:  # delivered to whoever submitted the job
                result = (done, False, exc)
            assert self._inbox is not None
            self._inbox.put(result)

    def _deliver(self, item: tuple[Done, bool, Any]) -> None:
        done, ok, value = item
        self._busy -= 1
        done(ok, value)

    def abandon_one(self) -> None:
        """Forget one busy thread (a timed-out body that cannot be stopped).

        It finishes its body in the background; a new thread takes its place meanwhile.
        """
        self._abandoned += 1

    def close(self) -> None:
        """Give the threads back; one still running a body (abandoned too) finishes it first.

        Jobs cannot be submitted afterwards; results of jobs still running are delivered."""
        self._closed = True
        if self._check is not None:
            self._check.cancel()
            self._check = None
        for _ in range(self._threads):
            self._jobs.put(None)
        self._threads = 0


def _start_and_assign(worker: _Worker, lane: ThreadLane) -> None:
    worker.thread.start()
    worker.assign.put(lane)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the awaiting coroutine was cancelled: nobody wants this result
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
