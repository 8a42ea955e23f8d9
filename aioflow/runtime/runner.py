"""A whole run: check the flow, store the run, schedule its tasks, record how it ended.

This is the one runtime behind the CLI, `run_flow` and the tests. It knows nothing of terminals:
what happens is published as events to the listeners the caller passes in.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from .. import __version__
from ..artifacts import encode_artifact, store_encoded
from ..decorators import EXECUTORS, StepDecorator, StepOptions, parse_with, step_options
from ..events import Event, Listener, LogLine, RunFinished, RunStarted
from ..exceptions import FlowDefinitionError, ParameterError
from ..flowspec import FlowSpec
from ..graph import FlowGraph, StepNode
from ..parameters import flow_constants, flow_parameters, resolve_parameters
from ..store import Store
from ..store.metadata import task_row
from ..store.serde import Encoded, pack, unpack
from ..store.writer import BatchWriter
from .bridge import LoopInbox
from .dispatch import Dispatcher
from .executors import ThreadLane
from .logs import install as install_log_capture
from .logs import uninstall as uninstall_log_capture
from .resume import Origin, find_origin_run
from .scheduler import RunResult, Scheduler
from .task import RunEnv, TaskOutcome, TaskSpec

MAX_TAG_LENGTH = 500


@dataclass
class RunOptions:
    """How to run: where to store, how wide, with which tags, who listens."""

    root: str | os.PathLike[str] | None = None
    max_workers: int = 16
    max_num_splits: int = 100
    tags: Sequence[str] = ()
    listeners: Sequence[Listener] = ()
    origin_run_id: str | None = None
    resume_step: str | None = None


@dataclass
class PreparedRun:
    """A flow that passed lint, with its parameters resolved; nothing stored yet."""

    flow_cls: type[FlowSpec]
    graph: FlowGraph
    values: dict[str, Any]
    constants: dict[str, Any]
    username: str
    options: dict[str, StepOptions] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """What `execute` reports: the run's id and status, and the failed task if any."""

    flow_name: str
    run_id: str
    status: str
    root: str
    failure: TaskOutcome | None = None
    error: BaseException | None = None
    interrupted: list[str] = field(default_factory=list)

    @property
    def successful(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"


def current_username() -> str:
    """The user runs are attributed to: $AIOFLOW_USER, $USER, $USERNAME, or the login name."""
    for var in ("AIOFLOW_USER", "METAFLOW_USER", "USER", "USERNAME"):
        value = os.environ.get(var)
        if value:
            return value
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def system_tags(username: str) -> list[str]:
    """Tags every run carries and no one can remove."""
    return [
        f"user:{username}",
        "runtime:dev",
        f"python_version:{platform.python_version()}",
        f"aioflow_version:{__version__}",
    ]


def validate_tags(tags: Sequence[str]) -> list[str]:
    """User tags as given, checked: non-empty strings of at most 500 characters."""
    checked = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ParameterError(f"Invalid tag {tag!r}: a tag must be a non-empty string.")
        if len(tag) > MAX_TAG_LENGTH:
            raise ParameterError(
                f"Invalid tag {tag[:40]!r}...: tags are at most {MAX_TAG_LENGTH} characters."
            )
        checked.append(tag)
    return checked


def prepare(
    flow_cls: type[FlowSpec],
    given: Mapping[str, Any],
    *,
    from_cli: bool = False,
    with_decorators: Sequence[str] = (),
    executor: str = "thread",
) -> PreparedRun:
    """Lint the graph, resolve parameters and step options; nothing is stored.

    Raises LintError or FlowDefinitionError for the flow, ParameterError for what was given
    (parameters, `--with` specs, the executor).
    """
    graph = FlowGraph(flow_cls)
    graph.lint()
    if executor not in EXECUTORS:
        raise ParameterError(
            f"Invalid value for '--executor': {executor!r} is not one of {', '.join(EXECUTORS)}."
        )
    extra = parse_with(with_decorators)
    options = {node.name: _step_options(node, executor, extra) for node in graph}
    username = current_username()
    flow_parameters(flow_cls)
    values = resolve_parameters(
        flow_cls, given, flow_name=flow_cls.__name__, user_name=username, from_cli=from_cli
    )
    constants = flow_constants(flow_cls, FlowSpec)
    return PreparedRun(flow_cls, graph, values, constants, username, options)


def prepare_resume(
    flow_cls: type[FlowSpec],
    *,
    root: str | os.PathLike[str] | None,
    origin_run_id: str | None,
    step: str | None,
    with_decorators: Sequence[str] = (),
    executor: str = "thread",
) -> tuple[PreparedRun, str]:
    """Prepare a resume of `flow_cls`: the origin run's id, and its parameters as the run's.

    Raises ParameterError when there is no such run or no such step.
    """
    store = Store(root, create=False)
    try:
        origin_id, row = find_origin_run(store, flow_cls.__name__, origin_run_id)
        params = unpack(row["params"]) if row["params"] else {}
        given = {
            parameter.name: store.load(params[attr])
            for attr, parameter in flow_parameters(flow_cls)
            if attr in params
        }
    finally:
        store.close()
    prepared = prepare(flow_cls, given, with_decorators=with_decorators, executor=executor)
    if step is not None and step not in prepared.graph:
        steps = ", ".join(node.name for node in prepared.graph)
        raise ParameterError(
            f"Cannot resume from step {step!r}: {flow_cls.__name__} has no such step. "
            f"Its steps are: {steps}."
        )
    return prepared, origin_id


def _step_options(node: StepNode, executor: str, extra: list[StepDecorator]) -> StepOptions:
    options = step_options(
        node.func, is_async=node.is_async, default_executor=executor, extra=extra
    )
    if options.catch is not None and node.type in ("foreach", "split-switch"):
        kind = "foreach split" if node.type == "foreach" else "conditional switch"
        raise FlowDefinitionError(
            f"@catch is defined for the step *{node.name}* but @catch is not supported in "
            f"{kind} steps."
        )
    return options


def _base_manifest(
    prepared: PreparedRun, small: list[tuple[str, bytes]], large: list[Encoded]
) -> dict[str, str]:
    manifest: dict[str, str] = {}
    artifacts = {"name": prepared.flow_cls.__name__, **prepared.constants, **prepared.values}
    for name, value in artifacts.items():
        encoded = encode_artifact(name, value, "start")
        store_encoded(encoded, small, large.append)
        manifest[name] = encoded.key
    return manifest


async def execute(prepared: PreparedRun, options: RunOptions) -> RunOutcome:
    """Store a new run of a prepared flow and run it to the end (or failure/cancellation)."""
    flow_name = prepared.flow_cls.__name__
    user_tags = validate_tags(options.tags)
    store, run_id, base, small = await anyio.to_thread.run_sync(
        _open_run, prepared, options, user_tags
    )
    origin = None
    if options.origin_run_id is not None:
        origin = await anyio.to_thread.run_sync(
            Origin, store, flow_name, options.origin_run_id, prepared.graph, options.resume_step
        )
    listeners = list(options.listeners)

    def emit(event: Event) -> None:
        for listener in listeners:
            listener(event)

    writer = BatchWriter(store)
    for key, data in small:
        writer.put_blob(key, data)
    inbox: LoopInbox[Event] | None = None
    if listeners and _on_asyncio():
        inbox = LoopInbox(asyncio.get_running_loop(), emit)

    def line_sink(pathspec: str, stream: str, line: str) -> None:
        if inbox is not None:
            inbox.put(LogLine(pathspec, stream, line))

    env = RunEnv(
        flow_cls=prepared.flow_cls,
        graph=prepared.graph,
        flow_name=flow_name,
        run_id=str(run_id),
        username=prepared.username,
        namespace=f"user:{prepared.username}",
        tags=frozenset(user_tags),  # Metaflow's current.tags: the user tags only
        parameter_names=tuple(prepared.values),
        readonly=frozenset([*prepared.values, *prepared.constants]),
        base_manifest=base,
        reader=writer,
        blobs=store.blobs,
        line_sink=line_sink,
        origin_run_id=options.origin_run_id,
        max_num_splits=options.max_num_splits,
        catch_vars={
            step: opts.catch.attributes["var"]
            for step, opts in prepared.options.items()
            if opts.catch is not None and opts.catch.attributes["var"]
        },
    )
    lane = ThreadLane(options.max_workers, name=f"aioflow-{flow_name}-{run_id}")
    process_slots = min(options.max_workers, os.cpu_count() or 1)
    dispatcher = Dispatcher(env, writer, lane, str(store.root), process_slots, emit)
    scheduler = Scheduler(
        env,
        writer,
        dispatcher,
        prepared.options,
        max_workers=options.max_workers,
        emit=emit,
        origin=origin,
    )
    started = time.time()
    emit(RunStarted(flow_name, str(run_id), prepared.username, options.origin_run_id))
    install_log_capture()
    result = RunResult(status="cancelled")
    try:
        result = await scheduler.run()
    finally:
        if result.status == "cancelled":
            result.interrupted_tasks = scheduler.result.interrupted_tasks
        uninstall_log_capture()
        lane.close()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(dispatcher.close)
            outcome = await _record_end(writer, env, result)
        if inbox is not None:
            inbox.close()
        failed = outcome.failure
        emit(
            RunFinished(
                flow_name,
                str(run_id),
                outcome.status,
                time.time() - started,
                None if failed is None else _task_pathspec(env, failed.spec),
                tuple(outcome.interrupted),
            )
        )
        store.close()
    return outcome


def _open_run(
    prepared: PreparedRun, options: RunOptions, user_tags: list[str]
) -> tuple[Store, int, dict[str, str], list[tuple[str, bytes]]]:
    store = Store(options.root)
    small: list[tuple[str, bytes]] = []
    large: list[Encoded] = []
    base = _base_manifest(prepared, small, large)
    for encoded in large:
        store.blobs.put(encoded.key, encoded.chunks)
    run_id = store.db.create_run(
        prepared.flow_cls.__name__,
        user=prepared.username,
        tags=pack(user_tags),
        system_tags=pack(system_tags(prepared.username)),
        graph=pack(prepared.graph.to_dict()),
        origin_run_id=options.origin_run_id,
        params=pack(base),
    )
    return store, run_id, base, small


async def _record_end(writer: BatchWriter, env: RunEnv, result: RunResult) -> RunOutcome:
    now = time.time()
    interrupted = []
    for spec in result.interrupted_tasks:
        record = {
            "type": "Interrupted",
            "message": f"The run {result.status} before this task finished.",
            "traceback": "",
        }
        writer.put_task(
            task_row(
                int(env.run_id),
                spec.task_id,
                spec.attempt,
                spec.step,
                "failed",
                started_at=spec.started_at,
                finished_at=now,
                frames=pack(spec.frames) if spec.frames else None,
                parents=pack(spec.parents) if spec.parents else None,
                exception=pack(record),
            )
        )
        interrupted.append(_task_pathspec(env, spec))
    error: dict[str, str | None] | None = None
    if result.failure is not None and result.failure.error is not None:
        error = {"pathspec": _task_pathspec(env, result.failure.spec),
                 **result.failure.error.to_record()}  # fmt: skip
    elif result.error is not None:
        error = {"pathspec": None, "type": type(result.error).__name__,
                 "message": str(result.error), "traceback": ""}  # fmt: skip
    writer.update_run(
        int(env.run_id),
        status=result.status,
        finished_at=now,
        error=None if error is None else pack(error),
    )
    await writer.flush()
    return RunOutcome(
        env.flow_name,
        env.run_id,
        result.status,
        str(writer.store.root),
        result.failure,
        result.error,
        interrupted,
    )


def _task_pathspec(env: RunEnv, spec: TaskSpec) -> str:
    return f"{env.flow_name}/{env.run_id}/{spec.step}/{spec.task_id}"


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
