"""The run's end of one worker process: a duplex pipe carrying length-prefixed pickles.

The run's process writes one message (a task, or a ping) and the worker writes one answer back,
each a pickle after its length, framed as `multiprocessing.connection.Connection.send_bytes`
frames it. The worker reads and writes with blocking calls (`read_message`, `write_message`:
one read for a small message, where `Connection.recv_bytes` makes two). On the run's side the
pipe is non-blocking and watched by the event loop (`add_reader`): an answer is read by the loop
itself, as soon as it arrives, with no thread in between. A trivial task's round trip is then
two pipe hops, two pickles and the task, where a `ProcessPoolExecutor` adds a queue, a feeder
thread and a manager thread on the way there and back. Each side also watches for the other's
message a little before it sleeps (`SPIN`).

End-of-file on the pipe means the worker process ended (the worker holds the only other end):
a call waiting for an answer raises `WorkerGone`, and `reap` reads how the process ended.

On a loop that cannot watch a pipe (asyncio's proactor loop on Windows), messages go through
blocking calls in a thread instead.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from ..exceptions import WorkerGone

if TYPE_CHECKING:  # the worker side (read_message, write_message) loads no event loop
    import asyncio

#: A frame's length, as `Connection.send_bytes` writes it; -1 announces a 64-bit length.
_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")
#: What one read asks for: below malloc's threshold for mapping fresh pages.
_READ_SIZE = 1 << 16

#: Held while a process is started or its exit status is read. Under forkserver the status is
#: one message on the process's sentinel pipe, and `Process.start()` polls every child of this
#: process (`multiprocessing.process._cleanup`): of two threads reading one sentinel at once,
#: one gets the status and the other end-of-file, which multiprocessing reports as status 255
#: (a SIGSEGV would read "exited with status 255").
_statuses = threading.Lock()

#: How long a worker whose pipe closed may take to end before it is killed.
GRACE = 10.0

#: How long each side watches for the other's next message before it lets its process sleep:
#: the run's loop after sending a task (the answer of a short task comes sooner), a worker
#: after answering (the next task comes sooner). Waking a sleeping process costs 25-30 us on an
#: idle virtual machine, whose CPU halted meanwhile: twice a round trip, that was more than half
#: of a trivial task's (0.12-0.16 ms, against 0.05-0.10 ms watching). Only a machine with idle
#: CPUs gains, so a process watches only while watching pays (`_watching`).
SPIN = 200e-6

#: A process stops watching for `_BACKOFF` s when watching does not pay: when a look at the
#: pipe comes this long after the last one (it was descheduled, or its loop waited for the GIL:
#: other work wants the CPUs, which keeps them from halting anyway), or after `_MISSES` watches
#: in a row ended without the message (the other side is slow: a long task, which the watch
#: would cost up to SPIN of CPU each, or a CPU it shares with the watcher, which the watch keeps
#: from it: on a machine whose CPUs all run other work, watching without backing off made the
#: round trip 0.2-0.5 ms instead of 0.12).
_DESCHEDULED = 500e-6
_MISSES = 3
_BACKOFF = 0.02
_watch_again_at = 0.0
_missed_in_a_row = 0


def _watching(now: float) -> bool:
    """True unless this process stopped watching lately."""
    return now >= _watch_again_at


def _back_off(now: float) -> None:
    global _watch_again_at, _missed_in_a_row
    _watch_again_at, _missed_in_a_row = now + _BACKOFF, 0


def _watched(now: float, caught: bool) -> None:
    """Count a watch that ended with (`caught`) or without the message."""
    global _missed_in_a_row
    _missed_in_a_row = 0 if caught else _missed_in_a_row + 1
    if _missed_in_a_row >= _MISSES:
        _back_off(now)


def _header(size: int) -> bytes:
    return _LENGTH.pack(size) if size <= 0x7FFFFFFF else _LENGTH.pack(-1) + _LONG_LENGTH.pack(size)


def _bounds(buffer: bytearray) -> tuple[int, int] | None:
    """Where the payload of the first frame in `buffer` starts and ends (None while its length
    has not arrived)."""
    if len(buffer) < _LENGTH.size:
        return None
    size = _LENGTH.unpack_from(buffer)[0]
    start = _LENGTH.size
    if size == -1:
        if len(buffer) < start + _LONG_LENGTH.size:
            return None
        size = _LONG_LENGTH.unpack_from(buffer, start)[0]
        start += _LONG_LENGTH.size
    return start, start + size


def _advance(unsent: list[memoryview], written: int) -> None:
    """Drop the first `written` bytes of `unsent`."""
    while unsent and written >= len(unsent[0]):
        written -= len(unsent.pop(0))
    if unsent and written:
        unsent[0] = unsent[0][written:]


# -- the worker's side: blocking reads and writes ----------------------------------------------


def read_message(fd: int, pending: bytearray, spin: float = 0.0) -> bytearray | None:
    """The next message on `fd`, a blocking pipe (None at end-of-file), watched for `spin`
    seconds before the read may sleep (see SPIN); what was read past it stays in `pending`."""
    bounds = _bounds(pending)
    if spin and (bounds is None or len(pending) < bounds[1]):
        _watch(fd, spin)
    while (bounds := _bounds(pending)) is None or len(pending) < bounds[1]:
        chunk = os.read(fd, _READ_SIZE)
        if not chunk:
            return None
        pending += chunk
    start, end = bounds
    message = pending[start:end]
    del pending[:end]
    return message


def _watch(fd: int, seconds: float) -> None:
    """Look at `fd` for up to `seconds` without sleeping, until it is readable (see SPIN)."""
    now = time.perf_counter()
    if not _watching(now) or not hasattr(select, "poll"):
        return
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = now + seconds
    while not poller.poll(0):
        last, now = now, time.perf_counter()
        if now - last > _DESCHEDULED:
            _back_off(now)
            return
        if now >= deadline:
            _watched(now, caught=False)
            return
    _watched(now, caught=True)


def write_message(fd: int, data: bytes) -> None:
    """Write `data` as one message on `fd`, a blocking pipe."""
    unsent = [memoryview(_header(len(data))), memoryview(data)]
    while unsent:
        _advance(unsent, os.writev(fd, unsent))


# -- the run's side ----------------------------------------------------------------------------


class WorkerPipe:
    """One worker process and the run's end of its pipe."""

    def __init__(self, context: Any, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self._conn, child = context.Pipe(duplex=True)
        self._child: Any = child
        #: The process runs `target(*args, its_end_of_the_pipe)`.
        self.process = context.Process(target=target, args=(*args, child))
        self.fd: int = self._conn.fileno()
        self.started = False
        #: True once the pipe read end-of-file: the process is ending.
        self.gone = False
        #: True once the worker answered a message: it started well.
        self.answered = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._buffer = bytearray()
        self._unsent: list[memoryview] = []
        self._writing = False  # the loop watches for room to write the rest of a message
        self._waiter: asyncio.Future[bytearray] | None = None

    def start(self) -> None:
        """Start the process (blocking: a first forkserver start takes a fraction of a second)."""
        try:
            with _statuses:
                self.process.start()
            self.started = True
        finally:
            self._child.close()  # the worker's end is the worker's alone

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have `loop` read the pipe from now on (if it can: else calls use a thread)."""
        if sys.platform == "win32":
            return  # a named pipe, which no selector watches
        try:
            loop.add_reader(self.fd, self._readable)
        except NotImplementedError:
            return
        os.set_blocking(self.fd, False)
        self._loop, self._loop_thread = loop, threading.get_ident()

    def detach(self) -> None:
        """Stop watching the pipe (before it is closed); from any thread."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            loop.remove_reader(self.fd)
            loop.remove_writer(self.fd)
            return
        done = threading.Event()

        def remove() -> None:
            loop.remove_reader(self.fd)
            loop.remove_writer(self.fd)
            done.set()

        try:
            loop.call_soon_threadsafe(remove)
        except RuntimeError:  # closed meanwhile: nothing watches the pipe any more
            return
        done.wait(5)

    async def call(self, message: Any, watch: bool = True) -> Any:
        """Send `message` and return the worker's answer; raise WorkerGone if it ended. With
        `watch`, the loop watches for the answer a while before it sleeps (see SPIN): pass False
        when the CPUs are all busy (the run's own workers on each)."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if self._loop is None:
            answer = await self._call_in_thread(data)
            self.answered = True
            return pickle.loads(answer)
        if self.gone:
            raise WorkerGone(received=False)
        self._waiter = waiter = self._loop.create_future()
        try:
            self._send(data)
            if watch and _watching(now := time.perf_counter()):
                self._loop.call_soon(self._spin, waiter, now + SPIN, now, time.thread_time())
            answer = await waiter
        finally:
            self._waiter = None
        self.answered = True
        return pickle.loads(answer)

    async def _call_in_thread(self, data: bytes) -> bytes:
        def call() -> bytes:
            try:
                self._conn.send_bytes(data)
                return self._conn.recv_bytes()
            except (EOFError, OSError):
                self.gone = True
                raise WorkerGone from None

        import anyio.to_thread

        # Cancelled, the call is abandoned: the caller kills the worker, which ends the read.
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)

    # -- the loop's side: writing a message, reading answers ----------------------------------

    def _send(self, data: bytes) -> None:
        self._unsent = [memoryview(_header(len(data))), memoryview(data)]
        self._writable()
        if self._unsent and self._loop is not None and not self.gone:
            self._writing = True
            self._loop.add_writer(self.fd, self._writable)  # the rest as the worker reads

    def _spin(
        self, waiter: asyncio.Future[bytearray], deadline: float, wall: float, cpu: float
    ) -> None:
        """Keep the loop from sleeping (it polls instead) until `waiter` is done or `deadline`,
        unless this thread was off its CPU since the last call (`wall`, `cpu`: the clocks then)."""
        loop = self._loop
        now, used = time.perf_counter(), time.thread_time()
        if loop is None or waiter.done():
            _watched(now, caught=True)
        elif (now - wall) - (used - cpu) > _DESCHEDULED:
            _back_off(now)
        elif now < deadline:
            loop.call_soon(self._spin, waiter, deadline, now, used)
        else:
            _watched(now, caught=False)

    def _writable(self) -> None:
        unsent = self._unsent
        try:
            while unsent:
                _advance(unsent, os.writev(self.fd, unsent))
        except BlockingIOError:
            return
        except OSError:  # EPIPE, ECONNRESET: the worker is gone
            self._ended()
        if not unsent and self._writing and self._loop is not None:
            self._writing = False
            self._loop.remove_writer(self.fd)

    def _readable(self) -> None:
        buffer = self._buffer
        ended = False
        try:
            while True:
                chunk = os.read(self.fd, _READ_SIZE)
                buffer += chunk
                if len(chunk) < _READ_SIZE:  # drained (the loop calls again when more arrives)
                    ended = not chunk
                    break
        except BlockingIOError:
            pass
        except OSError:
            ended = True
        # Answers first: a worker may answer and then end.
        while (bounds := _bounds(buffer)) is not None and len(buffer) >= bounds[1]:
            start, end = bounds
            frame = buffer[start:end]
            del buffer[:end]
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)
        if ended:
            self._ended()

    def _ended(self) -> None:
        if self.gone:
            return
        self.gone = True
        # A worker acts on a whole message only: one not all written never reached it.
        received = not self._unsent
        self._unsent = []
        loop = self._loop
        if loop is not None:
            loop.remove_reader(self.fd)
            loop.remove_writer(self.fd)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(WorkerGone(received))

    # -- the end ------------------------------------------------------------------------------

    def reap(self, kill: bool) -> int | None:
        """Wait for the process to end (killing it first if `kill`) and return its exit status;
        closes the pipe. Blocking: call it in a thread, after `detach`."""
        process = self.process
        try:
            if not self.started:
                return None
            if kill and not self.gone:
                process.kill()
            elif not wait([process.sentinel], GRACE):
                process.kill()  # its pipe closed, yet it runs on: it has nothing more to do
            wait([process.sentinel])
            with _statuses:
                process.join()
            exitcode: int | None = process.exitcode
            process.close()
            return exitcode
        finally:
            self._conn.close()


__all__ = ["GRACE", "SPIN", "WorkerGone", "WorkerPipe", "read_message", "write_message"]
