"""The signals that stop `aioflow run`, received inside the event loop on every platform.

`receive_stop_signals()` chooses by platform. On POSIX it is anyio's signal receiver (SIGINT and
SIGTERM, through the event loop's own signal handling). Windows event loops cannot handle
signals, so there a `signal.signal` handler for Ctrl-C (SIGINT) and Ctrl-Break (SIGBREAK)
passes each signal to the loop with `call_soon_threadsafe`: a handler runs between any two
bytecodes of the main thread, possibly in the middle of the loop's own code, and that call is
the one way into the loop that is safe from there.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from types import FrameType
from typing import Any

import anyio


def receive_stop_signals() -> AbstractContextManager[AsyncIterator[int]]:
    """A receiver of the signals asking the run to stop, for this platform (main thread only).

    Enter it inside the event loop; it yields the signal numbers as they arrive, and puts the
    previous handling back on exit.
    """
    if sys.platform == "win32":
        # Ctrl-Break exists on Windows only; Windows never delivers SIGTERM to a process.
        windows = [signal.SIGINT, getattr(signal, "SIGBREAK", None)]
        return _receive_through_handlers([s for s in windows if s is not None])
    return anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)


@contextmanager
def _receive_through_handlers(signals: list[int]) -> Iterator[AsyncIterator[int]]:
    """Receive `signals` with `signal.signal` handlers forwarding them into the running loop."""
    loop = asyncio.get_running_loop()
    send, receive = anyio.create_memory_object_stream[int](math.inf)

    def deliver(signum: int) -> None:  # on the loop
        # A signal that came just before the receiver closed finds the stream closed.
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            send.send_nowait(signum)

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(deliver, signum)

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
        with send, receive:
            yield receive
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
