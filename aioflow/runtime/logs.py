"""Per-task capture of what steps print, even when many tasks print at once in one process.

`sys.stdout` and `sys.stderr` are wrapped by a proxy while any run is active. A write looks up
the log of the task current in the calling context (the one `current` sees, which each task
sets in its own worker thread or coroutine): inside a task the text goes to that task's log,
line by line with timestamps; outside, straight through to the stream that was there before.

`logging` handlers that write to the standard streams (a `StreamHandler` configured at import
time holds the stream of that moment, not the proxy) get a proxy of their own for as long:
records a task logs land in its stderr (or stdout) formatted as the user configured, and records
logged outside a task reach the handler's stream as before. Nothing else of the user's logging
configuration changes, and each handler gets its stream back when the capture ends.

The capture lasts while a run is active or a task body is still running: a thread abandoned by a
run that has returned keeps printing into its own log, which nobody reads any more, rather than
into the host's terminal. Text written from threads a step starts itself has no task context
and goes straight through to the console; so do records those threads log. Output written
below Python (subprocesses, C code) is captured by the process executor only
(`runtime/fd_capture.py`): file descriptors are per process, and threads share them.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..current import TaskContext, reset_task_context, set_task_context, task_context
from ..streams import CapturingStream, uncaptured

#: Called with (source, stream name, line) for every complete line, from the printing thread.
LineSink = Callable[[str, str, str], None]


class TaskLog:
    """The lines one task attempt printed, per stream, with timestamps.

    Complete lines are also passed to `sink` with `source` (the task's pathspec), as they are
    printed.
    """

    __slots__ = ("_partial", "_sink", "_source", "before_write", "stderr", "stdout")

    def __init__(self, sink: LineSink | None = None, source: str = "") -> None:
        """`source`: the task's pathspec."""
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[tuple[float, str]] = []
        self._partial: dict[str, str] | None = None  # unterminated last lines, once any
        self._sink = sink
        self._source = source
        #: Called before each `write`, to `append` what was written elsewhere first (output of
        #: subprocesses, see `fd_capture.py`), so that the lines keep the order they had.
        self.before_write: Callable[[], None] | None = None

    def write(self, stream: str, text: str) -> None:
        """Add printed text; complete lines are recorded and passed to the sink."""
        if self.before_write is not None:
            self.before_write()
        self.append(stream, text)

    def append(self, stream: str, text: str) -> None:
        """`write` without calling `before_write`."""
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
        if sink is None:
            target.extend((now, line) for line in lines)
            return
        source = self._source
        for line in lines:
            target.append((now, line))
            sink(source, stream, line)

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


def enter_task(ctx: TaskContext) -> Any:
    """Make `ctx` the task current in this context, what it prints going to `ctx.log`;
    returns a token for `exit_task`.

    The capture stays installed until then, even if every run has ended meanwhile: a task body
    its run abandoned must not print into the host.
    """
    _holders.append(None)
    return set_task_context(ctx)


def exit_task(token: Any) -> None:
    """Undo `enter_task`."""
    reset_task_context(token)
    _release()


def _task_log() -> TaskLog | None:
    ctx = task_context()
    return None if ctx is None else ctx.open_log()


class StreamProxy(CapturingStream):
    """Stands in for sys.stdout / sys.stderr, or for a logging handler's stream, while runs are
    active."""

    def __init__(self, name: str, original: TextIO) -> None:
        super().__init__(original)
        #: The task log stream that receives what a task writes here.
        self.log_stream = name

    def write(self, text: str) -> int:
        """Write to the calling task's log, or through to the original stream."""
        log = _task_log()
        if log is None:
            return self.original.write(text)
        log.write(self.log_stream, text)
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        """Write each string."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the original stream when not inside a task."""
        if _task_log() is None:
            self.original.flush()

    def isatty(self) -> bool:
        """Task output is captured, so never a terminal inside a task."""
        return _task_log() is None and self.original.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


#: Taken to wrap and unwrap the streams.
_lock = threading.Lock()
#: One entry per active run and per task body still running. A list, not a number: `append`
#: and `pop` are atomic, so a task holds the capture and lets it go without taking the lock
#: (a lock taken and released twice per task was 2% of a tiny task's cost).
_holders: list[None] = []
_redirected: list[tuple[logging.StreamHandler[Any], StreamProxy]] = []


def install() -> None:
    """Wrap sys.stdout and sys.stderr, and the logging handlers that write to them.

    Counted: every install needs an uninstall. Each run installs, so that streams replaced
    between runs (a test's capture, a notebook cell's) are wrapped too.
    """
    with _lock:
        _holders.append(None)
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, StreamProxy):
                setattr(sys, name, StreamProxy(name, current))
        _redirect_handlers()


def uninstall() -> None:
    """Undo one `install`; the last holder puts the original streams and handlers back."""
    _release()


def _release() -> None:
    _holders.pop()
    if not _holders:
        _unwrap()


def _unwrap() -> None:
    with _lock:
        if _holders:  # a run installed the capture again meanwhile
            return
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if isinstance(current, StreamProxy):
                setattr(sys, name, current.original)
        for handler, proxy in _redirected:
            if handler.stream is proxy:  # else the user gave it another stream meanwhile
                handler.setStream(proxy.original)
        _redirected.clear()


def standard_stream_name(stream: object) -> str | None:
    """The standard stream `stream` writes to, directly or through a capture proxy ("stdout" or
    "stderr"), else None."""
    if isinstance(stream, StreamProxy):
        return stream.log_stream
    for name in ("stdout", "stderr"):
        if stream is not None and (
            stream is getattr(sys, f"__{name}__") or stream is uncaptured(getattr(sys, name))
        ):
            return name
    return None


def _redirect_handlers() -> None:
    """Give each logging handler that writes to a standard stream a proxy of that stream.

    Only the handler's stream changes, and only until the capture ends; levels, formatters,
    filters and the logger tree stay as the user set them.
    """
    loggers: list[Any] = [logging.getLogger(), *list(logging.Logger.manager.loggerDict.values())]
    for logger in loggers:
        for handler in list(getattr(logger, "handlers", ())):  # a PlaceHolder has none
            if not isinstance(handler, logging.StreamHandler):
                continue
            stream = handler.stream
            name = standard_stream_name(stream)
            if name is None or isinstance(stream, StreamProxy):
                continue
            proxy = StreamProxy(name, stream)
            try:
                handler.setStream(proxy)
            except AttributeError:  # a subclass whose stream is a read-only property
                continue
            _redirected.append((handler, proxy))
