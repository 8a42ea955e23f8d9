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

On Linux the files are in memory (`memfd_create`: 2-3 us to make or close one, where a file in
the temporary folder takes 15-20 us), and a worker calls `prepare_files` while it waits for its
next task, which makes that task's files ahead and closes the last task's: a trivial task's round
trip pays for neither.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from typing import IO

from ..streams import uncaptured
from .logs import TaskLog

#: The descriptors captured, with the log stream each one feeds.
DESCRIPTORS = ((1, "stdout"), (2, "stderr"))

#: Files made ahead for the next capture, and files of finished captures left to close (None
#: until `prepare_files` is first called: until then each capture closes its own at once).
_spare: list[IO[bytes]] = []
_finished: list[IO[bytes]] | None = None


def prepare_files() -> None:
    """Close the files of finished captures and make the next capture's (a worker calls this
    while idle, so that neither costs a task's time)."""
    global _finished
    for file in _finished or ():
        file.close()
    _finished = []
    while len(_spare) < len(DESCRIPTORS):
        _spare.append(_new_file())


def _new_file() -> IO[bytes]:
    """An unlinked temporary file: in memory where the system offers it (Linux), else in the
    temporary folder."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            return os.fdopen(os.memfd_create("aioflow-capture", os.MFD_CLOEXEC), "w+b", 0)
    return tempfile.TemporaryFile()


#: Each captured descriptor's own target, kept (as a duplicate) for a worker's life once
#: `prepare_files` was called, rather than duplicated and closed again for every task.
_originals: dict[int, int] = {}


class _Redirect:
    """One descriptor pointed at a temporary file; `take()` reads what arrived since."""

    def __init__(self, fd: int, stream: str) -> None:
        self.fd = fd
        self.stream = stream
        # A new file each time: a child process that outlives the task must not write into
        # the next task's log. Closed by restore(), or by the next `prepare_files`.
        self.file: IO[bytes] = _spare.pop() if _spare else _new_file()
        self.read_at = 0
        self.decoder: codecs.IncrementalDecoder | None = None  # made once there is text
        saved = _originals.get(fd)
        if saved is None:
            saved = os.dup(fd)
            if _finished is not None:
                _originals[fd] = saved
        self.saved = saved
        os.dup2(self.file.fileno(), fd)

    def take(self) -> str:
        """The text written to the descriptor since the last call."""
        fileno = self.file.fileno()
        size = os.fstat(fileno).st_size
        if size <= self.read_at:
            return ""
        data = os.pread(fileno, size - self.read_at, self.read_at)
        self.read_at += len(data)
        if self.decoder is None:
            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return self.decoder.decode(data)

    def restore(self) -> str:
        """Point the descriptor back where it was; returns the text not taken yet."""
        os.dup2(self.saved, self.fd)
        if _originals.get(self.fd) != self.saved:
            os.close(self.saved)
        text = self.take()
        if self.decoder is not None:
            text += self.decoder.decode(b"", final=True)
        if _finished is None:
            self.file.close()
        else:
            _finished.append(self.file)
        return text


def _flush_standard_streams() -> None:
    """Write out what Python buffered for descriptors 1 and 2 (prints from outside any task)."""
    streams = (uncaptured(sys.stdout), uncaptured(sys.stderr), sys.__stdout__, sys.__stderr__)
    for stream in {id(stream): stream for stream in streams if stream is not None}.values():
        try:  # noqa: SIM105 - contextlib.suppress costs a microsecond a stream, twice a task
            stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing to write
            pass


class capture_descriptors:  # named as the function it was: `with capture_descriptors(log):`
    """Send what is written to descriptors 1 and 2 meanwhile to `log` (worker processes only).

    Text printed from Python inside the task still reaches `log` through the stream proxies;
    everything else written to the descriptors (subprocesses, C code, threads the step started)
    lands in the task's stdout and stderr too. (A class rather than a generator: a worker
    enters one per task.)
    """

    __slots__ = ("log", "previous", "redirects")

    def __init__(self, log: TaskLog) -> None:
        self.log = log
        self.redirects: list[_Redirect] = []
        self.previous: Callable[[], None] | None = None

    def __enter__(self) -> None:
        _flush_standard_streams()  # what was printed before the task is not the task's
        redirects = self.redirects
        try:
            for fd, stream in DESCRIPTORS:
                redirects.append(_Redirect(fd, stream))
        except BaseException:
            for redirect in redirects:
                redirect.restore()
            raise
        self.previous, self.log.before_write = self.log.before_write, self.take_pending

    def take_pending(self) -> None:
        for redirect in self.redirects:
            text = redirect.take()
            if text:
                self.log.append(redirect.stream, text)

    def __exit__(self, *exc_info: object) -> None:
        log = self.log
        log.before_write = self.previous
        _flush_standard_streams()
        for redirect in self.redirects:
            text = redirect.restore()
            if text:
                log.append(redirect.stream, text)
