"""Runs of one loop in one folder share one Store (issue 13, item 11): a thousand concurrent
runs would otherwise hold thousands of SQLite connections; each run still lets go of its own
lock at its end, and the store stays open for the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aioflow import FlowSpec, step
from aioflow.client.base import MAX_CACHED_STORES
from aioflow.runtime.config import RunConfig
from aioflow.runtime.runner import open_run, prepare
from aioflow.store import Store


class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_runs_in_one_folder_share_one_store(aioflow_root: Path) -> None:
    config = RunConfig(root=aioflow_root)
    first = await open_run(prepare(TinyFlow, {}, config), config)
    second = await open_run(prepare(TinyFlow, {}, config), config)
    try:
        assert first.store is second.store
        await first.abandon()  # its end is recorded; the shared store stays usable
        row = second.store.metadata.run("TinyFlow", int(second.run_id))
        assert row is not None and row.status == "running"
    finally:
        await second.abandon()
    reader = Store(aioflow_root, create=False)
    try:
        for opened in (first, second):
            row = reader.metadata.run("TinyFlow", int(opened.run_id))
            assert row is not None and row.status == "cancelled"
    finally:
        reader.close()


LOOPS_SCRIPT = """
import anyio, functools, gc, os, sys
from pathlib import Path
from aioflow import FlowSpec, run_flow, step

class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

under, count = Path(sys.argv[1]), int(sys.argv[2])
for i in range(count):
    anyio.run(functools.partial(run_flow, TinyFlow, root=under / f"store-{i}", quiet=True))
gc.collect()
folders = set()
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    if target.startswith(str(under)) and "metadata.db" in target:
        folders.add(target.split("/metadata.db")[0])
print(len(folders))
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd (Linux)")
def test_event_loops_that_ended_do_not_keep_their_stores_open(tmp_path: Path) -> None:
    # A service or a notebook that runs flows with asyncio.run again and again, in ever new
    # folders: what each loop kept (its idle connection, its shared store) goes with the loop.
    # Before, each loop lived on through the loop state it stored about itself, and so did
    # every store it opened: one more open database per run. Counted in a process of its own,
    # so that nothing of the test runner's keeps a loop alive.
    count = 2 * MAX_CACHED_STORES
    script = tmp_path / "loops.py"  # a file: flows are read from their source
    script.write_text(LOOPS_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(count)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    # The client's cache keeps the last few stores open for reading; a worker thread may still
    # hold the last job of one more loop until it takes another.
    assert int(done.stdout) <= MAX_CACHED_STORES + 1
