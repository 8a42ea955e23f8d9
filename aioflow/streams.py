"""The terminal behind task-output capture.

While a run is active, the runtime replaces `sys.stdout` and `sys.stderr` with proxies that send
what a task prints to that task's log (`runtime/logs.py`). Code that must reach the terminal
even from inside a task, such as the console printing a run's progress, asks `uncaptured` for
the stream behind the proxy. The core defines the proxy's base class so that asking needs no
import of the runtime.
"""

from __future__ import annotations

from typing import TextIO


class CapturingStream:
    """Base class of a stand-in for a standard stream that captures what tasks print."""

    def __init__(self, original: TextIO) -> None:
        #: The stream this one stands in for, and writes through to outside a task.
        self.original = original


def uncaptured(stream: TextIO) -> TextIO:
    """`stream`, or the stream behind it when it is a capturing stand-in."""
    return stream.original if isinstance(stream, CapturingStream) else stream
