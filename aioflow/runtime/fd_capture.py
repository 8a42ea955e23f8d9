"""Output written below Python while a task runs in a worker process, into the task's log.

A subprocess the step runs (`subprocess.run`, `os.system`) or C code writes to file descriptors
1 and 2, not to `sys.stdout`, so the stream proxies of `logs.py` never see it. A worker process
runs one task at a time, so there the descriptors can be pointed at the task for its duration,
as Metaflow's task process does with its own. In a thread step they cannot: the descriptors
belong to the process, which runs other tasks (and the host) at the same time.

Each descriptor goes to an unlinked temporary file, not a pipe: a file needs no reader thread,
never blocks a writer, and a child process that outlives the task writes on into a file nobody
reads instead of getting SIGPIPE. Before each line the task prints from Python, what reached
the file is added to the log first, so a subprocess's lines keep their place among the prints.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from ..streams import uncaptured
from .logs import TaskLog

#: The descriptors captured, with the log stream each one feeds.
DESCRIPTORS = ((1, "stdout"), (2, "stderr"))


class _Redirect:
    """One descriptor pointed at a temporary file; `take()` reads what arrived since."""

    def __init__(self, fd: int, stream: str) -> None:
        self.fd = fd
        self.stream = stream
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by restore()
        self.read_at = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.saved = os.dup(fd)
        os.dup2(self.file.fileno(), fd)

    def take(self) -> str:
        """The text written to the descriptor since the last call."""
        fileno = self.file.fileno()
        size = os.fstat(fileno).st_size
        if size <= self.read_at:
            return ""
        data = os.pread(fileno, size - self.read_at, self.read_at)
        self.read_at += len(data)
        return self.decoder.decode(data)

    def restore(self) -> str:
        """Point the descriptor back where it was; returns the text not taken yet."""
        os.dup2(self.saved, self.fd)
        os.close(self.saved)
        text = self.take() + self.decoder.decode(b"", final=True)
        self.file.close()
        return text


def _flush_standard_streams() -> None:
    """Write out what Python buffered for descriptors 1 and 2 (prints from outside any task)."""
    streams = (uncaptured(sys.stdout), uncaptured(sys.stderr), sys.__stdout__, sys.__stderr__)
    for stream in {id(stream): stream for stream in streams if stream is not None}.values():
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to write
            stream.flush()


@contextmanager
def capture_descriptors(log: TaskLog) -> Iterator[None]:
    """Send what is written to descriptors 1 and 2 meanwhile to `log` (worker processes only).

    Text printed from Python inside the task still reaches `log` through the stream proxies;
    everything else written to the descriptors (subprocesses, C code, threads the step started)
    lands in the task's stdout and stderr too.
    """
    _flush_standard_streams()  # what was printed before the task is not the task's
    redirects = []
    try:
        for fd, stream in DESCRIPTORS:
            redirects.append(_Redirect(fd, stream))
    except BaseException:
        for redirect in redirects:
            redirect.restore()
        raise

    def take_pending() -> None:
        for redirect in redirects:
            text = redirect.take()
            if text:
                log.append(redirect.stream, text)

    previous, log.before_write = log.before_write, take_pending
    try:
        yield
    finally:
        log.before_write = previous
        _flush_standard_streams()
        for redirect in redirects:
            text = redirect.restore()
            if text:
                log.append(redirect.stream, text)
