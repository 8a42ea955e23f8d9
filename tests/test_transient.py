"""`@transient(...)`: artifacts used during a run, dropped when it ends, their blobs freed by gc."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aioflow import FlowFailed, run_flow_sync
from aioflow.exceptions import FlowDefinitionError
from aioflow.flowspec import FlowSpec
from aioflow.store import Store, gc
from aioflow.store.serde import encode
from aioflow.transient import transient, transient_names

FLOW = """
from aioflow import FlowSpec, Parameter, step, transient


@transient("frame", "alpha")
class TransientFlow(FlowSpec):
    alpha = Parameter("alpha", default=2)

    @step
    def start(self):
        self.frame = "f" * 300_000
        self.next(self.a, self.b)

    @step
    def a(self):
        self.size = len(self.frame)
        self.next(self.join)

    @step
    def b(self):
        self.size = len(self.frame)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.total = self.size * self.alpha
        FAIL
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_transient_artifacts_live_during_the_run_only(
    make_flow: Callable[[str], type[FlowSpec]], tmp_path: Path
) -> None:
    flow = make_flow(FLOW.replace("        FAIL\n", ""))
    assert transient_names(flow) == {"frame", "alpha"}
    root = tmp_path / "store"
    run = run_flow_sync(flow, root=root, quiet=True)
    join = run["join"].task
    assert join.data.total == 600_000  # read in later steps and through a join
    assert join.data.alpha == 2  # a parameter is kept even when named
    assert all("frame" not in task.data for step in run for task in step)
    key = encode("f" * 300_000).key
    assert (root / "blobs" / key[:2] / key[2:]).exists()  # until gc
    past = time.time() - 3600
    for path in (root / "blobs").glob("??/*"):
        os.utime(path, (past, past))
    store = Store(root, create=False)
    try:
        report = gc.collect(store, [])
    finally:
        store.close()
    assert report.files == 1 and not (root / "blobs" / key[:2] / key[2:]).exists()
    assert run["join"].task.data.total == 600_000


def test_a_failed_run_drops_them_too(
    make_flow: Callable[[str], type[FlowSpec]], tmp_path: Path
) -> None:
    flow = make_flow(FLOW)
    with pytest.raises(FlowFailed) as info:
        run_flow_sync(flow, root=tmp_path / "store", quiet=True)
    assert info.value.run is not None
    assert "frame" not in info.value.run["a"].task.data


def test_bad_declarations() -> None:
    with pytest.raises(FlowDefinitionError, match="names no artifact"):
        transient()
    with pytest.raises(FlowDefinitionError, match=r"@transient\('x-y'\): an artifact's name"):
        transient("x-y")
    with pytest.raises(FlowDefinitionError, match="applied twice"):

        @transient("a")
        @transient("b")
        class Twice(FlowSpec):
            pass
