"""Where sync task bodies run: the process's worker threads, shared by every run's lane.

`ThreadLane` is a run's share of `SharedThreads`, one small pool for the whole process, tuned
for many short tasks: threads take jobs from one queue and report back through their loop's
`LoopInbox`, so a finished job costs a few microseconds instead of the 40-80 us of a round
trip through `asyncio.to_thread`.

A lane runs at most its run's `max_workers` jobs at once; more wait in the lane, on the loop.
Threads belong to no run: an idle run holds none, so a thousand concurrent runs do not hold a
thousand threads (each costs memory, and a thread start costs milliseconds of GIL handoffs that
the event loop waits through). The pool grows lazily and is bounded: a job that finds every
thread busy gets a new one only when no job was taken for a while (see `_grow_check`), so
tiny tasks stay on a thread or two, while blocked tasks (sleeping, waiting on I/O) get a thread
each, up to `MAX_THREADS` for the process. New threads are started off the loop, idle ones
exit after `IDLE_SECONDS`, and all are daemons: a body that never returns cannot keep the
process alive.
A job whose caller stopped waiting (a @timeout, a cancellation) is abandoned: its thread
finishes it in the background and another thread takes its place meanwhile.

Results go back in bursts: a thread that finishes a job while more are queued takes the next
one at once and leaves the result for the loop without waking it (each wake-up is a socket
write, a loop iteration and a hand-over of the GIL, a fifth of a tiny task's cost). The loop is
woken when the queue runs dry or `QUIET_MAX` results wait, and while it has jobs out it drains
on its own every `TICK` (less often while nothing comes), so a result is late by at most that
when the job after it is a long one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio.lowlevel import RunVar

from ..bridge import LoopInbox

T = TypeVar("T")
#: Receives a job's result on the loop: (True, value) or (False, the exception it raised).
Done = Callable[[bool, Any], None]

#: Seconds between two checks of whether waiting jobs need another thread.
GROW_AFTER = 0.005
#: Checks in a row that found no job taken (the threads blocked) before a thread is added.
STUCK_CHECKS = 2
#: Seconds an idle thread waits for a job before it exits.
IDLE_SECONDS = 10.0
#: Worker threads of the process at most, all runs and event loops together.
MAX_THREADS = 32
#: Results a thread leaves for its loop without waking it, at most.
QUIET_MAX = 64
#: Seconds between a loop's own drains of results while it has jobs out; the pause grows to
#: `TICK_MAX` while they bring nothing (long jobs).
TICK = 0.002
TICK_MAX = 0.064

_names = itertools.count()


class _Ticket:
    """The state of one job, shared by its thread and its loop (under the pool's lock)."""

    __slots__ = ("abandoned", "finished")

    def __init__(self) -> None:
        self.finished = False
        self.abandoned = False


#: (lane, ticket, function, arguments, done, context)
_Job = tuple["ThreadLane", _Ticket, Callable[..., Any], tuple[Any, ...], Done, contextvars.Context]
#: What a thread hands back to the job's loop: (lane, ticket, done, ok, value).
_Result = tuple["ThreadLane", _Ticket, Done, bool, Any]


class SharedThreads:
    """The process's worker threads for sync task bodies (see the module's doc)."""

    def __init__(self, max_threads: int = MAX_THREADS) -> None:
        self.max_threads = max_threads
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # started and not exited
        self._abandoned = 0  # threads busy with a job nobody waits for
        self._busy = 0  # jobs queued or running (abandoned ones included)
        self._taken = 0  # jobs taken so far (a progress hint, not exact)
        self._to_start: queue.SimpleQueue[threading.Thread] = queue.SimpleQueue()
        self._starter: threading.Thread | None = None

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        return self._threads

    def submit(self, job: _Job, on: _LoopState) -> None:
        """Queue a job (on its loop); make sure a thread will take it."""
        on.outstanding += 1
        if not on.ticking:
            on.ticking = True
            on.loop.call_later(TICK, _tick, on, TICK, context=on.inbox.context)
        with self._lock:
            self._busy += 1
            working = self._threads - self._abandoned
            start = working == 0
            if start:
                self._threads += 1
        self._jobs.put(job)
        if start:
            self._start_thread()
        elif not on.checking and self._busy - self._abandoned > working:
            # Checked from each loop that waits (a loop that closes takes its timer along).
            on.checking = True
            self._check_later(on)

    def _check_later(self, on: _LoopState) -> None:
        loop = on.loop
        loop.call_later(GROW_AFTER, self._grow_check, on, self._taken, loop.time() + GROW_AFTER)

    def _grow_check(self, on: _LoopState, progress: int, due: float) -> None:
        """Add a thread when jobs wait and the threads are stuck, not just busy.

        Most jobs take microseconds, so a job that finds every thread busy just waits in the
        queue: while the threads keep taking jobs they will get to it. When no job was taken in
        `STUCK_CHECKS` checks `GROW_AFTER` apart, the threads are blocked (sleeping, waiting on
        I/O): one more starts, up to `max_threads`, and the check looks again. One timer for
        the pool, not one per job.

        A check that runs late says nothing: the loop was busy (handling a burst of results,
        holding the GIL the threads need to take a job) or the machine was (every thread
        waiting for a core). Counted as stuck, such windows started a thread each on a loaded
        machine: 15 threads for a run of tiny tasks, each one more to wake and to share the GIL.
        """
        late = on.loop.time() - due > GROW_AFTER
        with self._lock:
            working = self._threads - self._abandoned
            waiting = self._busy - self._abandoned > working
            stuck = waiting and self._taken == progress and not late
            on.stuck_checks = on.stuck_checks + 1 if stuck else 0
            start = (
                waiting
                and self._threads < self.max_threads
                and (on.stuck_checks >= STUCK_CHECKS or working == 0)
            )
            if start:
                self._threads += 1
                on.stuck_checks = 0
        on.checking = waiting
        if start:
            self._start_thread()
        if waiting:
            self._check_later(on)

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"aioflow-worker-{next(_names)}", daemon=True
        )
        # Thread.start() waits until the new thread runs, which takes milliseconds when other
        # threads hold the GIL: the loop must not wait, so the starter thread starts it. (Not
        # the loop's default executor: it starts its own threads on the caller's thread, so
        # the loop waited just the same, 20-130 ms at a time with 1,000 runs on a busy machine.)
        self._to_start.put(thread)
        starter = self._starter
        if starter is None or not starter.is_alive():  # the first start, or after a fork
            with self._lock:
                if self._starter is starter:
                    self._starter = threading.Thread(
                        target=self._start_threads, name="aioflow-thread-starter", daemon=True
                    )
                    self._starter.start()  # waits, once per process

    def _start_threads(self) -> None:
        """Start each worker thread that is asked for (in the starter thread, for good)."""
        while True:
            self._to_start.get().start()

    def _work(self) -> None:
        """Take jobs until none comes for IDLE_SECONDS (in a worker thread)."""
        jobs = self._jobs
        while True:
            try:
                job = jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if jobs.empty():
                        self._threads -= 1
                        return
                continue  # a job came just now
            lane, ticket, fn, args, done, ctx = job
            self._taken += 1
            try:
                result: _Result = (lane, ticket, done, True, ctx.run(fn, *args))
            except BaseException as exc:  # delivered to whoever submitted the job
                result = (lane, ticket, done, False, exc)
            with self._lock:
                ticket.finished = True
                self._busy -= 1
                if ticket.abandoned:
                    self._abandoned -= 1  # this thread works for the living again
            inbox = lane._on.inbox  # type: ignore[union-attr]  # (set before any submit)
            if jobs.empty() or len(inbox) >= QUIET_MAX:
                inbox.put(result)
            else:  # the next job follows at once: this result goes with a later wake-up
                inbox.put_quiet(result)
            # Idle, this frame must not hold the last job: its lane holds its event loop.
            del job, lane, ticket, fn, args, done, ctx, result, inbox

    def abandon(self, ticket: _Ticket) -> bool:
        """Count the thread running this job as lost until the job ends; False when it ended."""
        with self._lock:
            if ticket.finished:
                return False
            ticket.abandoned = True
            self._abandoned += 1
            return True


_shared = SharedThreads()


def shared_threads() -> SharedThreads:
    """The process's worker threads."""
    return _shared


class _LoopState:
    """One event loop's side of the shared threads: where its jobs' results go, and whether
    a growth check is scheduled on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: this state lives in the loop's RunVar storage, which is keyed weakly by the
        # loop; a strong reference here would keep every loop that ever ran a task alive.
        self._loop = weakref.ref(loop)
        self.inbox: LoopInbox[_Result] = LoopInbox(loop, _deliver_result)
        self.checking = False
        #: growth checks in a row that found the threads stuck
        self.stuck_checks = 0
        #: jobs submitted from this loop whose results were not handed to it yet
        self.outstanding = 0
        #: a `_tick` is scheduled on this loop
        self.ticking = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (alive: only its own tasks use this state)."""
        loop = self._loop()
        assert loop is not None
        return loop


_loop_states: RunVar[_LoopState] = RunVar("aioflow_thread_results")


def _loop_state(loop: asyncio.AbstractEventLoop) -> _LoopState:
    """The running loop's state (one per loop, gone with it)."""
    try:
        return _loop_states.get()
    except LookupError:
        state = _LoopState(loop)
        _loop_states.set(state)
        return state


def _tick(on: _LoopState, delay: float) -> None:
    """Hand over results left without a wake-up; again later while jobs are out (on the loop)."""
    found = len(on.inbox)
    if found:
        on.inbox.drain()
    if on.outstanding or len(on.inbox):
        delay = TICK if found else min(delay * 2, TICK_MAX)
        on.loop.call_later(delay, _tick, on, delay, context=on.inbox.context)
    else:
        on.ticking = False


def _deliver_result(result: _Result) -> None:
    lane, ticket, done, ok, value = result
    assert lane._on is not None
    lane._on.outstanding -= 1
    if ticket.abandoned:
        return  # its lane slot was freed when it was abandoned; nobody waits for it
    lane._release()
    done(ok, value)


class ThreadLane:
    """One run's share of the shared worker threads: at most `max_threads` jobs at once."""

    def __init__(self, max_threads: int, name: str = "aioflow") -> None:
        self.max_threads = max(1, max_threads)
        self.name = name
        self._running = 0  # jobs handed to the shared threads and not delivered
        self._waiting: deque[_Job] = deque()  # jobs over the lane's limit
        self._on: _LoopState | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._closed = False

    def accepts_callbacks(self) -> bool:
        """True when `submit` can be used: on asyncio (other backends take `run`'s slow path)."""
        if self._on is not None:
            return True
        try:  # anyio on asyncio has a running asyncio loop; on trio there is none
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], done: Done) -> _Ticket:
        """Run `fn(*args)` in a worker thread (in a copy of the caller's context) and hand its
        result to `done` on the loop (event loop thread, asyncio only; see accepts_callbacks).
        Returns the job's ticket, with which `run` abandons it.

        No future and no coroutine resumption: a scheduler that reacts to results directly
        saves both on every task, which a foreach of many tiny tasks feels.
        """
        if self._closed:
            raise RuntimeError(f"thread lane {self.name} is closed")
        on = self._on
        if on is None:
            on = self._on = _loop_state(asyncio.get_running_loop())
        ticket = _Ticket()
        job = (self, ticket, fn, args, done, contextvars.copy_context())
        if self._running < self.max_threads:
            self._running += 1
            _shared.submit(job, on)
        else:
            self._waiting.append(job)
        return ticket

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker thread, in a copy of the caller's context.

        Cancelled while the job runs, the job is abandoned: it finishes in the background, and
        its place in the lane and its thread are given to others meanwhile.
        """
        if not self.accepts_callbacks():
            # Other anyio backends take the portable (slower) path.
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(self.max_threads)
            ctx = contextvars.copy_context()
            return await anyio.to_thread.run_sync(ctx.run, fn, *args, limiter=self._limiter)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        ticket = self.submit(fn, args, functools.partial(_settle, future))
        try:
            return await future
        except asyncio.CancelledError:
            self._abandon(ticket)
            raise

    def _abandon(self, ticket: _Ticket) -> None:
        if any(job[1] is ticket for job in self._waiting):
            self._waiting = deque(job for job in self._waiting if job[1] is not ticket)
        elif _shared.abandon(ticket):
            self._release()

    def _release(self) -> None:
        """A job of this lane ended (or was abandoned): the next waiting one may start."""
        self._running -= 1
        if self._waiting and self._on is not None:
            self._running += 1
            _shared.submit(self._waiting.popleft(), self._on)

    def close(self) -> None:
        """Take no more jobs; those queued still run and deliver their results."""
        self._closed = True


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the awaiting coroutine was cancelled: nobody wants this result
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
