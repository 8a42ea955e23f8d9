"""Process faults: a worker that segfaults, exits, is killed or runs out of memory.

Each fault is real (ctypes.string_at(0) dereferences NULL, SIGKILL is sent by the worker to
itself). It fails only the task that ran in the worker, with a message saying how the worker
died; the worker is replaced, other tasks finish, stored data stays readable, and @retry and
@catch apply. Tasks in different processes signal each other with marker files, never sleeps.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

import pytest

from aioflow import FlowFailed, FlowSpec, Parameter, catch, current, resume_flow, retry, step
from aioflow.exceptions import WorkerDied
from aioflow.store import Store
from aioflow.store.serde import unpack
from aioflow.testing import run_in_temp_store
from tests.helpers import wait_for_marker as wait_for

pytestmark = pytest.mark.timeout(90)

FAULTS = ("segv", "exit", "kill", "memory")
DEADLINE = 30.0


def fault(kind: str) -> None:
    if kind == "segv":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif kind == "exit":
        os._exit(3)
    elif kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "memory":
        bytearray(2**62)  # a real allocation failure: MemoryError


def mark(folder: str, name: str, text: str = "") -> None:
    """Create marker file `name` atomically (readers never see it half-written)."""
    tmp = Path(folder) / f".{name}.tmp"
    tmp.write_text(text)
    tmp.rename(Path(folder) / name)


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def attempts(root: Path, run_id: str, step_name: str) -> list[tuple]:
    return Store(root).db.task_attempts(int(run_id), step_name)


# -- every fault in one run, caught, next to tasks that must not notice -----------------------


class CrashFlow(FlowSpec):
    marks = Parameter("marks", default="")

    @step
    def start(self):
        self.before = "stored before any crash"
        self.next(self.faults, self.steady, self.retried)

    @step
    def faults(self):
        self.kinds = list(FAULTS)
        self.next(self.crash, foreach="kinds")

    @catch(var="err")
    @step(executor="process")
    def crash(self):
        self.set_before_crash = self.input
        mark(self.marks, self.input, str(os.getpid()))
        fault(self.input)
        self.next(self.crash_join)

    @step(executor="process")
    def crash_join(self, inputs):
        self.join_pid = os.getpid()
        self.err_types = [i.err.type for i in inputs]
        self.next(self.join)

    @step
    def steady(self):
        # Runs in a thread of the parent while the workers die around it.
        self.saw = [wait_for(self.marks, kind) != "" for kind in FAULTS]
        self.steady_value = 42
        self.next(self.join)

    @retry(times=1)
    @step(executor="process")
    def retried(self):
        self.attempt = current.retry_count
        if current.retry_count == 0:
            fault("segv")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.steady_value = inputs.steady.steady_value
        self.err_types = inputs.crash_join.err_types
        self.join_pid = inputs.crash_join.join_pid
        self.attempt = inputs.retried.attempt
        self.next(self.end)

    @step(executor="process")
    def end(self):
        self.end_pid = os.getpid()


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


async def test_each_fault_fails_only_its_task(aioflow_root: Path, marks: Path) -> None:
    run = await run_in_temp_store(CrashFlow, aioflow_root, marks=str(marks))
    assert run.successful

    crashed = {FAULTS[t.index]: t for t in run["crash"]}
    assert sorted(crashed) == sorted(FAULTS)
    expected = {
        "segv": "was killed by SIGSEGV (segmentation fault)",
        "exit": "exited with status 3 without returning",
        "kill": "was killed by SIGKILL (killed: kill -9, or the out-of-memory killer)",
    }
    for kind, needle in expected.items():
        task = crashed[kind]
        assert not task.successful
        err = task.data.err
        assert err.type == "aioflow.exceptions.WorkerDied"
        assert needle in err.exception
        assert f"task {task.id} of step *crash*" in err.exception
        assert task.exception is None  # caught: the exception is the catch variable
        # The worker died with the values: nothing it set reached the store.
        assert "set_before_crash" not in task
        assert task.data.before == "stored before any crash"
    memory = crashed["memory"]
    assert not memory.successful
    assert memory.data.err.type == "builtins.MemoryError"
    assert "bytearray(2**62)" in memory.data.err.stacktrace
    assert memory.data.set_before_crash == "memory"  # the worker survived and reported back

    # The task that ran beside the crashes finished, and its data is readable.
    steady = run["steady"].task
    assert steady.successful
    assert steady.data.saw == [True] * len(FAULTS)
    assert run["join"].task.data.steady_value == 42

    # Dead workers were replaced: later process tasks ran in live, different processes.
    dead = {int((marks / kind).read_text()) for kind in ("segv", "exit", "kill")}
    assert len(dead) == 3
    assert not any(is_alive(pid) for pid in dead)
    end_pid = run["end"].task.data.end_pid
    join_pid = run["join"].task.data.join_pid
    assert end_pid not in dead and join_pid not in dead
    assert end_pid != os.getpid()
    assert run["join"].task.data.err_types == [
        *["aioflow.exceptions.WorkerDied"] * 3,
        "builtins.MemoryError",
    ]

    # @retry applied to a segfault: the second attempt of the same task succeeded.
    retried = run["retried"].task
    assert retried.successful and retried.data.attempt == 1
    rows = attempts(aioflow_root, run.id, "retried")
    assert [(r[1], r[2], r[4]) for r in rows] == [
        (int(retried.id), 0, "failed"),
        (int(retried.id), 1, "succeeded"),
    ]
    first = unpack(rows[0][12])
    assert first["type"] == "aioflow.exceptions.WorkerDied"
    assert "SIGSEGV" in first["message"]

    # Nothing was left half-written: every attempt of the run ended.
    statuses = {r[4] for r in Store(aioflow_root).db.task_attempts(int(run.id))}
    assert statuses <= {"succeeded", "caught", "failed"}


# -- an uncaught crash fails the run; what was stored stays readable and resumable ------------


class SegvFlow(FlowSpec):
    flag = Parameter("flag", default="")

    @step
    def start(self):
        self.value = "stored before the crash"
        self.next(self.work)

    @step(executor="process")
    def work(self):
        if not os.path.exists(self.flag):
            ctypes.string_at(0)
        self.survived = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_an_uncaught_segfault_fails_the_run_and_resume_recovers(
    aioflow_root: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "no-crash"
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(SegvFlow, aioflow_root, flag=str(flag))
    failed = info.value
    assert isinstance(failed.__cause__, WorkerDied)
    assert "was killed by SIGSEGV (segmentation fault)" in str(failed.__cause__)
    assert failed.pathspec is not None and failed.pathspec.endswith("/work/2")
    run = failed.run
    assert run.status == "failed" and not run.successful
    assert run["start"].task.data.value == "stored before the crash"
    work = run["work"].task
    assert not work.successful and not work.finished
    assert "SIGSEGV" in work.exception.exception

    flag.write_text("")
    resumed = await resume_flow(SegvFlow, root=aioflow_root, quiet=True)
    assert resumed.successful
    assert resumed["start"].task.data.value == "stored before the crash"
    assert resumed["work"].task.data.survived != os.getpid()


# -- a failure cancels running tasks and terminates their workers ------------------------------


class HangFlow(FlowSpec):
    marks = Parameter("marks", default="")

    @step
    def start(self):
        self.next(self.hang, self.boom)

    @step(executor="process")
    def hang(self):
        mark(self.marks, "hang", str(os.getpid()))
        wait_for(self.marks, "never", timeout=60)
        self.next(self.join)

    @step
    def boom(self):
        wait_for(self.marks, "hang")
        raise ValueError("boom while hang runs")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_failure_terminates_running_process_tasks(aioflow_root: Path, marks: Path) -> None:
    started = time.monotonic()
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(HangFlow, aioflow_root, marks=str(marks))
    assert time.monotonic() - started < 30  # `hang` alone would have waited 60 s
    assert isinstance(info.value.__cause__, ValueError)
    pid = int((marks / "hang").read_text())
    assert not is_alive(pid)  # its worker was killed, not left to run
    run = info.value.run
    hang = run["hang"].task
    assert not hang.successful
    assert hang.exception.type == "Interrupted"
    assert run["boom"].task.exception.type == "builtins.ValueError"
