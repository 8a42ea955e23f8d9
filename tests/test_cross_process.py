"""Reading what another process stored, while it still runs: the client, `aioflow logs`, `dump`,
`runs` and `tag` all work on a run in progress, which reports `finished == False` until it
ends; tags added meanwhile survive the run's own final writes; a run whose process was killed
reads as failed and can be resumed.

The flows run as `python flow.py run` subprocesses. A step waits for a file the test creates,
so the test decides when the run may end; everything else is polled with deadlines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from aioflow import Flow, Run, Step, resume_flow
from aioflow.client.namespaces import _namespace
from aioflow.exceptions import MetaflowNotFound, ParameterError, StoreError
from aioflow.loader import load_flow
from tests.helpers import invoke

pytestmark = pytest.mark.timeout(90)
T = TypeVar("T")

FLOW = """
import contextlib
import os
import time

from aioflow import FlowSpec, step


def wait_for(name):
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(os.environ["GATES"], name)):
        if time.time() > deadline:
            raise TimeoutError("the test never opened " + name)
        time.sleep(0.01)


class CrossFlow(FlowSpec):
    @step
    def start(self):
        print("start output")
        self.x = 41
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 1:
            wait_for("release")
        print("work", self.input)
        self.y = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.ys = [i.y for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.done = True


if __name__ == "__main__":
    CrossFlow()
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    root = tmp_path / "store"
    gates = tmp_path / "gates"
    gates.mkdir()
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    monkeypatch.setenv("AIOFLOW_ROOT", str(root))
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    monkeypatch.setenv("GATES", str(gates))  # the flow runs here too, when resumed
    token = _namespace.set("user:tester")
    yield dict(os.environ)
    _namespace.reset(token)


@contextlib.contextmanager
def started_run(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    """`python flow.py run` in a subprocess; SIGKILLed if still running when the block ends."""
    with subprocess.Popen(
        [sys.executable, "flow.py", "run", "--quiet", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # leaving it closes the pipes and reaps the process
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll `probe` until it returns something other than None (or raises no lookup error)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except (MetaflowNotFound, StopIteration, StoreError):  # not there yet
            found = None
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def running_task(run: Run) -> Any:
    """The work task that waits for the gate, once the other two have finished."""
    work = Step(f"{run.pathspec}/work")
    tasks = list(work)
    if len(tasks) < 3 or sum(t.successful for t in tasks) < 2:
        return None
    return next(t for t in tasks if t.status == "running")


def test_reading_a_run_while_another_process_runs_it(tmp_path: Path, env: dict[str, str]) -> None:
    with started_run(tmp_path, env, "--tag", "cross") as proc:
        run = eventually(lambda: Flow("CrossFlow").latest_run, "the run to appear")
        waiting = eventually(lambda: running_task(run), "the waiting task")

        # the run, as seen from here while it runs
        assert run.status == "running"
        assert not run.finished and not run.successful
        assert run.end_task is None and run.data is None and run.finished_at is None
        assert run.user_tags == {"cross"} and "user:tester" in run.system_tags
        start = run["start"].task
        assert start.successful and start.data.x == 41 and start.stdout == "start output\n"
        assert [s.id for s in run] == ["work", "start"]
        assert not waiting.finished and not waiting.successful and waiting.exception is None
        assert waiting.finished_at is None and waiting.metadata_dict["status"] == "running"
        assert run["work"].finished_at is None  # one of its tasks is still running
        done = [t for t in run["work"] if t.successful]
        assert sorted(t.data.y for t in done) == [0, 20]

        # the commands, on the same run
        code, out, _ = invoke("logs", start.pathspec, "--stdout")
        assert code == 0 and out == "start output\n"
        code, _, err = invoke("logs", waiting.pathspec)
        assert code == 0 and "(still running" in err
        code, out, _ = invoke("dump", start.pathspec, "--include", "x")
        assert code == 0 and out == f"x [size: {start['x'].size} type: int] = 41\n"
        code, out, _ = invoke("runs", "CrossFlow")
        assert code == 0 and out.splitlines()[1].split()[:2] == [run.pathspec, "running"]

        # tags added now survive the run's own final writes
        run.add_tag("added-while-running")
        code, _, _ = invoke("tag", "add", run.pathspec, "from-cli")
        assert code == 0

        # a run in progress cannot be resumed
        flow_cls = load_flow(tmp_path / "flow.py")
        with pytest.raises(ParameterError, match="is still running"):
            anyio.run(lambda: resume_flow(flow_cls, origin_run_id=run.id, quiet=True))

        (Path(env["GATES"]) / "release").touch()
        assert proc.wait(timeout=60) == 0, proc.communicate()

    final = Run(run.pathspec)
    assert final.status == "succeeded" and final.finished and final.successful
    assert final.finished_at is not None and final.data.ys == [0, 10, 20]
    assert final.user_tags == {"cross", "added-while-running", "from-cli"}
    assert run.successful  # the object read earlier sees the end too


def test_a_killed_run_reads_as_failed_and_can_be_resumed(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with started_run(tmp_path, env) as proc:
        run = eventually(lambda: Flow("CrossFlow").latest_run, "the run to appear")
        eventually(lambda: running_task(run), "the waiting task")
        assert run.status == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed = Run(run.pathspec)
    assert killed.status == "failed"  # its process is gone
    assert not killed.finished and not killed.successful
    code, out, _ = invoke("runs", "CrossFlow")
    assert code == 0 and out.splitlines()[1].split()[:2] == [run.pathspec, "failed"]

    (Path(env["GATES"]) / "release").touch()
    flow_cls = load_flow(tmp_path / "flow.py")
    resumed = anyio.run(lambda: resume_flow(flow_cls, quiet=True))
    assert resumed.successful and resumed.origin_pathspec == run.pathspec
    assert resumed.data.ys == [0, 10, 20]
    cloned = sorted(t.index for t in resumed["work"] if t.origin_pathspec is not None)
    assert cloned == [0, 2]  # the two that had finished; the killed one ran again


TAGGER = """
import sys
from aioflow import Run, namespace

namespace(None)
run = Run(sys.argv[1])
for i in range(15):
    run.add_tag(sys.argv[2] + str(i))
"""


def test_processes_tagging_one_run_at_once_lose_nothing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (Path(env["GATES"]) / "release").touch()
    with started_run(tmp_path, env) as proc:
        assert proc.wait(timeout=60) == 0, proc.communicate()
    run = Flow("CrossFlow").latest_run
    taggers = [
        subprocess.Popen([sys.executable, "-c", TAGGER, run.pathspec, prefix], env=env)
        for prefix in ("p", "q", "r")
    ]
    assert [t.wait(timeout=60) for t in taggers] == [0, 0, 0]
    assert Run(run.pathspec).user_tags == {f"{p}{i}" for p in "pqr" for i in range(15)}
