"""Runs of one loop in one folder share one Store (issue 13, item 11): a thousand concurrent
runs would otherwise hold thousands of SQLite connections; each run still lets go of its own
lock at its end, and the store stays open for the others."""

from __future__ import annotations

from pathlib import Path

from aioflow import FlowSpec, step
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
