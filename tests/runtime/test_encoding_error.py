"""A value a step cannot store fails its task with one line naming the artifact, the step and the
reason; the chain through aioflow's encoder is kept in the task's stderr log."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from aioflow import FlowFailed, FlowSpec, Task, run_flow_sync, step
from aioflow.events import Event, TaskFailed
from tests.helpers import aioflow_command

pytestmark = pytest.mark.timeout(60)


class LockFlow(FlowSpec):
    @step
    def start(self):
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        pass


def test_an_unpicklable_artifact_is_one_short_message(aioflow_root: Path) -> None:
    events: list[Event] = []
    with pytest.raises(FlowFailed):
        run_flow_sync(LockFlow, quiet=True, listeners=[events.append])

    (failed,) = [e for e in events if isinstance(e, TaskFailed)]
    assert failed.traceback == (
        "ArtifactEncodingError: Artifact 'lock' set in step *start* cannot be stored: lock "
        "cannot be pickled: TypeError: cannot pickle '_thread.lock' object\n"
    )
    # The chain stays in the stored log, for whoever needs aioflow's side of it.
    stderr = Task(failed.pathspec).stderr
    assert "Traceback (most recent call last):" in stderr
    assert "pickle.dumps" in stderr
    assert stderr.rstrip().endswith("cannot pickle '_thread.lock' object")


FLOW_FILE = """
import threading
from aioflow import FlowSpec, step


class LockFlow(FlowSpec):
    @step
    def start(self):
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_verbose_prints_the_chain_behind_the_one_line(tmp_path: Path, verbose: bool) -> None:
    (tmp_path / "flow.py").write_text(FLOW_FILE)
    argv = [*aioflow_command(), "run", "flow.py", *(["--verbose"] if verbose else [])]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    printed = [line for line in done.stdout.splitlines() if "[1/start/1]" in line]
    assert any("Artifact 'lock' set in step *start* cannot be stored" in line for line in printed)
    # Without --verbose, aioflow's encoder stays out of sight; with it, the chain is printed.
    assert any("Traceback (most recent call last):" in line for line in printed) == verbose
    assert any("pickle.dumps" in line for line in printed) == verbose


def test_a_foreach_item_that_cannot_be_stored_is_named_by_its_place() -> None:
    # (The list itself is stored first, so a flow meets this only with an item whose own
    # pickling fails where the list's did not; the encoder's message is the same one.)
    from aioflow.exceptions import ArtifactEncodingError
    from aioflow.runtime.artifacts import encode_values

    small: list[tuple[str, bytes]] = []
    with pytest.raises(ArtifactEncodingError) as info:
        encode_values([1, "two", threading.Lock()], "items", "start", small, lambda _: None)
    assert (info.value.artifact, info.value.step) == ("items[2]", "start")
    assert str(info.value).startswith("Artifact 'items[2]' set in step *start* cannot be stored")
    assert isinstance(info.value.__cause__, TypeError)  # what pickle raised, as for an artifact
