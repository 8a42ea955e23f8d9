"""Runs of one loop in one folder share one Store (issue 13, item 11): a thousand concurrent
runs would otherwise hold thousands of SQLite connections; each run still lets go of its own
lock at its end, and the store stays open for the others."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from pathlib import Path

import anyio
import pytest

from aioflow import FlowSpec, run_flow, step
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


def _folders_with_open_databases(under: Path) -> set[str]:
    folders = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(under)) and "metadata.db" in target:
                folders.add(target.split("/metadata.db")[0])
    return folders


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd (Linux)")
def test_event_loops_that_ended_do_not_keep_their_stores_open(tmp_path: Path) -> None:
    # A service or a notebook that runs flows with asyncio.run again and again, in ever new
    # folders: what each loop kept (its idle connection, its shared store) goes with the loop.
    # Before, each loop lived on through the loop state it stored about itself, and so did
    # every store it opened: one more open database per run.
    folders = [tmp_path / f"store-{i}" for i in range(2 * MAX_CACHED_STORES)]
    for folder in folders:
        anyio.run(functools.partial(run_flow, TinyFlow, root=folder, quiet=True))
    gc.collect()
    # The client's cache keeps the last few stores open for reading; a worker thread may still
    # hold the last job of one more loop until it takes another.
    assert len(_folders_with_open_databases(tmp_path)) <= MAX_CACHED_STORES + 1
