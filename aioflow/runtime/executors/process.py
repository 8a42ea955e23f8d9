"""The process executor: a task attempt sent to one of the run's worker processes.

The pool itself (starting, reusing and killing workers) is `ProcessLane`; this module turns a
task into the request a worker understands, and its reply (or its death) back into an outcome.
"""

from __future__ import annotations

import pickle

from ...decorators import StepOptions
from ...events import LogLine
from ...exceptions import RemoteTaskError, WorkerDied, WorkerSetupError
from .. import worker_logging
from ..logs import TaskLog
from ..process_worker import TaskReply, TaskRequest, WorkerSetup
from ..processes import ProcessLane, pickle_flow, unsaved_sources
from ..task import ErrorInfo, TaskOutcome, TaskSpec, timeout_error
from .protocol import ExecutorContext, failed_outcome

#: RunEnv fields a worker process needs (the rest it rebuilds itself).
ENV_FIELDS = (
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
    "max_num_splits_name",
    "catch_vars",
    "project",
    "cards",
)


class ProcessExecutor:
    """Sync step bodies in the run's worker processes, started on first use."""

    def __init__(self, context: ExecutorContext) -> None:
        self.context = context
        self.env = context.env
        self._lane: ProcessLane | None = None

    def lane(self) -> ProcessLane:
        """The run's process lane, started on first use."""
        if self._lane is None:
            env = self.env
            setup = WorkerSetup(
                flow_pickle=pickle_flow(env.flow_cls, env.graph),
                root=self.context.store_root,
                settings=self.context.store_settings,
                env_fields={name: getattr(env, name) for name in ENV_FIELDS},
                sources=unsaved_sources(node.file for node in env.graph),
                logging=worker_logging.snapshot(),
            )
            self._lane = ProcessLane(setup, self.context.process_slots)
        return self._lane

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        """Run the body in a worker; past its @timeout, or when cancelled, the worker is
        killed. A worker that dies or cannot load the flow fails the attempt."""
        request = task_request(self.context, spec, options)
        try:
            reply = await self.lane().run(request, options.timeout)
        except TimeoutError:
            assert options.timeout is not None
            return failed_outcome(self.env, spec, timeout_error(spec, options.timeout))
        except (WorkerDied, WorkerSetupError) as exc:
            return failed_outcome(self.env, spec, exc)
        return outcome_from_reply(self.context, spec, reply)

    async def warm_up(self) -> None:
        """Start a worker now (benchmarks use this to measure warm round trips)."""
        await self.lane().ping()

    async def aclose(self) -> None:
        """Stop the workers, if any were started (in a thread: it may take seconds)."""
        if self._lane is not None:
            await self._lane.aclose()


def task_request(context: ExecutorContext, spec: TaskSpec, options: StepOptions) -> TaskRequest:
    """What a worker (a process, a Dask worker) needs to run an attempt: blob keys, plus inline
    the few blobs of the run not committed to the store yet."""
    keys = set(spec.manifest.values())
    keys.update(frame[5] for frame in spec.frames if frame[5])
    inputs = None
    if spec.inputs is not None:
        inputs = []
        for parent in spec.inputs:
            keys.update(parent.keys)
            inputs.append((parent.step, parent.task_id, parent.manifest, parent.frames))
    keys.update(context.env.base_manifest.values())
    inline = {}
    for key in keys:
        data = context.unflushed.unflushed_blob(key)
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


def outcome_from_reply(
    context: ExecutorContext, spec: TaskSpec, reply: TaskReply, emitted: tuple[int, int] = (0, 0)
) -> TaskOutcome:
    """The outcome a worker's reply describes. Its printed lines are emitted first, but for the
    first `emitted` (stdout, stderr) lines, which reached listeners while the task ran."""
    pathspec = context.env.pathspec(spec)
    # A worker's lines arrive with its reply; emitted now, in order, before the task's end.
    # The stored stderr of a failed task ends with its traceback (task.py adds it there,
    # not as printed lines): TaskFailed carries it to listeners, so it is not emitted twice.
    printed_stderr = reply.stderr
    if reply.error is not None:
        added = reply.error["traceback"].rstrip("\n").count("\n") + 1
        printed_stderr = reply.stderr[: max(len(reply.stderr) - added, 0)]
    emit = context.emit
    # Both streams in the order they were printed (a stable sort keeps a stream's own).
    lines = [(ts, "stdout", line) for ts, line in reply.stdout[emitted[0] :]]
    lines += [(ts, "stderr", line) for ts, line in printed_stderr[emitted[1] :]]
    lines.sort(key=lambda printed: printed[0])
    for ts, stream, line in lines:
        emit(LogLine(pathspec, stream, line, timestamp=ts))
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
