"""Metaflow parity, round 2 (issue 11): behaviours recorded from Metaflow's documentation.

Each test runs a flow as a Metaflow user would write it and compares what the client reads with
what Metaflow documents (or its own resume tests check): class-level constants changed in place,
`@catch` and `Task.exception`, what a timed-out thread step keeps, a resumed run's metadata.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from aioflow import (
    FlowFailed,
    FlowSpec,
    catch,
    current,
    parallel,
    resume_flow,
    retry,
    run_flow,
    step,
    timeout,
)
from aioflow.client import Task
from aioflow.decorators import StepOptions
from aioflow.exceptions import LintError, TransitionError
from aioflow.graph import FlowGraph
from aioflow.runtime.executors import ExecutorContext, failed_outcome, registry
from aioflow.runtime.gangs import gang_node
from aioflow.runtime.task import TaskOutcome, TaskSpec, run_sync_task
from aioflow.testing import run_in_temp_store
from tests.helpers import gang_flow_source

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


# -- item 3: a timed-out thread step keeps what it set and printed before the timeout ----------

RELEASE = threading.Event()


class TimedOutFlow(FlowSpec):
    @catch(var="timed_out")
    @timeout(seconds=0.5)
    @step
    def start(self):
        self.started = True
        print("working on it")
        RELEASE.wait()  # released by the test once the run is over
        self.finished_work = True
        self.next(self.end)

    @step
    def end(self):
        self.saw_started = self.started
        self.saw_finished = getattr(self, "finished_work", None)


async def test_a_timed_out_thread_step_keeps_its_artifacts_and_output(aioflow_root: Path) -> None:
    RELEASE.clear()
    try:
        run = await run_in_temp_store(TimedOutFlow, aioflow_root)
    finally:
        RELEASE.set()  # let the abandoned thread end
    start = run["start"].task
    # Metaflow: `started` is an artifact of the timed-out task and flows on under @catch;
    # the lines it printed are its stdout.
    assert start.data.started is True and "finished_work" not in start
    assert start.stdout == "working on it\n"
    assert start.data.timed_out.type == "aioflow.exceptions.TimeoutException"
    assert start.successful is False and start.exception is None
    assert (run["end"].task.data.saw_started, run["end"].task.data.saw_finished) == (True, None)


# -- item 4: a resumed run's metadata, as Metaflow's resume tests read it -----------------------

FAIL_AT_END = {"on": True}


class ResumeAtEndFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        print("splitting")
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input**2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        if FAIL_AT_END["on"]:
            raise RuntimeError("failing at end")


ORIGIN_KEYS = {"origin-run-id", "origin-task-id"}


async def test_resumed_metadata_matches_the_origin(aioflow_root: Path) -> None:
    FAIL_AT_END["on"] = True
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(ResumeAtEndFlow, aioflow_root)
    origin = info.value.run
    assert origin is not None
    FAIL_AT_END["on"] = False
    resumed = await resume_flow(ResumeAtEndFlow, root=aioflow_root, quiet=True)
    assert resumed.successful

    cloned = 0
    for step_ in resumed:
        for task in step_:
            meta = task.metadata_dict
            # Every task of a resumed run names the run it resumed.
            assert meta["origin-run-id"] == origin.id
            if step_.id == "end":
                # Re-executed: it has no origin task.
                assert "origin-task-id" not in meta
                assert task.origin_pathspec is None
                continue
            # A clone's metadata is its origin's, apart from the origin keys.
            assert task.origin_pathspec is not None
            theirs = Task(task.origin_pathspec).metadata_dict
            assert meta["origin-task-id"] == theirs_id(task.origin_pathspec)
            assert {k: v for k, v in meta.items() if k not in ORIGIN_KEYS} == theirs
            cloned += 1
    assert cloned == 1 + 3 + 1  # start, three squares, gather


def theirs_id(pathspec: str) -> str:
    """The task id of a pathspec."""
    return pathspec.rsplit("/", 1)[1]


# -- item 9: @parallel and self.next(..., num_parallel=N) ----------------------------------------

NODES = 3
#: every node waits here for the others: the test hangs (and the barrier breaks) unless the
#: N tasks run at the same time
BARRIER: dict[str, threading.Barrier] = {}


class ParallelFlow(FlowSpec):
    @step
    def start(self):
        self.outside = tuple(current.parallel)
        self.next(self.train, num_parallel=NODES)

    @parallel
    @step
    def train(self):
        BARRIER["all"].wait(timeout=60)
        info = current.parallel
        self.node = (info.num_nodes, info.node_index, info.main_ip, info.control_task_id)
        self.is_parallel = current.is_parallel
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.nodes = sorted(i.node for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_num_parallel_runs_n_tasks_at_once(aioflow_root: Path) -> None:
    BARRIER["all"] = threading.Barrier(NODES)
    run = await run_in_temp_store(ParallelFlow, aioflow_root)
    assert run.successful
    # Metaflow's defaults outside a @parallel step: one node, index 0, no control task.
    assert run["start"].task.data.outside == ("127.0.0.1", 1, 0, None)

    tasks = list(run["train"])
    assert len(tasks) == NODES
    controls = list(run["train"].control_tasks())
    assert len(controls) == 1
    control = controls[0]
    assert control.data.node[1] == 0  # node 0 is the control task
    assert {t.data.node for t in tasks} == {
        (NODES, index, "127.0.0.1", control.id) for index in range(NODES)
    }
    assert all(t.data.is_parallel for t in tasks)
    # The join sees the N tasks as its inputs.
    assert [n[1] for n in run["gather"].task.data.nodes] == list(range(NODES))
    assert len(list(run["gather"].task.parent_tasks)) == NODES


# A node that fails fails its gang, as Metaflow's multi-node tasks do: the others are stopped,
# @retry runs all N again, @catch catches all N.


def gang_flow(make_flow: MakeFlow, decorators: str = "") -> type[FlowSpec]:
    return make_flow(gang_flow_source(decorators))


def raised(task: Task) -> str | None:
    """The type of the exception the task's attempt failed with."""
    return None if task.exception is None else task.exception.type


def stopped_by(task: Task, failed: Task, how: str) -> bool:
    """True when `task` failed because node 1 (`failed`) of its gang did, as `how` says."""
    exception = task.exception
    assert exception is not None
    return exception.type == "aioflow.exceptions.ParallelStepFailed" and exception.exception == (
        f"Task {failed.id} (node 1) of the @parallel step *train* failed (ValueError: node 1 "
        f"broke); the 3 tasks of a @parallel step succeed or fail together, so this one {how}."
    )


async def test_a_failing_node_stops_the_others_and_fails_the_run(
    make_flow: MakeFlow, tmp_path: Path
) -> None:
    meet = tmp_path / "meet"
    try:
        with pytest.raises(FlowFailed) as info:
            await run_flow(
                gang_flow(make_flow), root=tmp_path / "store", quiet=True,
                folder=str(meet), fail="always", hold=True,
            )  # fmt: skip
    finally:
        meet.mkdir(exist_ok=True)
        (meet / "release").touch()  # the stopped nodes' abandoned threads may end now
    assert isinstance(info.value.__cause__, ValueError)
    run = info.value.run
    assert run is not None and "gather" not in run
    nodes = {t.index: t for t in run["train"]}
    assert info.value.pathspec == nodes[1].pathspec
    assert nodes[1].status == "failed" and raised(nodes[1]) == "builtins.ValueError"
    for index in (0, 2):  # they had started, and waited for a release that came too late
        assert nodes[index].status == "failed"
        assert stopped_by(nodes[index], nodes[1], "was stopped")
    assert sorted(p.name for p in (meet / "attempt-0").iterdir()) == [
        "node-0", "node-1", "node-2"
    ]  # fmt: skip


async def test_retry_runs_the_whole_gang_again(make_flow: MakeFlow, tmp_path: Path) -> None:
    flow = gang_flow(make_flow, "    @retry(times=1)\n")
    run = await run_flow(
        flow, root=tmp_path / "store", quiet=True, folder=str(tmp_path / "meet"), fail="first"
    )
    assert run.successful
    # All three ran again, with current.retry_count 1, and the join read their second attempts.
    assert [(index, attempt) for index, _, _, attempt in run["gather"].task.data.where] == [
        (0, 1), (1, 1), (2, 1)
    ]  # fmt: skip
    tasks = {t.index: t for t in run["train"]}
    assert {t.current_attempt for t in tasks.values()} == {1}
    first = {i: Task(t.pathspec, attempt=0, root=tmp_path / "store") for i, t in tasks.items()}
    assert first[1].status == "failed" and raised(first[1]) == "builtins.ValueError"
    for index in (0, 2):  # stopped, or finished (as timing had it): their gang's attempt failed
        assert first[index].status == "failed"
        assert stopped_by(first[index], first[1], "was stopped") or stopped_by(
            first[index], first[1], "finished, but fails with it"
        )


class RetriedGangFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=NODES)

    @retry(times=1)
    @parallel
    @step
    def train(self):
        self.attempt = current.retry_count
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.attempts = [i.attempt for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class NodeOneFailsLast:
    """Runs bodies inline; the first attempt of node 1 fails once the others' bodies finished."""

    def __init__(self, context: ExecutorContext) -> None:
        self.env = context.env
        self.finished = 0
        self.others_finished = anyio.Event()

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        node = gang_node(spec)
        if node is None or spec.attempt > 0:
            return run_sync_task(self.env, spec)
        if node[2] == 1:
            await self.others_finished.wait()
            return failed_outcome(self.env, spec, ValueError("node 1 broke"))
        outcome = run_sync_task(self.env, spec)
        self.finished += 1
        if self.finished == node[1] - 1:
            self.others_finished.set()
        return outcome

    async def aclose(self) -> None:
        pass


async def test_nodes_that_finished_fail_with_their_gang(tmp_path: Path) -> None:
    with registry.overriding(thread=NodeOneFailsLast):
        run = await run_flow(RetriedGangFlow, root=tmp_path, quiet=True)
    assert run["gather"].task.data.attempts == [1] * NODES
    first = {t.index: Task(t.pathspec, attempt=0, root=tmp_path) for t in run["train"]}
    assert raised(first[1]) == "builtins.ValueError"
    for index in (0, 2):
        assert stopped_by(first[index], first[1], "finished, but fails with it")


async def test_catch_catches_the_whole_gang(make_flow: MakeFlow, tmp_path: Path) -> None:
    flow = gang_flow(make_flow, '    @catch(var="error")\n')
    run = await run_flow(
        flow, root=tmp_path / "store", quiet=True, folder=str(tmp_path / "meet"), fail="always"
    )
    assert run.successful
    assert {t.status for t in run["train"]} == {"caught"}
    # The join sees the N nodes, each with the error it was caught with.
    assert run["gather"].task.data.errors == [
        (0, "aioflow.exceptions.ParallelStepFailed"),
        (1, "builtins.ValueError"),
        (2, "aioflow.exceptions.ParallelStepFailed"),
    ]


PARALLEL_LINT = """
from aioflow import FlowSpec, parallel, step

class F(FlowSpec):
    @step
    def start(self):
        self.next(self.train{how})

{deco}
    @step
    def train(self):
        self.next(self.{after})

    @step
    def middle(self):
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize(
    ("how", "deco", "after", "message"),
    [
        (", num_parallel=2", "", "middle", "step *train* has no @parallel decorator"),
        (", self.middle", "    @parallel", "gather", "step *start* calls it without num_parallel"),
        (", num_parallel=2", "    @parallel", "middle", "must be followed by a join step"),
    ],
)
def test_parallel_lint(make_flow: MakeFlow, how: str, deco: str, after: str, message: str) -> None:
    source = PARALLEL_LINT.format(how=how, deco=deco, after=after)
    flow_cls = make_flow(source)
    with pytest.raises(LintError, match=re.escape(message)):
        FlowGraph(flow_cls).lint()


async def test_more_parallel_tasks_than_workers_is_refused(aioflow_root: Path) -> None:
    # The N tasks may wait for one another, so all N must run at once: with fewer slots the
    # run would hang, so the step asking for them fails instead, saying what to change.
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(ParallelFlow, aioflow_root, max_workers=NODES - 1)
    cause = info.value.__cause__
    assert isinstance(cause, TransitionError)
    assert str(cause).startswith(f"Step *start* asks for {NODES} parallel tasks")
    assert f"max_workers ({NODES - 1})" in str(cause)
    run = info.value.run
    assert run is not None and "train" not in run
    assert run["start"].task.exception is not None
