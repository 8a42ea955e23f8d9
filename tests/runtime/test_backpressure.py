"""A wide foreach of quick tasks neither runs in one turn of the loop nor outruns the writer.

Tasks that finish faster than the writer commits their rows would pile the rows up until the
join; async steps that never suspend kept the loop (and with it the writer, the console and
timers) busy from the split to the join. The scheduler gives the loop a turn every
`YIELD_EVERY` tasks of a worker, and starts no task while `BACKLOG_LIMIT` rows and blobs wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aioflow import FlowSpec, Parameter, step
from aioflow.runtime import scheduler
from aioflow.store.writer import BatchWriter
from aioflow.testing import run_in_temp_store

#: What the flows' bodies saw, read by the tests.
SEEN: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


class QuickAsyncFlow(FlowSpec):
    n = Parameter("n", default=200)

    @step
    def start(self):
        # 40 digits: too long to be kept in its key, so each item is a stored blob
        self.items = [f"{i:040d}" for i in range(self.n)]
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        if self.index == 0:
            asyncio.get_running_loop().call_soon(SEEN.setdefault, "turn", True)
        if self.index == self.n - 1:
            SEEN["last"] = SEEN.get("turn", False)
        self.x = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(int(i.x) for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.parametrize("max_workers", [1, 16])
async def test_the_loop_gets_turns_during_a_foreach_of_steps_that_never_suspend(
    aioflow_root: Path, max_workers: int
) -> None:
    # A callback the first task schedules must run before the last task: before, the 2,000
    # tasks ran in one turn of the loop and it ran after all of them.
    run = await run_in_temp_store(
        QuickAsyncFlow, aioflow_root, n=2000, max_num_splits=2000, max_workers=max_workers
    )
    assert SEEN["last"] is True
    assert run["join"].task.data.total == sum(range(2000))


async def test_no_task_starts_while_the_writer_is_behind(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[int] = []
    take = BatchWriter._take

    def measured(writer: BatchWriter) -> Any:
        tasks, blobs, runs = take(writer)
        taken.append(len(tasks) + len(blobs))
        return tasks, blobs, runs

    monkeypatch.setattr(BatchWriter, "_take", measured)
    monkeypatch.setattr(scheduler, "BACKLOG_LIMIT", 64)
    run = await run_in_temp_store(
        QuickAsyncFlow, aioflow_root, n=1000, max_num_splits=1000, max_workers=4
    )
    assert run["join"].task.data.total == sum(range(1000))
    # Past the limit, only the tasks running may add to a batch: a row and a blob each, and a
    # row for each task running when the batch is taken. The one bigger batch is the split's,
    # with its 1,000 items. Before, the foreach's ~2,000 rows and blobs came in one batch.
    assert sum(taken) >= 2000  # the items, and a row per task (their x is an item: stored)
    assert len([size for size in taken if size > 64 + 4 * 3]) == 1
