"""Handing work from other threads to the event loop, many items per wake-up.

`loop.call_soon_threadsafe` costs a pipe write and a loop wake-up; done once per finished task
or printed line it dominates the cost of a small task. `LoopInbox` queues items from any thread
and wakes the loop only when no wake-up is already pending, so a burst costs one. A thread that
is about to hand over more soon may also queue an item without waking the loop at all
(`put_quiet`); whoever does that must see that a wake-up or a `drain` follows.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Items handed to the handler per loop iteration.
BATCH = 1000


class LoopInbox(Generic[T]):
    """Items put from any thread are passed, in order, to `handler` on the loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Callable[[T], None]) -> None:
        # Weakly: an inbox kept in a RunVar (the loop's own storage, keyed weakly by the loop)
        # must not keep its loop, and all the loop's RunVars, alive for good.
        self._loop = weakref.ref(loop)
        self._handler = handler
        self._items: deque[T] = deque()
        self._scheduled = False
        self.closed = False
        # Drains run in an empty context: the putting thread's context may carry a task's
        # log capture, and whatever the handler prints must not land in that task's log.
        self._context = contextvars.Context()

    @property
    def context(self) -> contextvars.Context:
        """The empty context drains run in: a timer that drains must be scheduled in it too."""
        return self._context

    def put_quiet(self, item: T) -> None:
        """Queue an item without waking the loop (any thread): it is handed over with the next
        wake-up or `drain`."""
        self._items.append(item)

    def put(self, item: T) -> None:
        """Queue an item (any thread). Items put after `close()` are dropped."""
        self._items.append(item)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop()
            try:
                if loop is None:
                    raise RuntimeError("the loop is gone")
                loop.call_soon_threadsafe(self.drain, context=self._context)
            except RuntimeError:  # the loop is closed: nobody is left to hand items to
                self.closed = True

    def drain(self, limit: int | None = BATCH) -> None:
        """Hand queued items to the handler (loop thread), at most `limit` per call.

        What is left is handed over in a later loop iteration, so a task that prints a hundred
        thousand lines at once does not hold the loop up while they are handled.
        """
        # Reset the flag first: an item put while we drain schedules a new drain rather than
        # being left behind.
        self._scheduled = False
        items = self._items
        handler = self._handler
        count = 0
        while items:
            if limit is not None and count >= limit:
                loop = self._loop()
                if loop is not None:  # (draining runs on the loop, so it is alive)
                    self._scheduled = True
                    loop.call_soon(self.drain, context=self._context)
                return
            item = items.popleft()
            count += 1
            if not self.closed:
                handler(item)

    def __len__(self) -> int:
        """Items queued and not handed over yet."""
        return len(self._items)

    def close(self) -> None:
        """Deliver everything queued, then drop anything later."""
        self.drain(limit=None)
        self.closed = True
