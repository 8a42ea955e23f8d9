"""Running one task attempt where its step says: the loop, a thread, or a worker process.

`Dispatcher.attempt` applies the step's `@resources` reservation and `@timeout`, and always
returns a `TaskOutcome`: a timeout, a dead worker or an abandoned thread become the attempt's
error, so retries and `@catch` treat them like any exception the step raised.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable

import anyio

from ..decorators import StepOptions
from ..events import Event, LogLine
from ..exceptions import RemoteTaskError, WorkerDied, WorkerSetupError
from ..store.writer import BatchWriter
from .executors import Done, ThreadLane
from .logs import TaskLog
from .process_worker import TaskReply, TaskRequest, WorkerSetup
from .processes import ProcessLane, pickle_flow, unsaved_sources
from .resources import ResourcePool
from .task import (
    ErrorInfo,
    RunEnv,
    TaskOutcome,
    TaskSpec,
    run_async_task,
    run_sync_task,
    timeout_error,
)

#: RunEnv fields a worker process needs (the rest it rebuilds itself).
_ENV_FIELDS = (
    "flow_name",
    "run_id",
    "username",
    "namespace",
    "tags",
    "parameter_names",
    "readonly",
    "base_manifest",
    "origin_run_id",
    "max_num_splits",
    "catch_vars",
)


def _reserves(options: StepOptions) -> bool:
    """True when the step's @resources ask for a reservation."""
    return bool(options.cpu or options.memory or options.gpu)


def failed_outcome(env: RunEnv, spec: TaskSpec, exc: BaseException) -> TaskOutcome:
    """An outcome for an attempt whose body could not report back (no new artifacts)."""
    manifest = env.starting_manifest(spec)
    text = "".join(traceback.format_exception_only(type(exc), exc))
    info = ErrorInfo(exc, type(exc).__name__, str(exc), text)
    return TaskOutcome(spec, manifest, [], TaskLog(), error=info)


class Dispatcher:
    """Where a run's task bodies execute."""

    def __init__(
        self,
        env: RunEnv,
        writer: BatchWriter,
        lane: ThreadLane,
        root: str,
        process_slots: int,
        emit: Callable[[Event], None],
    ) -> None:
        self.env = env
        self.emit = emit
        self.writer = writer
        self.lane = lane
        self.resources = ResourcePool()
        self._root = root
        self._process_slots = process_slots
        self._processes: ProcessLane | None = None

    def processes(self) -> ProcessLane:
        """The run's process lane, started on first use."""
        if self._processes is None:
            env = self.env
            setup = WorkerSetup(
                flow_pickle=pickle_flow(env.flow_cls, env.graph),
                root=self._root,
                env_fields={name: getattr(env, name) for name in _ENV_FIELDS},
                sources=unsaved_sources(node.file for node in env.graph),
            )
            self._processes = ProcessLane(setup, self._process_slots)
        return self._processes

    def can_submit(self, options: StepOptions) -> bool:
        """True when attempts of a step with these options can go through `submit`: a sync
        body on a thread, with no @timeout to enforce and no @resources to reserve."""
        return (
            options.executor == "thread"
            and options.timeout is None
            and not _reserves(options)
            and self.lane.accepts_callbacks()
        )

    def submit(self, spec: TaskSpec, done: Done) -> None:
        """Start one attempt in the thread lane; `done(ok, outcome)` is called on the loop.

        Only for steps `can_submit` accepts; `ok` is False only when aioflow itself failed
        around the step (a step's own failure is an outcome, as with `attempt`).
        """
        self.lane.submit(run_sync_task, (self.env, spec), done)

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        """Run one attempt of a task and return its outcome (never raises for the step)."""
        if _reserves(options):
            async with self.resources.reserve(options.cpu, options.memory, options.gpu):
                return await self._run(spec, options)
        return await self._run(spec, options)

    async def _run(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        if options.executor == "loop":
            return await run_async_task(self.env, spec, self.lane.run, options.timeout)
        if options.executor == "process":
            return await self._in_process(spec, options)
        return await self._in_thread(spec, options)

    async def _in_thread(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        if options.timeout is None:
            return await self.lane.run(run_sync_task, self.env, spec)
        with anyio.move_on_after(options.timeout) as scope:
            return await self.lane.run(run_sync_task, self.env, spec)
        if scope.cancelled_caught:
            # A thread cannot be stopped: it is left to finish on its own, its result unused.
            self.lane.abandon_one()
            note = (
                " Its thread cannot be stopped, so it was abandoned and may still be running; "
                'use @step(executor="process") for a step that must be stopped on timeout.'
            )
            return failed_outcome(self.env, spec, timeout_error(spec, options.timeout, note))
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(self, spec: TaskSpec, options: StepOptions) -> TaskRequest:
        keys = set(spec.manifest.values())
        keys.update(frame[5] for frame in spec.frames if frame[5])
        inputs = None
        if spec.inputs is not None:
            inputs = []
            for parent in spec.inputs:
                keys.update(parent.manifest.values())
                inputs.append(
                    (parent.spec.step, parent.spec.task_id, parent.manifest, parent.spec.frames)
                )
        keys.update(self.env.base_manifest.values())
        inline = {}
        for key in keys:
            data = self.writer.unflushed_blob(key)
            if data is not None:
                inline[key] = data
        return TaskRequest(
            task_id=spec.task_id,
            step=spec.step,
            attempt=spec.attempt,
            frames=spec.frames,
            parents=spec.parents,
            manifest=spec.manifest,
            inputs=inputs,
            inline=inline,
            env_vars=options.env,
        )

    async def _in_process(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        request = self._request(spec, options)
        try:
            reply = await self.processes().run(request, options.timeout)
        except TimeoutError:
            assert options.timeout is not None
            return failed_outcome(self.env, spec, timeout_error(spec, options.timeout))
        except (WorkerDied, WorkerSetupError) as exc:
            return failed_outcome(self.env, spec, exc)
        return self._from_reply(spec, reply)

    def _from_reply(self, spec: TaskSpec, reply: TaskReply) -> TaskOutcome:
        pathspec = self.env.pathspec(spec)
        # A worker's lines arrive with its reply; emitted now, in order, before the task's end.
        for stream, lines in (("stdout", reply.stdout), ("stderr", reply.stderr)):
            for ts, line in lines:
                self.emit(LogLine(pathspec, stream, line, timestamp=ts))
        log = TaskLog()
        log.stdout, log.stderr = reply.stdout, reply.stderr
        error = None
        if reply.error is not None:
            exc: BaseException
            if reply.exception is not None:
                exc = pickle.loads(reply.exception)
            else:
                exc = RemoteTaskError(f"{reply.error['type']}: {reply.error['message']}")
            error = ErrorInfo(
                exc,
                reply.error["type"].rsplit(".", 1)[-1],
                reply.error["message"],
                reply.error["traceback"],
                reply.error["type"],
            )
        return TaskOutcome(
            spec,
            reply.manifest,
            reply.small,
            log,
            transition=reply.transition,
            item_keys=reply.item_keys,
            transition_record=reply.transition_record,
            error=error,
            stdout_key=reply.stdout_key,
            stderr_key=reply.stderr_key,
            finished_at=reply.finished_at,
        )

    async def warm_up(self) -> None:
        """Start a process worker now (benchmarks use this to measure warm round trips)."""
        await self.processes().ping()

    def close(self) -> None:
        """Stop the process workers, if any were started."""
        if self._processes is not None:
            self._processes.close()
