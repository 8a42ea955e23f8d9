"""Per-task capture of what steps print, even when many tasks print at once in one process.

`sys.stdout` and `sys.stderr` are wrapped by a proxy while any run is active. A write looks up
the task log of the calling context (a context variable each task sets in its own worker thread
or coroutine): inside a task the text goes to that task's log, line by line with timestamps;
outside, straight through to the stream that was there before. Text a step prints from threads
it starts itself has no task context and goes straight through to the console.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO

from ..streams import CapturingStream

#: Called with (source, stream name, line) for every complete line, from the printing thread.
LineSink = Callable[[str, str, str], None]


class TaskLog:
    """The lines one task attempt printed, per stream, with timestamps.

    Complete lines are also passed to `sink` with `source` (the task's pathspec), as they are
    printed.
    """

    __slots__ = ("_partial", "_sink", "_source", "stderr", "stdout")

    def __init__(self, sink: LineSink | None = None, source: str = "") -> None:
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[tuple[float, str]] = []
        self._partial: dict[str, str] | None = None  # unterminated last lines, once any
        self._sink = sink
        self._source = source

    def write(self, stream: str, text: str) -> None:
        """Add printed text; complete lines are recorded and passed to the sink."""
        partial = self._partial
        if partial is None:
            partial = self._partial = {"stdout": "", "stderr": ""}
        if "\n" not in text:
            partial[stream] += text
            return
        pieces = (partial[stream] + text).split("\n")
        partial[stream] = pieces.pop()
        self._add(stream, pieces)

    def _add(self, stream: str, lines: list[str]) -> None:
        now = time.time()
        target = self.stdout if stream == "stdout" else self.stderr
        sink = self._sink
        for line in lines:
            target.append((now, line))
            if sink is not None:
                sink(self._source, stream, line)

    def close(self) -> None:
        """Record unterminated last lines."""
        partial, self._partial = self._partial, None
        if partial is not None:
            for stream, rest in partial.items():
                if rest:
                    self._add(stream, [rest])

    @staticmethod
    def text(lines: list[tuple[float, str]]) -> str:
        """The captured lines joined as printed."""
        return "".join(line + "\n" for _, line in lines)


_active_log: ContextVar[TaskLog | None] = ContextVar("aioflow_task_log", default=None)


def set_task_log(log: TaskLog | None) -> Any:
    """Route this context's prints to `log`; returns a token for `reset_task_log`."""
    return _active_log.set(log)


def reset_task_log(token: Any) -> None:
    """Undo `set_task_log`."""
    _active_log.reset(token)


class StreamProxy(CapturingStream):
    """Stands in for sys.stdout / sys.stderr while runs are active."""

    def __init__(self, name: str, original: TextIO) -> None:
        super().__init__(original)
        self._name = name
        self.users = 0

    def write(self, text: str) -> int:
        """Write to the calling task's log, or through to the original stream."""
        log = _active_log.get()
        if log is None:
            return self.original.write(text)
        log.write(self._name, text)
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        """Write each string."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the original stream when not inside a task."""
        if _active_log.get() is None:
            self.original.flush()

    def isatty(self) -> bool:
        """Task output is captured, so never a terminal inside a task."""
        return _active_log.get() is None and self.original.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def install() -> None:
    """Wrap sys.stdout and sys.stderr (counted: every install needs an uninstall)."""
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if not isinstance(current, StreamProxy):
            current = StreamProxy(name, current)
            setattr(sys, name, current)
        current.users += 1


def uninstall() -> None:
    """Undo one `install`; the last one puts the original streams back."""
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if isinstance(current, StreamProxy):
            current.users -= 1
            if current.users <= 0:
                setattr(sys, name, current.original)
