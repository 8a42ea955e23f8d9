"""A value a step cannot store fails its task with one line naming the artifact, the step and the
reason; the chain through aioflow's encoder is kept in the task's stderr log."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aioflow import FlowFailed, FlowSpec, Task, run_flow_sync, step
from aioflow.events import Event, TaskFailed

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
