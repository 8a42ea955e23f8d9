"""Handing work from other threads to the event loop, many items per wake-up.

`loop.call_soon_threadsafe` costs a pipe write and a loop wake-up; done once per finished task
or printed line it dominates the cost of a small task. `LoopInbox` queues items from any thread
and wakes the loop only when no wake-up is already pending, so a burst costs one.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopInbox(Generic[T]):
    """Items put from any thread are passed, in order, to `handler` on the loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Callable[[T], None]) -> None:
        self._loop = loop
        self._handler = handler
        self._items: deque[T] = deque()
        self._scheduled = False
        self.closed = False
        # Drains run in an empty context: the putting thread's context may carry a task's
        # log capture, and whatever the handler prints must not land in that task's log.
        self._context = contextvars.Context()

    def put(self, item: T) -> None:
        """Queue an item (any thread). Items put after `close()` are dropped."""
        self._items.append(item)
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self.drain, context=self._context)
            except RuntimeError:  # the loop is closed: nobody is left to hand items to
                self.closed = True

    def drain(self) -> None:
        """Hand every queued item to the handler (loop thread)."""
        # Reset the flag first: an item put while we drain schedules a new drain rather than
        # being left behind.
        self._scheduled = False
        items = self._items
        handler = self._handler
        while items:
            item = items.popleft()
            if not self.closed:
                handler(item)

    def close(self) -> None:
        """Deliver what is queued, then drop anything later."""
        self.drain()
        self.closed = True
