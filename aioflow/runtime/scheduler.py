"""One run's scheduling: ready tasks, foreach fan-out, static splits, switches, joins as barriers.

Every task carries a stack of split frames: `(split task id, number of branches, index, split
step, foreach variable or None, key of the foreach item)`. A split pushes a frame on its
children; a join pops one, and waits for as many arrivals as the frame says, keyed by the split
task that pushed it. That keys joins by what really ran, so a switch inside a branch, nested
foreaches and recursive loops need no special cases.

At most `max_workers` tasks run at once. Ready tasks wait in one queue; whenever a slot frees
up, the next one starts. A plain sync step (the thread executor, no @timeout, no @resources) is
handed straight to the run's thread lane, and its result comes back as a callback: no coroutine
and no future per task, which is most of the scheduling cost of a tiny task. Every other task
(async bodies, process steps, timeouts, resource reservations, clones of a resumed run) goes to
one of `max_workers` worker coroutines. The first failing task cancels the rest.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..decorators import StepOptions
from ..events import Event, TaskFailed, TaskFinished, TaskRetrying, TaskStarted
from ..exceptions import AioflowException, WorkerSetupError
from ..inputs import Frame
from ..store.metadata import TaskRow, task_row
from ..store.serde import pack
from ..store.writer import BatchWriter
from .catching import caught
from .dispatch import Dispatcher
from .executors import CallbackExecutor
from .resume import Origin, OriginTask
from .task import RunEnv, TaskOutcome, TaskSpec


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
        self.graph = env.graph
        self.writer = writer
        self.dispatcher = dispatcher
        self.options = options
        self.origin = origin
        self.max_workers = max(1, max_workers)
        # None when nobody listens: then no event object is even built (it costs microseconds
        # per task, which matter in a run of a hundred thousand tasks).
        self.emit = emit
        self.result = RunResult()
        self._next_task_id = 1
        self._running: dict[int, TaskSpec] = {}
        self._pending = 0  # spawned and not completed
        self._ready: deque[TaskSpec] = deque()  # spawned and not started
        self._in_flight = 0  # started (or handed to a worker coroutine) and not completed
        # Steps whose attempts go straight to their executor with a callback (no coroutine).
        self._direct = (
            {name: dispatcher.direct(opts) for name, opts in options.items()}
            if origin is None
            else {}
        )
        self._crashed: BaseException | None = None
        self._finished = False  # run() returned: results arriving late are dropped
        self._joins: dict[tuple[str, int], list[TaskOutcome | None]] = {}
        self._join_counts: dict[tuple[str, int], int] = {}
        self._send: MemoryObjectSendStream[TaskSpec] | None = None
        self._cancel: Callable[[], None] = lambda: None
        self._packed_for: dict[str, str] | None = None
        self._packed: bytes = b""
        self._parents_for: tuple[int, ...] | None = None
        self._parents_packed: bytes | None = None

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> RunResult:
        """Run the flow from its start step; returns when it ends, fails or is cancelled."""
        send, receive = anyio.create_memory_object_stream[TaskSpec](math.inf)
        self._send = send
        self.writer.running_rows = self._running_rows
        try:
            async with anyio.create_task_group() as tg:
                self._cancel = tg.cancel_scope.cancel
                tg.start_soon(self.writer.run, self._writer_failed)
                async with receive:
                    for _ in range(self.max_workers):
                        tg.start_soon(self._worker, receive.clone())
                self._spawn("start", (), (), self.env.base_manifest)
                self._pump()
        finally:
            self._finished = True
            self.writer.running_rows = None
            self.writer.close()
            send.close()
            self.result.interrupted_tasks = list(self._running.values())
        if self._crashed is not None:
            raise self._crashed
        if self.result.status == "running":
            self.result.status = "succeeded"
        return self.result

    async def _worker(self, receive: MemoryObjectReceiveStream[TaskSpec]) -> None:
        async with receive:
            while self.result.status == "running":
                # receive_nowait first: receive() yields to the loop even when a task is ready,
                # an extra loop iteration per task that a wide foreach feels. (Without that
                # yield, the status check above is what stops a worker once the run failed.)
                try:
                    spec = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        spec = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                outcome = await self._run_task(spec)
                self._completed(outcome)

    async def _run_task(self, spec: TaskSpec) -> TaskOutcome:
        """Run a task's attempts: retry while @retry allows, then let @catch have it."""
        if self.origin is not None:
            cloned = self.origin.take(spec)
            if cloned is not None:
                return await self._clone(spec, cloned)
        options = self.options[spec.step]
        while True:
            self._started(spec)
            judged = self._judge(await self.dispatcher.attempt(spec, options))
            if isinstance(judged, TaskOutcome):
                return judged
            spec = judged

    def _judge(self, outcome: TaskOutcome) -> TaskOutcome | TaskSpec:
        """What follows an attempt: the task's outcome, or the spec of its next attempt."""
        spec = outcome.spec
        if outcome.error is None:
            return outcome
        if isinstance(outcome.error.exception, WorkerSetupError):
            # A worker that could not load the flow fails every attempt the same way: a retry
            # cannot help, and @catch would hide that aioflow never ran the step.
            return outcome
        options = self.options[spec.step]
        if spec.attempt < options.retries and self.result.status == "running":
            self._record_failed_attempt(outcome)
            return replace(spec, attempt=spec.attempt + 1, started_at=0.0, stored=False)
        if options.catch is not None:
            return caught(outcome, options.catch, self.graph[spec.step], self.env.put_large)
        return outcome

    # -- tasks handed straight to the thread lane -------------------------------------------

    def _submit(self, spec: TaskSpec, executor: CallbackExecutor) -> None:
        self._started(spec)
        executor.submit(spec, lambda ok, value: self._attempt_done(spec, executor, ok, value))

    def _attempt_done(
        self, spec: TaskSpec, executor: CallbackExecutor, ok: bool, value: object
    ) -> None:
        """A directly submitted attempt ended (on the loop, called by the thread lane)."""
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
                self._submit(judged, executor)
            else:
                self._completed(judged)
        except BaseException as exc:
            # Nobody awaits this callback: stop the run and let `run()` raise it.
            self._crashed = exc
            self._stop("failed", error=exc)

    async def _clone(self, spec: TaskSpec, task: OriginTask) -> TaskOutcome:
        assert self.origin is not None
        spec.started_at = time.time()
        spec.stored = True  # a clone is stored once, cloned
        self._running[spec.task_id] = spec
        outcome, items_key = self.origin.clone(spec, task)
        if items_key is not None:
            outcome.item_keys = await anyio.to_thread.run_sync(self.origin.store.load, items_key)
        outcome.finished_at = time.time()
        return outcome

    def _record_failed_attempt(self, outcome: TaskOutcome) -> None:
        spec = outcome.spec
        self._store_outcome(outcome)
        err = outcome.error
        assert err is not None
        if self.emit is not None:
            pathspec = self.env.pathspec(spec)
            self.emit(
                TaskFailed(pathspec, spec.step, str(spec.task_id), err.type_name, err.message,
                           err.traceback, outcome.finished_at - spec.started_at, spec.attempt,
                           retrying=True)
            )  # fmt: skip
            self.emit(TaskRetrying(pathspec, spec.step, str(spec.task_id), spec.attempt + 1))

    def _writer_failed(self, exc: BaseException) -> None:
        self._stop("failed", error=exc)

    def _stop(self, status: str, error: BaseException | None = None) -> None:
        if self.result.status == "running":
            self.result.status = status
            self.result.error = error
        if self._send is not None:
            self._send.close()
        self._cancel()

    # -- task lifecycle ---------------------------------------------------------------------

    def _spawn(
        self,
        step: str,
        frames: tuple[Frame, ...],
        parents: tuple[int, ...],
        manifest: dict[str, str],
        inputs: list[TaskOutcome] | None = None,
    ) -> None:
        spec = TaskSpec(self._next_task_id, step, frames, parents, manifest, inputs)
        self._next_task_id += 1
        self._pending += 1
        self._ready.append(spec)

    def _pump(self) -> None:
        """Start ready tasks while slots are free."""
        ready = self._ready
        direct = self._direct
        while ready and self._in_flight < self.max_workers and self.result.status == "running":
            spec = ready.popleft()
            self._in_flight += 1
            executor = direct.get(spec.step)
            if executor is not None:
                self._submit(spec, executor)
            else:
                assert self._send is not None
                self._send.send_nowait(spec)

    def _row(self, spec: TaskSpec, outcome: TaskOutcome | None) -> TaskRow:
        run_id = int(self.env.run_id)
        if spec.packed is None:
            if spec.parents is not self._parents_for:  # a split's children share theirs
                self._parents_for = spec.parents
                self._parents_packed = pack(spec.parents) if spec.parents else None
            spec.packed = (pack(spec.frames) if spec.frames else None, self._parents_packed)
        frames, parents = spec.packed
        if outcome is None:
            return task_row(run_id, spec.task_id, spec.attempt, spec.step, "running",
                            started_at=spec.started_at, frames=frames, parents=parents)  # fmt: skip
        if outcome.manifest is not self._packed_for:
            self._packed_for = outcome.manifest
            self._packed = pack(outcome.manifest)
        error = None if outcome.error is None else pack(outcome.error.to_record())
        status = "caught" if outcome.caught else "succeeded" if outcome.ok else "failed"
        return task_row(
            run_id, spec.task_id, spec.attempt, spec.step, status,
            started_at=spec.started_at, finished_at=outcome.finished_at, frames=frames,
            parents=parents, manifest=self._packed, stdout=outcome.stdout_key,
            stderr=outcome.stderr_key, exception=error, origin=outcome.origin,
            transition=outcome.transition_record,
        )  # fmt: skip

    def _started(self, spec: TaskSpec) -> None:
        spec.started_at = time.time()
        self._running[spec.task_id] = spec
        self.writer.wake()  # its "running" row is stored by the next commit, if still running
        if self.emit is not None:
            self.emit(
                TaskStarted(self.env.pathspec(spec), spec.step, str(spec.task_id), spec.attempt)
            )

    def _running_rows(self) -> list[TaskRow]:
        """Rows of the tasks running now that were not stored yet (the writer asks)."""
        rows = []
        for spec in self._running.values():
            if not spec.stored:
                spec.stored = True
                rows.append(self._row(spec, None))
        return rows

    def _store_outcome(self, outcome: TaskOutcome) -> None:
        for key, data in outcome.small:
            self.writer.put_blob(key, data)
        outcome.small = []
        outcome.spec.stored = True
        self.writer.put_task(self._row(outcome.spec, outcome))

    def _completed(self, outcome: TaskOutcome) -> None:
        spec = outcome.spec
        self._running.pop(spec.task_id, None)
        self._pending -= 1
        self._in_flight -= 1
        self._store_outcome(outcome)
        if self.emit is not None:
            self._emit_end(outcome)
        if outcome.error is not None and not outcome.caught:
            self.result.failure = outcome
            self._stop("failed")
            return
        if self.result.status != "running":
            return
        spec.inputs = None  # a join's inputs are no longer needed
        self._follow(outcome)
        if self._pending == 0 and self.result.status == "running":
            self._stop("failed", error=self._stall_error())
        self._pump()

    def _emit_end(self, outcome: TaskOutcome) -> None:
        assert self.emit is not None
        spec = outcome.spec
        duration = outcome.finished_at - spec.started_at
        pathspec = self.env.pathspec(spec)
        err = outcome.error
        if err is None:
            splits = None if outcome.item_keys is None else len(outcome.item_keys)
            self.emit(
                TaskFinished(pathspec, spec.step, str(spec.task_id), duration, spec.attempt,
                             splits, outcome.origin)
            )  # fmt: skip
            return
        catch = self.options[spec.step].catch
        quiet = outcome.caught and catch is not None and not catch.attributes["print_exception"]
        self.emit(
            TaskFailed(pathspec, spec.step, str(spec.task_id), err.type_name, err.message,
                       "" if quiet else err.traceback, duration, spec.attempt,
                       caught=outcome.caught)
        )  # fmt: skip

    def _follow(self, outcome: TaskOutcome) -> None:
        spec = outcome.spec
        node = self.graph[spec.step]
        transition = outcome.transition
        if node.type == "end" or transition is None:
            self.result.status = "succeeded"
            assert self._send is not None
            self._send.close()
            self.writer.close()
            return
        parents = (spec.task_id,)
        if transition.foreach is not None:
            keys = outcome.item_keys or []
            target = transition.targets[0]
            count = len(keys)
            for i, key in enumerate(keys):
                frame: Frame = (spec.task_id, count, i, spec.step, transition.foreach, key)
                self._spawn(target, (*spec.frames, frame), parents, outcome.manifest)
        elif len(transition.targets) > 1:
            count = len(transition.targets)
            for i, target in enumerate(transition.targets):
                static: Frame = (spec.task_id, count, i, spec.step, None, None)
                self._spawn(target, (*spec.frames, static), parents, outcome.manifest)
        else:
            target = transition.targets[0]
            if self.graph[target].is_join:
                self._arrive(target, outcome)
            else:
                self._spawn(target, spec.frames, parents, outcome.manifest)

    def _arrive(self, join: str, outcome: TaskOutcome) -> None:
        frames = outcome.spec.frames
        if not frames:
            raise AioflowException(
                f"Step *{outcome.spec.step}* leads to join *{join}* outside of any split."
            )
        split_task, count, index = frames[-1][0], frames[-1][1], frames[-1][2]
        key = (join, split_task)
        bucket = self._joins.get(key)
        if bucket is None:
            bucket = self._joins[key] = [None] * count
            self._join_counts[key] = 0
        outcome.shed()
        bucket[index] = outcome
        self._join_counts[key] += 1
        if self._join_counts[key] < count:
            return
        del self._joins[key], self._join_counts[key]
        arrived = [o for o in bucket if o is not None]
        parents = tuple(o.spec.task_id for o in arrived)
        self._spawn(join, frames[:-1], parents, self.env.base_manifest, arrived)

    def _stall_error(self) -> AioflowException:
        waiting = ", ".join(
            f"*{join}* ({self._join_counts[(join, split)]} of {len(bucket)} inputs)"
            for (join, split), bucket in self._joins.items()
        )
        return AioflowException(
            f"The run stopped making progress before reaching *end*: joins still waiting: "
            f"{waiting or 'none'}. This is a bug in aioflow; please report it with the flow."
        )
