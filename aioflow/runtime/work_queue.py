"""The queue between the scheduler and its worker coroutines (async bodies, process steps,
timeouts, reservations, clones): tasks in the order they were made ready.

It does what anyio's memory object stream did here, with less on the path of every task: `put`
never blocks, and a busy worker takes its next task from `specs` itself, with no call into a
stream's machinery, which a wide foreach of async steps paid on both ends of every task. The
order is the stream's: a task put while workers wait goes to the one that waited longest, and
a worker that finds none lets the loop run once before it waits, so which worker runs what,
and so the order tasks start in and the ids a foreach's children take, are unchanged.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import checkpoint

if TYPE_CHECKING:
    from .task import TaskSpec


class WorkQueue:
    """The tasks waiting for a worker coroutine, in order (see the module's doc)."""

    __slots__ = ("_idle", "closed", "specs")

    def __init__(self) -> None:
        #: the queued tasks nobody waits for, oldest first (a busy worker pops the next itself)
        self.specs: deque[TaskSpec] = deque()
        self._idle: deque[_Waiting] = deque()
        #: no task will be put any more: workers return once `specs` is empty
        self.closed = False

    def put(self, spec: TaskSpec) -> None:
        """Queue a task, or hand it to the worker that has waited longest."""
        if self._idle:
            waiting = self._idle.popleft()
            waiting.spec = spec
            waiting.event.set()
        else:
            self.specs.append(spec)

    def close(self) -> None:
        """No more tasks: every waiting worker wakes with none and returns."""
        self.closed = True
        while self._idle:
            self._idle.popleft().event.set()

    async def take(self) -> TaskSpec | None:
        """The next task, waiting for one when none is queued; None once closed and empty.

        It lets the loop run first, as the stream's `receive` did: a task put meanwhile (by a
        callback already scheduled) is taken without waiting.
        """
        await checkpoint()
        if self.specs:
            return self.specs.popleft()
        if self.closed:
            return None
        waiting = _Waiting()
        self._idle.append(waiting)
        try:
            await waiting.event.wait()
        except BaseException:
            if waiting.spec is None:
                self._idle.remove(waiting)
            else:  # handed one as this worker was cancelled: the next worker takes it
                self.specs.appendleft(waiting.spec)
            raise
        return waiting.spec


class _Waiting:
    """A worker waiting in `WorkQueue.take`, and the task handed to it."""

    __slots__ = ("event", "spec")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.spec: TaskSpec | None = None


__all__ = ["WorkQueue"]
