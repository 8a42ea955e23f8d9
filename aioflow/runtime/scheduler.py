"""One run's scheduling: ready tasks started in slots, on two paths, until *end* or a failure.

At most `max_workers` tasks run at once. Ready tasks wait in one queue; whenever a slot frees
up, the next one starts. A plain sync step (the thread executor, no @timeout, no @resources) is
handed straight to its executor, and its result comes back as a callback: no coroutine and no
future per task, which is most of the scheduling cost of a tiny task. Every other task (async
bodies, process steps, timeouts, resource reservations, clones of a resumed run) goes to one of
`max_workers` worker coroutines. The first failing task cancels the rest. The tasks of a
@parallel step always take the second path: they run, fail and retry as a gang (`gangs.py`).

What follows a finished task is the `FlowWalk`'s business, what follows a failed attempt the
`FailurePolicy`'s, and the rows and events tasks leave behind the `TaskRecorder`'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import checkpoint

from ..decorators import StepOptions
from ..exceptions import TransitionError
from ..store.writer import BatchWriter
from .dispatch import Attempter, Dispatcher
from .executors import CallbackExecutor, failed_outcome
from .gangs import Gangs, Round, gang_node, stopped_error
from .policy import FailurePolicy
from .recorder import TaskRecorder
from .task import ErrorInfo, RunEnv, TaskOutcome, TaskSpec
from .walk import Fanout, FlowWalk, parallel_width
from .work_queue import WorkQueue

if TYPE_CHECKING:
    from ..events import Event
    from .resume import Origin, OriginTask

#: A worker coroutine lets the loop run its other callbacks after this many tasks. An async
#: step that does not suspend runs a task without giving the loop a turn, and the worker takes
#: the next one at once: without this, a foreach of such steps ran in one turn of the loop,
#: and the writer, the console and timers waited for its end (the writer committed the rows of
#: a 100,000-wide foreach in one batch at its join, ~1 KB a task).
YIELD_EVERY = 32

#: No task starts while this many task rows and small blobs wait for the writer's next commit
#: (the writer is hurried, and starts them when the commit takes the queue). Tasks that finish
#: faster than the writer commits would otherwise pile their rows up in memory: all of them
#: until the join when async steps kept the writer's thread from the GIL (~1 KB a task). Not
#: lower: held at 4,096, a 200,000-wide foreach of sync steps took 30% longer (wall) and ~10%
#: more CPU, the loop and worker threads idling while the writer caught up.
BACKLOG_LIMIT = 32768


@dataclass
class RunResult:
    """How a run ended: `failure` is the outcome of the task that failed it, if any."""

    status: str = "running"
    failure: TaskOutcome | None = None
    error: BaseException | None = None
    interrupted_tasks: list[TaskSpec] = field(default_factory=list)


class Scheduler:
    """Runs the tasks of one run, from `start` until `end` finishes or a task fails."""

    def __init__(
        self,
        env: RunEnv,
        writer: BatchWriter,
        dispatcher: Dispatcher,
        options: dict[str, StepOptions],
        *,
        max_workers: int,
        emit: Callable[[Event], None] | None,
        origin: Origin | None = None,
    ) -> None:
        self.env = env
        self.writer = writer
        self.dispatcher = dispatcher
        self.options = options
        self.origin = origin
        self.max_workers = max(1, max_workers)
        self.result = RunResult()
        self.recorder = TaskRecorder(env, writer, options, emit)
        self.policy = FailurePolicy(env, options)
        self._ready: deque[TaskSpec | Fanout] = deque()  # spawned and not started
        self.walk = FlowWalk(env, self._ready)
        self._done = 0  # tasks completed (the walk counts those spawned)
        self._in_flight = 0  # started (or handed to a worker coroutine) and not completed
        # Steps whose attempts go straight to their executor with a callback (no coroutine);
        # not @parallel steps, whose attempts a failing node of their gang must cancel.
        graph = env.graph
        self._direct = (
            {
                name: dispatcher.direct(opts)
                for name, opts in options.items()
                if not graph[name].parallel_step
            }
            if origin is None
            else {}
        )
        # Each step's `Dispatcher.attempter`, made when its first task runs in a worker.
        self._attempters: dict[str, Attempter] = {}
        # One bound method for every direct attempt's callback (not one object per task).
        self._attempt_done_callback = self._attempt_done
        self.gangs = Gangs()
        # Whether a task may ask for @parallel tasks (the graph's num_parallel calls, which
        # lint sends to @parallel steps): a run without any skips the check of every task.
        self._num_parallel = any(node.parallel_foreach or node.parallel_step for node in graph)
        self._crashed: BaseException | None = None
        self._finished = False  # run() returned: results arriving late are dropped
        self._queue = WorkQueue()  # tasks for the worker coroutines
        self._cancel: Callable[[], None] = lambda: None

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> RunResult:
        """Run the flow from its start step; returns when it ends, fails or is cancelled."""
        self.writer.pull_running_rows_from(self.recorder.running_rows)
        self.writer.on_taken = self._pump
        try:
            async with anyio.create_task_group() as tg:
                self._cancel = tg.cancel_scope.cancel
                tg.start_soon(self.writer.run, self._writer_failed)
                for _ in range(self.max_workers):
                    tg.start_soon(self._worker)
                self.walk.start()
                self._pump()
        finally:
            self._finished = True
            self.writer.pull_running_rows_from(None)
            self.writer.close()
            self._queue.close()
            self.result.interrupted_tasks = list(self.recorder.running.values())
        if self._crashed is not None:
            raise self._crashed
        if self.result.status == "running":
            self.result.status = "succeeded"
        return self.result

    def _pump(self) -> None:
        """Start ready tasks while slots are free."""
        ready = self._ready
        if not ready or self._in_flight >= self.max_workers or self.result.status != "running":
            return
        if self.writer.backlog >= BACKLOG_LIMIT:
            self.writer.hurry()  # tasks wait for this commit: no pause before it
            return
        # Starting a task adds no row to the backlog (a running row is pulled when a batch is
        # taken) and ends no run: both are checked once, above, not per task.
        direct, queue = self._direct, self._queue
        while ready and self._in_flight < self.max_workers:
            spec = ready[0]
            if isinstance(spec, Fanout):  # the next child of a foreach, made now
                fanout = spec
                spec = fanout.take()
                if not fanout.left:
                    ready.popleft()
            else:
                ready.popleft()
            self._in_flight += 1
            executor = direct.get(spec.step)
            if executor is not None:
                self._submit(spec, executor)
            else:
                queue.put(spec)

    def _judge(self, outcome: TaskOutcome) -> TaskOutcome | TaskSpec:
        """What follows an attempt: the task's outcome, or the spec of its next attempt."""
        if outcome.error is None:
            return outcome
        judged = self.policy.judge(outcome, may_retry=self.result.status == "running")
        if isinstance(judged, TaskSpec):
            self.recorder.failed_attempt(outcome)
        return judged

    def _completed(self, outcome: TaskOutcome) -> None:
        if self._num_parallel:
            width = parallel_width(outcome)
            if width > self.max_workers:
                self._refuse_parallel(outcome, width)
        self._done += 1
        self._in_flight -= 1
        self.recorder.finished(outcome)
        if outcome.error is not None and not outcome.caught:
            self.result.failure = outcome
            self._stop("failed")
            return
        if self.result.status != "running":
            return
        outcome.spec.inputs = None  # a join's inputs are no longer needed
        if self.walk.follow(outcome):
            self._succeeded()
            return
        if self.walk.spawned == self._done:
            self._stop("failed", error=self.walk.stall_error())
        self._pump()

    def _refuse_parallel(self, outcome: TaskOutcome, width: int) -> None:
        """Fail a task asking for more @parallel tasks than may run at once.

        The N tasks of a @parallel step may wait for one another (that is what they are for),
        so all of them must run at the same time: N slots are needed, not just eventually.
        """
        step = outcome.spec.step
        exc = TransitionError(
            f"Step *{step}* asks for {width} parallel tasks (num_parallel), more than the run's "
            f"max_workers ({self.max_workers}): the tasks of a @parallel step run at the same "
            "time. Raise --max-workers (max_workers= in run_flow()) or lower num_parallel."
        )
        text = f"TransitionError: {exc}"
        outcome.error = ErrorInfo(exc, "TransitionError", str(exc), text)
        outcome.transition = None
        outcome.transition_record = None

    # -- tasks in worker coroutines ---------------------------------------------------------

    async def _worker(self) -> None:
        streak = 0  # tasks run since this worker last let the loop run other callbacks
        queue = self._queue
        specs = queue.specs
        while self.result.status == "running":
            # Taken at once when one waits: `take()` is a coroutine call more per task, and a
            # wide foreach feels it. (The status check above is what stops a worker once the
            # run failed.)
            if specs:
                spec = specs.popleft()
            else:
                taken = await queue.take()
                if taken is None:
                    return
                spec = taken
            outcome = await self._run_task(spec)
            if outcome is not None:
                self._completed(outcome)
            streak += 1
            if streak == YIELD_EVERY:
                streak = 0
                await checkpoint()

    async def _run_task(self, spec: TaskSpec) -> TaskOutcome | None:
        """Run a task's attempts: retry while @retry allows, then let @catch have it. None when
        the task was completed already (a node of a gang that failed the run)."""
        if self.origin is not None:
            cloned = self.origin.take(spec)
            if cloned is not None:
                return await self._clone(spec, cloned)
        attempt = self._attempters.get(spec.step)  # (a step of gangs has none kept)
        if attempt is None:
            node = gang_node(spec)
            if node is not None:
                return await self._run_node(spec, node, self.options[spec.step])
            attempt = self.dispatcher.attempter(self.options[spec.step])
            if not self.env.nodes[spec.step].parallel_step:
                self._attempters[spec.step] = attempt
        while True:
            self.recorder.started(spec)
            judged = self._judge(await attempt(spec))
            if isinstance(judged, TaskOutcome):
                return judged
            spec = judged

    async def _run_node(
        self, spec: TaskSpec, node: tuple[int, int, int], options: StepOptions
    ) -> TaskOutcome | None:
        """Run the attempts of one node of a @parallel step, in rounds with its gang."""
        index = node[2]
        while True:
            round_ = self.gangs.round(spec, node)
            self.recorder.started(spec)
            outcome: TaskOutcome | None = None
            if round_.failure is None:
                with anyio.CancelScope() as scope:
                    round_.running[index] = scope
                    outcome = await self.dispatcher.attempt(spec, options)
            if outcome is None:  # stopped by another node's failure, or never started
                started = round_.running.pop(index, None) is not None
                how = "was stopped" if started else "did not start"
                exc = stopped_error(spec, self._failure_of(round_), how)
                outcome = failed_outcome(self.env, spec, exc)
            round_.end(index, outcome)
            await round_.ended.wait()
            self.gangs.read(spec, node, round_)
            if round_.failure is None:
                return outcome
            if round_.verdict is None:  # the first node to read the failed round judges it
                round_.fail_the_rest()
                round_.verdict = self.policy.verdict(
                    round_.failure, may_retry=self.result.status == "running"
                )
                if round_.verdict == "fail":
                    self._gang_failed(round_)
            if round_.verdict == "fail":
                return None
            judged = self.policy.apply(outcome, round_.verdict)
            if isinstance(judged, TaskOutcome):
                return judged  # caught
            self.recorder.failed_attempt(outcome)
            spec = judged

    @staticmethod
    def _failure_of(round_: Round) -> TaskOutcome:
        assert round_.failure is not None
        return round_.failure

    def _gang_failed(self, round_: Round) -> None:
        """A gang failed for good: the node that failed fails the run, and the others are
        stored as failed with it (not through `_completed`: the run's failure is that node's)."""
        failure = self._failure_of(round_)
        self._completed(failure)
        for outcome in round_.outcomes.values():
            if outcome is not failure:
                self._done += 1
                self._in_flight -= 1
                self.recorder.finished(outcome)

    async def _clone(self, spec: TaskSpec, task: OriginTask) -> TaskOutcome:
        assert self.origin is not None
        self.recorder.cloning(spec)
        outcome, items_key = self.origin.clone(spec, task)
        if items_key is not None:
            outcome.item_keys = await anyio.to_thread.run_sync(self.origin.store.load, items_key)
        return outcome

    # -- tasks handed straight to their executor --------------------------------------------

    def _submit(self, spec: TaskSpec, executor: CallbackExecutor) -> None:
        self.recorder.started(spec)
        executor.submit(spec, self._attempt_done_callback)

    def _attempt_done(self, ok: bool, value: object) -> None:
        """A directly submitted attempt ended (on the loop, called by its executor): `value`
        is its outcome, which names the task, or what failed in aioflow around it."""
        if self.result.status != "running" or self._finished:
            # A failed or cancelled run drops it, as a cancelled worker coroutine would: a
            # thread cannot be interrupted, so its result may arrive after the run ended.
            return
        try:
            if not ok:
                assert isinstance(value, BaseException)
                raise value  # aioflow itself failed around the step, not the step
            assert isinstance(value, TaskOutcome)
            judged = self._judge(value)
            if isinstance(judged, TaskSpec):
                executor = self._direct[judged.step]
                assert executor is not None  # (the step's first attempt went to it)
                self._submit(judged, executor)
            else:
                self._completed(judged)
        except BaseException as exc:
            # Nobody awaits this callback: stop the run and let `run()` raise it.
            self._crashed = exc
            self._stop("failed", error=exc)

    # -- ending -----------------------------------------------------------------------------

    def _succeeded(self) -> None:
        self.result.status = "succeeded"
        self._queue.close()
        self.writer.close()

    def _writer_failed(self, exc: BaseException) -> None:
        self._stop("failed", error=exc)

    def _stop(self, status: str, error: BaseException | None = None) -> None:
        if self.result.status == "running":
            self.result.status = status
            self.result.error = error
        self._queue.close()
        self._cancel()
