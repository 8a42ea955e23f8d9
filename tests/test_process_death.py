"""A process that dies while it runs a flow (issue 11, item 15): what the next reader sees.

A segfault in a C extension or `os._exit` inside a thread step ends the whole process, with no
chance to store anything. The store stays consistent (every batch is one transaction), and the
next reader sees the run as failed, the tasks that were running as killed, and, where the
process wrote one, the fatal error's traceback (faulthandler's) in their stderr, naming the
signal. Each flow runs as `python flow.py run` in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioflow import Flow
from aioflow.client.namespaces import _namespace

pytestmark = pytest.mark.timeout(90)

FLOW = """
import ctypes
import os
import signal
import threading
import time

from aioflow import FlowSpec, Parameter, Task, current, namespace, step

WAITING = threading.Event()


def stored_as_running(pathspec):
    # The process must die after the rows of its running tasks are committed (the writer
    # commits them in the background): ask the store, as any reader would.
    namespace(None)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if Task(pathspec).status == "running":
                return
        except Exception:
            pass
        time.sleep(0.01)
    raise TimeoutError(pathspec + " was never stored as running")


class CrashFlow(FlowSpec):
    how = Parameter("how", default="segfault")

    @step
    def start(self):
        self.next(self.waiting, self.crashing)

    @step
    def waiting(self):
        self.pathspec = current.pathspec
        print("waiting for the other branch")
        WAITING.set()
        threading.Event().wait()  # never set: running when the process dies
        self.next(self.join)

    @step
    def crashing(self):
        print("about to crash")
        WAITING.wait()
        stored_as_running(current.pathspec)
        if self.how == "segfault":
            ctypes.string_at(0)  # a C extension reading address 0
        elif self.how == "sigsegv":
            os.kill(os.getpid(), signal.SIGSEGV)  # any thread may take it: wait here for it
            threading.Event().wait()
        else:
            os._exit(3)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CrashFlow()
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "store"
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    monkeypatch.setenv("AIOFLOW_ROOT", str(root))
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    token = _namespace.set("user:tester")
    yield root
    _namespace.reset(token)


def crash(tmp_path: Path, how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "flow.py", "run", "--quiet", "--how", how],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=80,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["segfault", "sigsegv"])
def test_a_segfault_reads_as_a_failed_run_with_killed_tasks(
    tmp_path: Path, store: Path, how: str
) -> None:
    done = crash(tmp_path, how)
    assert done.returncode != 0
    run = Flow("CrashFlow").latest_run
    assert run is not None
    assert run.status == "failed" and not run.finished and not run.successful

    crashing, waiting = run["crashing"].task, run["waiting"].task
    for task in (crashing, waiting):
        assert task.status == "killed"
        assert task.metadata_dict["status"] == "killed"
        assert not task.successful and not task.finished
        exception = task.exception
        assert exception is not None
        assert exception.type == "aioflow.exceptions.WorkerDied"
        assert "SIGSEGV (Segmentation fault)" in exception.exception
        # faulthandler's report, with the crashing step's line in it, ends the stderr
        assert "Fatal Python error: Segmentation fault" in task.stderr
        assert "in crashing" in task.stderr
    assert run["start"].task.status == "succeeded"
    assert "join" not in run  # never started


def test_os_exit_reads_as_killed_without_a_signal(tmp_path: Path, store: Path) -> None:
    done = crash(tmp_path, "exit")
    assert done.returncode == 3
    run = Flow("CrashFlow").latest_run
    assert run is not None and run.status == "failed"
    for name in ("crashing", "waiting"):
        task = run[name].task
        assert task.status == "killed"
        exception = task.exception
        assert exception is not None
        assert "no fatal error recorded" in exception.exception
        assert "Fatal Python error" not in task.stderr


def test_a_run_that_ends_leaves_no_fault_report(tmp_path: Path, store: Path) -> None:
    flow = tmp_path / "ok.py"
    flow.write_text(
        textwrap.dedent(
            """
            from aioflow import FlowSpec, step

            class OkFlow(FlowSpec):
                @step
                def start(self):
                    self.next(self.end)

                @step
                def end(self):
                    pass

            if __name__ == "__main__":
                OkFlow()
            """
        )
    )
    ran = subprocess.run(
        [sys.executable, "ok.py", "run", "--quiet"], cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert list((store / "faults").iterdir()) == []
