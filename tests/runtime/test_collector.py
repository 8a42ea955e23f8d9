"""Full collections kept off the loop while runs are active (runtime/collector.py): what the
process held is frozen for the run and given back to the collector at its end; a host that
froze objects itself, or turned the collector off, is left alone."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioflow import FlowSpec, run_flow, step
from aioflow.runtime.collector import FREEZE_EVERY, UNFREEZE_EVERY, CollectorGuard


class Node:
    """A cycle the collector, not reference counting, must free."""

    def __init__(self) -> None:
        self.me = self


def garbage_cycle() -> weakref.ref[Node]:
    return weakref.ref(Node())


#: What the interpreter itself freezes at start-up (375 tuples on Python 3.12.1, else none).
INTERPRETER_FROZEN = int(
    subprocess.run(
        [sys.executable, "-S", "-c", "import gc; print(gc.get_freeze_count())"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
)  # fmt: skip


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    frozen = gc.get_freeze_count()
    assert frozen in (0, INTERPRETER_FROZEN), "a test before this one left objects frozen"
    yield
    gc.unfreeze()


class FreezeCountFlow(FlowSpec):
    @step
    def start(self):
        self.frozen_while_running = gc.get_freeze_count()
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_run_freezes_what_the_process_held_and_gives_it_back(aioflow_root: Path) -> None:
    run = await run_flow(FreezeCountFlow, quiet=True)
    assert run.data.frozen_while_running > 0
    assert gc.get_freeze_count() == 0  # the host's objects are collected as before


async def test_a_host_that_froze_objects_itself_is_left_alone(aioflow_root: Path) -> None:
    cycle = garbage_cycle()
    gc.freeze()  # as a pre-forking server does
    await run_flow(FreezeCountFlow, quiet=True)
    gc.collect()
    assert cycle() is not None  # still frozen: aioflow did not thaw what the host froze


async def test_a_host_that_turned_the_collector_off_is_left_alone(aioflow_root: Path) -> None:
    gc.disable()
    try:
        run = await run_flow(FreezeCountFlow, quiet=True)
    finally:
        gc.enable()
    assert run.data.frozen_while_running == 0


def test_objects_frozen_before_the_guard_was_made_are_not_taken_for_the_hosts() -> None:
    doomed = [[i] for i in range(100)]
    gc.freeze()  # as Python 3.12.1 starts: with objects of its own frozen already
    cycle = garbage_cycle()
    guard = CollectorGuard()  # made at import, after the interpreter started
    del doomed  # frozen objects still die with their last reference: fewer are frozen now
    guard.run_started()
    guard.run_ended()  # the guard managed the run, and gave everything back at its end
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert cycle() is None
    gc.freeze()  # the host freezes objects now: from here on they are the host's
    guard.run_started()
    guard.run_ended()
    assert gc.get_freeze_count() > 0


def test_cycles_that_outlived_a_freeze_are_collected_once_runs_end() -> None:
    guard = CollectorGuard()
    cycle = garbage_cycle()  # garbage already, waiting for a collection
    guard.run_started()
    gc.collect()
    assert cycle() is not None  # frozen: full collections do not see it during the run
    guard.run_ended()
    gc.collect()
    assert cycle() is None


def test_overlapping_runs_thaw_only_when_the_last_one_ends() -> None:
    guard = CollectorGuard()
    guard.run_started()
    guard.run_started()
    cycle = garbage_cycle()
    for _ in range(FREEZE_EVERY):
        guard.task_finished()  # survivors so far are frozen
    guard.run_ended()
    gc.collect()
    assert cycle() is not None
    guard.run_ended()
    gc.collect()
    assert cycle() is None


def test_a_process_that_is_never_idle_is_thawed_now_and_then() -> None:
    guard = CollectorGuard()
    guard.run_started()
    cycle = garbage_cycle()
    for _ in range(FREEZE_EVERY):
        guard.task_finished()
    gc.collect()
    assert cycle() is not None
    for _ in range(FREEZE_EVERY * (UNFREEZE_EVERY - 1)):
        guard.task_finished()  # the UNFREEZE_EVERY-th time, everything is given back
    gc.collect()
    assert cycle() is None
    guard.run_ended()
