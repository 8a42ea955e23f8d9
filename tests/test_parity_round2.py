"""Metaflow parity, round 2 (issue 11): behaviours recorded from Metaflow's documentation.

Each test runs a flow as a Metaflow user would write it and compares what the client reads with
what Metaflow documents (or its own resume tests check): class-level constants changed in place,
`@catch` and `Task.exception`, what a timed-out thread step keeps, a resumed run's metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aioflow import FlowFailed, FlowSpec
from aioflow.testing import run_in_temp_store

MakeFlow = Callable[[str], type[FlowSpec]]

HEADER = "from aioflow import FlowSpec, catch, retry, step, timeout\n"


# -- item 1: a class-level constant changed in place lasts for the rest of that step only -------

CONSTANT_FLOW = """
class SettingsFlow(FlowSpec):
    SETTINGS = {"mode": "fast"}
    LIMITS = [1, 2]

    @step
    def start(self):
        self.SETTINGS["mode"] = "slow"
        self.LIMITS.append(3)
        self.seen_in_start = (self.SETTINGS["mode"], list(self.LIMITS))
        self.next(self.end)

    @step
    def end(self):
        self.seen_in_end = (self.SETTINGS["mode"], list(self.LIMITS))
"""


async def test_an_in_place_change_to_a_constant_is_not_stored(
    make_flow: MakeFlow, aioflow_root: Path
) -> None:
    run = await run_in_temp_store(make_flow(HEADER + CONSTANT_FLOW), aioflow_root)
    start, end = run["start"].task, run["end"].task
    # Metaflow: the change is visible for the rest of the step that made it ...
    assert start.data.seen_in_start == ("slow", [1, 2, 3])
    # ... the stored value stays the class's, and the next step reads the original.
    assert start.data.SETTINGS == {"mode": "fast"} and start.data.LIMITS == [1, 2]
    assert end.data.seen_in_end == ("fast", [1, 2])
    assert start["SETTINGS"].sha == end["SETTINGS"].sha  # one stored value for the run


# -- item 2: a caught task's exception lives in the catch variable, not on the task -------------

CATCH_FLOW = """
class CatchFlow(FlowSpec):
    @catch(var="failure")
    @step
    def start(self):
        self.before = "kept"
        raise ValueError("bad row")
        self.next(self.end)

    @step
    def end(self):
        self.failure_type = self.failure.type
"""


async def test_a_caught_task_has_no_exception(make_flow: MakeFlow, aioflow_root: Path) -> None:
    run = await run_in_temp_store(make_flow(HEADER + CATCH_FLOW), aioflow_root)
    task = run["start"].task
    # Metaflow: Task.exception is None; the exception is the `var` artifact; the task did
    # not succeed, yet it finished (@catch let the run go on).
    assert task.exception is None
    assert task.successful is False and task.finished is True
    assert task.data.failure.type == "builtins.ValueError"
    assert task.data.failure.exception == "bad row"
    assert task.data.before == "kept"
    assert run["end"].task.data.failure_type == "builtins.ValueError"
    assert run.successful


async def test_a_failed_task_keeps_its_exception(make_flow: MakeFlow, aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(
            make_flow(HEADER + CATCH_FLOW.replace('@catch(var="failure")', "")), aioflow_root
        )
    run = info.value.run
    assert run is not None
    exception = run["start"].task.exception
    assert exception is not None and exception.type == "builtins.ValueError"

