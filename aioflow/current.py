"""`current`: what the running task is, read from a context variable.

Each task sets the variable in its own context (its worker coroutine or worker thread), so
concurrent tasks of one run, and concurrent runs in one process, each see their own values.
Outside a task every attribute is None and `is_running_flow` is False.

`current_username()` names the user a run started now is attributed to (and whose namespace
the client reads by default).
"""

from __future__ import annotations

import functools
import os
from contextvars import ContextVar
from typing import Any, NamedTuple


class RunContext(NamedTuple):
    """What every task of one run shares in `current` (one per run)."""

    flow_name: str
    run_id: str
    origin_run_id: str | None
    username: str
    namespace: str
    tags: frozenset[str]
    parameter_names: tuple[str, ...]
    graph: Any = None
    #: The run's `ProjectInfo` (aioflow.project) when the flow has @project, else None.
    project: Any = None
    #: The run's store (an `aioflow.store.Store`), where `current.run` / `current.task` read;
    #: None where the task has none (`aioflow.testing.run_step`).
    store: Any = None


class Parallel(NamedTuple):
    """`current.parallel`: where a task of a `@parallel` step sits among its step's N tasks.

    Outside a @parallel step, a task reads Metaflow's defaults: one node, index 0, on this
    machine, with no control task.
    """

    main_ip: str
    num_nodes: int
    node_index: int
    control_task_id: str | None


#: What `current.parallel` reads in a task outside a @parallel step.
NOT_PARALLEL = Parallel("127.0.0.1", 1, 0, None)


class TaskContext:
    """The identity of one running task attempt (treat as read-only): its run's shared
    `RunContext` plus what is the task's own. One is built per task, so it holds a few fields,
    not a copy of the run's. The runtime's task attempt is one (a subclass), so that making a
    task current costs one context variable and no object of its own."""

    __slots__ = ("cards", "log", "parallel", "retry_count", "run", "step_name", "task_id")

    def __init__(
        self,
        run: RunContext,
        step_name: str,
        task_id: str,
        retry_count: int,
        parallel: Parallel | None = None,
        cards: Any = None,
        log: Any = None,
    ) -> None:
        self.run = run
        self.step_name = step_name
        self.task_id = task_id
        self.retry_count = retry_count
        #: the task's place in a @parallel step, None elsewhere
        self.parallel = parallel
        #: `current.card`: the task's CardCollector (aioflow.card_decorator), None without one
        self.cards = cards
        #: where what the task prints goes (the runtime's TaskLog), None when not captured
        self.log = log

    def open_log(self) -> Any:
        """`log`, for a line the task prints; None when its output is not captured. (The
        runtime's task attempt makes its log here, on the first line: most tasks print none.)"""
        return self.log

    flow_name = property(lambda self: self.run.flow_name, doc="The flow's name.")
    run_id = property(lambda self: self.run.run_id, doc="The run's id.")
    origin_run_id = property(
        lambda self: self.run.origin_run_id, doc="The run a resumed run resumes, or None."
    )
    username = property(lambda self: self.run.username, doc="Who started the run.")
    namespace = property(lambda self: self.run.namespace, doc="The run's namespace.")
    tags = property(lambda self: self.run.tags, doc="The run's user tags.")
    parameter_names = property(
        lambda self: self.run.parameter_names, doc="Names of the flow's parameters."
    )
    graph = property(lambda self: self.run.graph, doc="The flow's graph.")
    project = property(lambda self: self.run.project, doc="The run's project, or None.")

    @property
    def pathspec(self) -> str:
        """`Flow/run_id/step/task_id`."""
        return f"{self.run.flow_name}/{self.run.run_id}/{self.step_name}/{self.task_id}"


_task_context: ContextVar[TaskContext | None] = ContextVar("aioflow_task_context", default=None)


def set_task_context(ctx: TaskContext | None) -> Any:
    """Make `ctx` current in this context; returns a token for `reset_task_context`."""
    return _task_context.set(ctx)


def reset_task_context(token: Any) -> None:
    """Undo a `set_task_context`."""
    _task_context.reset(token)


def task_context() -> TaskContext | None:
    """The task current in this context, None outside a task."""
    return _task_context.get()


def _field(name: str) -> property:
    def get(self: Current) -> Any:
        ctx = _task_context.get()
        return None if ctx is None else getattr(ctx, name)

    get.__doc__ = f"The running task's {name.replace('_', ' ')} (None outside a task)."
    return property(get)


def _project_field(name: str) -> property:
    def get(self: Current) -> Any:
        ctx = _task_context.get()
        project = None if ctx is None else ctx.run.project
        return None if project is None else getattr(project, name)

    get.__doc__ = f"The running flow's @project {name.replace('_', ' ')} (None without one)."
    return property(get)


class Current:
    """The running task's identity: `from aioflow import current; current.run_id`."""

    __slots__ = ()

    flow_name = _field("flow_name")
    run_id = _field("run_id")
    step_name = _field("step_name")
    task_id = _field("task_id")
    retry_count = _field("retry_count")
    origin_run_id = _field("origin_run_id")
    username = _field("username")
    namespace = _field("namespace")
    pathspec = _field("pathspec")
    graph = _field("graph")

    project_name = _project_field("project_name")
    branch_name = _project_field("branch_name")
    is_user_branch = _project_field("is_user_branch")
    is_production = _project_field("is_production")
    project_flow_name = _project_field("project_flow_name")

    @property
    def tags(self) -> frozenset[str] | None:
        """The running run's user tags (`--tag`), as Metaflow's; system tags are not included."""
        ctx = _task_context.get()
        return None if ctx is None else ctx.tags

    @property
    def parameter_names(self) -> list[str] | None:
        """Names of the flow's parameters (as attributes)."""
        ctx = _task_context.get()
        return None if ctx is None else list(ctx.parameter_names)

    @property
    def run(self) -> Any:
        """The running run as a client `Run` (None outside a task), as Metaflow's.

        Read from the run's store whatever the current namespace; it pickles, so it can be kept
        as an artifact and read back.
        """
        ctx = _task_context.get()
        return None if ctx is None else _client_object("Run", ctx, ctx.run.flow_name, ctx.run_id)

    @property
    def task(self) -> Any:
        """The running task as a client `Task` (None outside a task), as Metaflow's.

        Its pathspec and id are there at once; what it reads from the store (status, data)
        only once the task is stored, so read those from a later step. It pickles.
        """
        ctx = _task_context.get()
        return None if ctx is None else _client_object("Task", ctx, ctx.pathspec)

    @property
    def card(self) -> Any:
        """The running task's cards (`current.card.append(...)`, `current.card["id"]`); in a
        step without @card, appends warn and go nowhere. None outside a task."""
        ctx = _task_context.get()
        if ctx is None:
            return None
        if ctx.cards is None:
            from .card_decorator import CardCollector  # a sibling in the core

            ctx.cards = CardCollector()
        return ctx.cards

    @property
    def parallel(self) -> Parallel | None:
        """`main_ip`, `num_nodes`, `node_index` and `control_task_id` of a task of a
        `@parallel` step (node 0 is the control task); one node elsewhere; None outside a
        task."""
        ctx = _task_context.get()
        if ctx is None:
            return None
        return NOT_PARALLEL if ctx.parallel is None else ctx.parallel

    @property
    def is_parallel(self) -> bool:
        """True inside a task of a `@parallel` step."""
        ctx = _task_context.get()
        return ctx is not None and ctx.parallel is not None

    @property
    def is_running_flow(self) -> bool:
        """True inside a task of a running flow."""
        return _task_context.get() is not None

    def get(self, name: str, default: Any = None) -> Any:
        """`getattr(current, name, default)`, as Metaflow offers."""
        value = getattr(self, name, None)
        return default if value is None else value

    def __repr__(self) -> str:
        ctx = _task_context.get()
        return "<current: not in a running flow>" if ctx is None else f"<current {ctx.pathspec}>"


current = Current()


def _client_object(kind: str, ctx: TaskContext, *parts: str) -> Any:
    """The client object of the running run or task, from the run's own store.

    The core's second upward edge (see docs/architecture.md): the client is imported here,
    when a step asks, so defining a flow still needs no client.
    """
    from . import client

    store = ctx.run.store
    if store is None:
        raise RuntimeError(
            f"current.{kind.lower()} reads the run's store, and this task runs without one."
        )
    pathspec = "/".join(parts)
    if kind == "Task":  # its row may not be stored yet: read it when first needed
        return client.Task(pathspec, _store=store, _namespace_check=False, _deferred=True)
    return client.Run(pathspec, _store=store, _namespace_check=False)


def current_username() -> str:
    """The user runs are attributed to: $AIOFLOW_USER, $USER, $USERNAME, or the login name."""
    for var in ("AIOFLOW_USER", "METAFLOW_USER", "USER", "USERNAME"):
        value = os.environ.get(var)
        if value:
            return value
    # Then what `getpass.getuser()` reads, without importing getpass (and termios with it):
    # $LOGNAME or $LNAME, else the password database; "unknown" where there is none (Windows).
    for var in ("LOGNAME", "LNAME"):
        value = os.environ.get(var)
        if value:
            return value
    try:
        return _login_name(os.getuid())
    except Exception:
        return "unknown"


@functools.lru_cache(maxsize=4)
def _login_name(uid: int) -> str:
    """The password database's name for `uid` (looked up once per process: a lookup reads
    files and asks nscd, and a run asks twice)."""
    import pwd

    return pwd.getpwuid(uid).pw_name
