"""The pipe between a run and its worker processes (`runtime/worker_pipe.py`).

Messages both ways larger than the pipe's buffer (written as the worker reads, read in pieces
by the event loop), watching the pipe before sleeping only while it pays, a loop that cannot
watch pipes, a worker that dies while idle (replaced, no
task fails), Ctrl-C reaching workers (ignored there: the run's process decides what stops, and
a terminal's Ctrl-C cancels the run quietly), and a run leaving no process and no pipe behind.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import FlowSpec, Parameter, current, step
from aioflow.runtime import worker_pipe
from aioflow.runtime.processes import _context
from aioflow.runtime.worker_pipe import WorkerGone, WorkerPipe
from aioflow.store.writer import BatchWriter
from aioflow.testing import run_in_temp_store
from tests.helpers import aioflow_command, wait_for_marker

pytestmark = pytest.mark.timeout(90)


def echo(conn: Connection) -> None:
    """A worker that answers each message with its length and its last byte."""
    import pickle

    try:
        while True:
            data = pickle.loads(conn.recv_bytes())
            if data == b"exit":
                os._exit(5)
            conn.send_bytes(pickle.dumps((len(data), data[-1:], data)))
    except EOFError:
        pass


async def test_messages_of_every_size_cross_the_pipe_whole() -> None:
    worker = WorkerPipe(_context(), echo, ())
    await anyio.to_thread.run_sync(worker.start)
    worker.attach(asyncio.get_running_loop())
    try:
        for size in (0, 1, 65_535, 65_536, 65_537, 3_000_001, 12 * 2**20):
            data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
            length, last, back = await worker.call(data)
            assert length == size and last == data[-1:] and back == data
        with pytest.raises(WorkerGone) as gone:
            await worker.call(b"exit")
        assert gone.value.received
        with pytest.raises(WorkerGone) as gone:  # known to be gone: nothing is sent
            await worker.call(b"more")
        assert not gone.value.received
    finally:
        worker.detach()
        exitcode = await anyio.to_thread.run_sync(worker.reap, False)
    assert exitcode == 5


def test_watching_the_pipe_stops_for_a_while_when_it_does_not_pay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_pipe, "_watch_again_at", 0.0)
    monkeypatch.setattr(worker_pipe, "_missed_in_a_row", 0)
    now = 100.0
    assert worker_pipe._watching(now)
    for _ in range(worker_pipe._MISSES - 1):
        worker_pipe._watched(now, caught=False)
    worker_pipe._watched(now, caught=True)  # a watch that caught its message: count again
    for _ in range(worker_pipe._MISSES - 1):
        worker_pipe._watched(now, caught=False)
    assert worker_pipe._watching(now)
    worker_pipe._watched(now, caught=False)  # missed too often in a row: not for a while
    assert not worker_pipe._watching(now)
    assert worker_pipe._watching(now + worker_pipe._BACKOFF)


class NoReaderLoop:
    """A loop that cannot watch a pipe, as asyncio's proactor loop on Windows."""

    def add_reader(self, fd: int, callback: Any) -> None:
        raise NotImplementedError


async def test_a_loop_that_cannot_watch_pipes_calls_through_a_thread() -> None:
    worker = WorkerPipe(_context(), echo, ())
    await anyio.to_thread.run_sync(worker.start)
    worker.attach(NoReaderLoop())  # type: ignore[arg-type]
    try:
        for size in (1, 3_000_001):
            length, _, back = await worker.call(b"y" * size)
            assert length == size and back == b"y" * size
        with pytest.raises(WorkerGone):
            await worker.call(b"exit")
    finally:
        worker.detach()
        exitcode = await anyio.to_thread.run_sync(worker.reap, False)
    assert exitcode == 5


# -- large requests and replies in a run ---------------------------------------------------------


class LargeFlow(FlowSpec):
    """16 uncommitted blobs of 200 KB travel inline to a worker, which prints 2 MB back."""

    @step
    def start(self):
        for n in range(16):
            setattr(self, f"part{n}", os.urandom(200 * 1024))
        self.next(self.work)

    @step(executor="process")
    def work(self):
        self.total = sum(len(getattr(self, f"part{n}")) for n in range(16))
        self.first = [getattr(self, f"part{n}")[0] for n in range(16)]
        for n in range(20_000):
            print(f"line {n:05d} " + "x" * 90)
        self.next(self.end)

    @step
    def end(self):
        self.first_here = [getattr(self, f"part{n}")[0] for n in range(16)]


async def test_requests_and_replies_larger_than_the_pipe(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def commit_only_at_the_end(self: BatchWriter, on_error: Any) -> None:
        while not self._closing.is_set():  # the run's final flush (in the runner) commits
            await self._wakeup.wait()
            self._wakeup = anyio.Event()

    monkeypatch.setattr(BatchWriter, "run", commit_only_at_the_end)
    run = await run_in_temp_store(LargeFlow, aioflow_root)
    work = run["work"].task
    assert work.data.total == 16 * 200 * 1024
    assert work.data.first == run["end"].task.data.first_here
    lines = work.stdout.splitlines()
    assert len(lines) == 20_000
    assert lines[0] == "line 00000 " + "x" * 90 and lines[-1].startswith("line 19999 ")


# -- a worker that dies while idle ---------------------------------------------------------------


def wait_until_gone(pid: int, timeout: float = 30) -> None:
    """Until process `pid` no longer exists (observed, not paced)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} still exists")


class IdleDeathFlow(FlowSpec):
    @step(executor="process")
    def start(self):
        self.first_pid = os.getpid()
        self.next(self.kill)

    @step
    def kill(self):
        os.kill(self.first_pid, signal.SIGKILL)  # idle now: its task returned
        wait_until_gone(self.first_pid)
        self.next(self.end)

    @step(executor="process")
    def end(self):
        self.end_pid = os.getpid()


async def test_a_worker_that_dies_while_idle_is_replaced_and_fails_nothing(
    aioflow_root: Path,
) -> None:
    run = await run_in_temp_store(IdleDeathFlow, aioflow_root, max_workers=1)
    assert run.successful
    end_pid = run["end"].task.data.end_pid
    assert end_pid not in (os.getpid(), run["start"].task.data.first_pid)


UNGUARDED_SCRIPT = """
from aioflow import FlowSpec, run_flow_sync, step


class UnguardedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step(executor="process")
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass


run_flow_sync(UnguardedFlow, quiet=True)  # no `if __name__ == "__main__":`
"""


def test_a_worker_that_ends_as_it_starts_fails_its_task_once(tmp_path: Path) -> None:
    # Workers import the main script: this one runs the flow again there, which cannot start
    # processes, and the worker ends with status 1. The task fails saying why; the worker is
    # not replaced over and over.
    (tmp_path / "unguarded.py").write_text(UNGUARDED_SCRIPT)
    env = {**os.environ, "AIOFLOW_ROOT": str(tmp_path / "store")}
    done = subprocess.run(
        [sys.executable, "unguarded.py"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "The worker process running task 2 of step *work* exited with status 1" in done.stderr
    assert "must do it under `if __name__ == '__main__':`" in done.stderr


# -- Ctrl-C --------------------------------------------------------------------------------------


class InterruptedFlow(FlowSpec):
    rounds = Parameter("rounds", default=2)

    @step
    def start(self):
        self.items = list(range(self.rounds))
        self.next(self.work, foreach="items")

    @step(executor="process")
    def work(self):
        # What a terminal's Ctrl-C does to every process of the run (its process group).
        os.kill(os.getpid(), signal.SIGINT)
        self.pid = os.getpid()
        self.attempt = current.retry_count
        self.next(self.join)

    @step
    def join(self, inputs):
        self.pids = {i.pid for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_reaching_a_worker_is_left_to_the_run(aioflow_root: Path) -> None:
    run = await run_in_temp_store(InterruptedFlow, aioflow_root, max_workers=1)
    assert run.successful
    # Neither task was interrupted, and the one worker lived on to run both.
    assert len(run["join"].task.data.pids) == 1
    assert all(t.data.attempt == 0 for t in run["work"])


CTRL_C_FLOW = """
import os
from pathlib import Path

from aioflow import FlowSpec, step


class HangFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step(executor="process")
    def work(self):
        marks = Path(os.environ["MARKS"])
        if self.input == 0:  # hangs in one worker; the other one runs the rest, then idles
            # Written whole, then renamed: the test reads the pid once the name exists.
            (marks / "hanging.part").write_text(str(os.getpid()))
            (marks / "hanging.part").rename(marks / "hanging")
            while True:
                pass
        (marks / f"done{self.input}").write_text("")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HangFlow()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")
def test_ctrl_c_in_a_terminal_cancels_the_run_and_ends_every_worker_quietly(
    tmp_path: Path,
) -> None:
    (tmp_path / "hang_flow.py").write_text(CTRL_C_FLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "MARKS": str(marks), "AIOFLOW_ROOT": str(tmp_path / "store")}
    argv = [*aioflow_command(), "run", "hang_flow.py", "--max-workers", "2"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        hanging = int(wait_for_marker(str(marks), "hanging", timeout=60))
        wait_for_marker(str(marks), "done1", timeout=60)
        wait_for_marker(str(marks), "done2", timeout=60)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, out + err
    assert "was cancelled. Resume it with:" in err, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err  # no worker's
    wait_until_gone(hanging)


# -- nothing left behind -------------------------------------------------------------------------


def open_pipes() -> set[str]:
    """This process's descriptors of pipes and sockets (the store's files aside: runs and
    readers keep connections to it open on purpose)."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed meanwhile
        if target.startswith(("pipe:", "socket:", "anon_inode:", "/memfd:")):
            fds.add(f"{fd} -> {target}")
    return fds


class TwoWorkersFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step(executor="process")
    def work(self):
        self.pid = os.getpid()
        self.next(self.join)

    @step(executor="process")
    def join(self, inputs):
        self.pids = sorted({i.pid for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd (Linux)")
async def test_a_run_leaves_no_worker_and_no_descriptor(aioflow_root: Path) -> None:
    async def one_run() -> list[int]:
        run = await run_in_temp_store(TwoWorkersFlow, aioflow_root, max_workers=2)
        pids: list[int] = run["join"].task.data.pids
        return pids

    # The first run starts the forkserver, which outlives runs (one per process): its
    # descriptors stay.
    await one_run()
    before = open_pipes()
    pids = await one_run()
    assert 1 <= len(pids) <= 2
    assert multiprocessing.active_children() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert open_pipes() - before == set()
