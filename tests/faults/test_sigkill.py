"""SIGKILL of a real `aioflow run` (issue 13, items 1 and 2, and the fault suite's kill part).

Each trial starts `aioflow run --executor process` in its own store and kills it with SIGKILL:
either a few milliseconds after the run is stored (observed through `--run-id-file`), or at a
random moment after the command started (often before anything is stored). The random delay is
the fault model, not synchronisation. After each kill:

- no process the run started is left (workers, the forkserver, the resource tracker): every
  process carrying the trial's environment mark must end on its own;
- the store reads: the run's status is `failed` (its process died) or, when the kill came after
  its end, `succeeded`;
- `aioflow resume` completes, and the resumed run's artifacts are right.

Processes are found through /proc (their environment carries the trial's mark) and awaited with
pidfds, so the file needs Linux. The trial count keeps it within a minute on a loaded 2-core
machine.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioflow import Run, namespace
from tests.helpers import aioflow_command

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"),
        reason="finds leftover processes through /proc and waits for them with pidfds",
    ),
]

#: Trials of each kind; with a process executor, a trial costs 1-3 s on a loaded machine.
EARLY_TRIALS = 3  # killed 0-50 ms after the run is stored
RANDOM_TRIALS = 3  # killed 0-1.5 s after the command started
#: How long leftover processes may take to notice their run is gone (a bound, not a wait).
LEFTOVER_BOUND = 20.0
MARK = "AIOFLOW_FAULT_MARK"

FLOW = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    from aioflow import FlowSpec, Parameter, step


    class KilledFlow(FlowSpec):
        """A fan-out whose every task runs in a worker process."""

        width = Parameter("width", default=4)

        @step
        def start(self):
            self.items = list(range(self.width))
            self.next(self.work, foreach="items")

        @step
        def work(self):
            hang = os.environ.get("KILLED_FLOW_HANG")
            if hang:
                Path(hang, str(self.input)).write_text(str(os.getpid()))
                while True:  # burns CPU until its process is ended
                    pass
            self.square = self.input * self.input
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.square for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
    '''
)


def marked_processes(mark: str) -> list[int]:
    """Pids of live (not zombie) processes whose environment carries `MARK=mark`."""
    wanted = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours
        if state != "Z" and wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def assert_all_end(mark: str) -> None:
    """Every process carrying `mark` ends within LEFTOVER_BOUND seconds (awaited via pidfds)."""
    deadline = time.monotonic() + LEFTOVER_BOUND
    while True:
        left = marked_processes(mark)
        if not left:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            names = [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in left]
            raise AssertionError(f"processes left behind by a killed run: {left} {names}")
        fds = []
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                fds.append(os.pidfd_open(pid))
        try:
            if fds:  # poll, not select: select cannot watch a descriptor numbered over 1023
                poller = select.poll()
                for fd in fds:
                    poller.register(fd, select.POLLIN)  # readable once that process ended
                poller.poll(remaining * 1000)
        finally:
            for fd in fds:
                os.close(fd)


class Trial:
    """One store, one flow file, one mark for the processes of this trial."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        (folder / "killed_flow.py").write_text(FLOW)
        self.mark = uuid.uuid4().hex
        self.root = folder / "store"
        self.run_id_file = folder / "run.txt"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "AIOFLOW_ROOT": str(self.root),
            "AIOFLOW_USER": "tester",
            MARK: self.mark,
            **extra,
        }

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *aioflow_command(),
                *("run", "killed_flow.py", "--executor", "process", "--quiet"),
                *("--run-id-file", str(self.run_id_file)),
            ],
            cwd=self.folder,
            env=self.env(**env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def resume(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*aioflow_command(), "resume", "killed_flow.py", "--quiet"],
            cwd=self.folder,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )


def wait_for_file(path: Path, process: subprocess.Popen[bytes]) -> None:
    """Until `path` holds something (the run was stored), or the process ended."""
    while not (path.exists() and path.read_text()):
        if process.poll() is not None:
            return
        time.sleep(0.002)  # polling the file: this observes the run, it does not pace it


@pytest.fixture
def trials(tmp_path: Path) -> Iterator[list[Trial]]:
    made: list[Trial] = []
    yield made
    for trial in made:  # nothing of a failed test outlives it
        for pid in marked_processes(trial.mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def check_after_kill(trial: Trial, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_all_end(trial.mark)
    monkeypatch.setenv("AIOFLOW_ROOT", str(trial.root))
    namespace(None)
    run_id = trial.run_id_file.read_text() if trial.run_id_file.exists() else ""
    if not run_id:
        return  # killed before the run was stored: nothing to read or resume
    run = Run(f"KilledFlow/{run_id}")
    assert run.status in ("failed", "succeeded")  # never "running": its process is gone
    resumed = trial.resume()
    assert resumed.returncode == 0, resumed.stderr
    latest = max((r for r in Run(f"KilledFlow/{run_id}").parent), key=lambda r: int(r.id))
    assert latest.successful and latest["join"].task.data.total == 14  # 0+1+4+9
    assert_all_end(trial.mark)


def test_sigkill_at_random_points_leaves_a_resumable_store_and_no_process(
    tmp_path: Path, trials: list[Trial], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    kinds = ["early"] * EARLY_TRIALS + ["random"] * RANDOM_TRIALS
    for number, kind in enumerate(kinds):
        trial = Trial(tmp_path / f"trial{number}")
        trials.append(trial)
        process = trial.start()
        if kind == "early":
            wait_for_file(trial.run_id_file, process)
            delay = rng.uniform(0, 0.05)
        else:
            delay = rng.uniform(0, 1.5)
        time.sleep(delay)  # the fault model: where the kill lands
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        try:
            check_after_kill(trial, monkeypatch)
        except AssertionError as exc:
            where = f"trial {number} ({kind}, killed after {delay:.3f} s, seed {seed})"
            raise AssertionError(f"{where}: {exc}") from exc


def test_sigkill_ends_the_workers_of_hanging_process_steps(
    tmp_path: Path, trials: list[Trial], monkeypatch: pytest.MonkeyPatch
) -> None:
    trial = Trial(tmp_path / "hang")
    trials.append(trial)
    started = tmp_path / "started"
    started.mkdir()
    process = trial.start(KILLED_FLOW_HANG=str(started))
    while not any(started.iterdir()):  # a worker is spinning in a step body
        assert process.poll() is None, "the run ended before its steps hung"
        time.sleep(0.005)  # polling the folder: observing, not pacing
    assert marked_processes(trial.mark)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    check_after_kill(trial, monkeypatch)
