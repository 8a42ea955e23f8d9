"""A hundred runs open at once in one process: each holds its own lock file, all read running.

Every open run keeps one lock file open (`store/liveness.py`); this checks the cost is that
and no more: a hundred files and descriptors while the runs are open, none left after.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import Flow, FlowSpec, step
from aioflow.testing import FlowRunner

pytestmark = pytest.mark.timeout(60)

RUNS = 100
GATE: dict[str, Any] = {}


class GatheredFlow(FlowSpec):
    @step
    async def start(self) -> None:
        GATE["arrived"] += 1
        if GATE["arrived"] == RUNS:
            GATE["all_open"].set()
        await GATE["release"].wait()
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def descriptors_open_in(folder: Path) -> int:
    """How many file descriptors of this process point into `folder` (Linux's /proc lists them)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("this system does not list a process's open files in /proc")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with suppress(OSError):  # the listing's own descriptor is gone by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(f"{folder}{os.sep}")
    return count


async def test_a_hundred_open_runs_hold_a_hundred_lock_files_and_leave_none(
    flow_runner: FlowRunner, aioflow_root: Path
) -> None:
    GATE.update(arrived=0, all_open=anyio.Event(), release=anyio.Event())
    GATE["release"].set()
    await flow_runner(GatheredFlow)  # a run that ended leaves no lock file behind
    locks = aioflow_root / "running"
    assert list(locks.iterdir()) == []
    assert descriptors_open_in(locks) == 0

    GATE.update(arrived=0, all_open=anyio.Event(), release=anyio.Event())
    async with anyio.create_task_group() as tg:
        for _ in range(RUNS):
            tg.start_soon(lambda: flow_runner(GatheredFlow))
        with anyio.fail_after(30):
            await GATE["all_open"].wait()
        try:
            assert len(list(locks.iterdir())) == RUNS
            assert descriptors_open_in(locks) == RUNS  # one a run, whatever its tasks
            runs = list(Flow("GatheredFlow"))
            assert len(runs) == RUNS + 1
            assert sum(run.status == "running" for run in runs) == RUNS  # none reads abandoned
        finally:
            GATE["release"].set()

    assert list(locks.iterdir()) == []
    assert all(run.status == "succeeded" for run in Flow("GatheredFlow"))
    assert descriptors_open_in(locks) == 0
