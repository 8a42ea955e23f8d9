"""One task attempt: build the flow instance, run the step body, capture logs, snapshot artifacts.

A `TaskRun` is created by the scheduler and driven either entirely in a worker thread
(`run_sync_task`) or with its body awaited on the event loop (`run_async_task`). Either way it
returns a `TaskOutcome`; it never raises for a failing step: the failure is data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import anyio

from .. import tracebacks
from ..current import Parallel, RunContext, TaskContext
from ..exceptions import ArtifactEncodingError, StoreFull, TimeoutException, TransitionError
from ..flowspec import FlowSpec, TaskState
from ..inputs import Frame, Inputs, JoinInput
from ..store.blobs import put_encoded
from ..store.keys import identity_blob
from ..store.serde import Encoded, decode, encode, pack
from ..store.writer import is_full
from ..transitions import PARALLEL_FOREACH, Transition, check_against_graph
from .artifacts import encode_values, snapshot, store_encoded
from .logs import TaskLog, enter_task, exit_task
from .task_class import task_class

if TYPE_CHECKING:
    from ..graph import FlowGraph, StepNode
    from ..store import Store
    from ..store.blobs import BlobStore
    from ..store.serde import Buffer
    from .cards import TaskCards


@dataclass(slots=True)
class TaskSpec:
    """A task to run: its identity, where it sits in the graph, and what it inherits."""

    task_id: int
    step: str
    frames: tuple[Frame, ...]
    parents: tuple[int, ...]
    manifest: dict[str, str]
    inputs: Sequence[JoinInput] | None = None
    attempt: int = 0
    started_at: float = 0.0
    #: frames and parents as stored (msgpack), packed once for all of the task's rows
    packed: tuple[bytes | None, bytes | None] | None = None
    #: True once a row of this attempt was handed to the writer
    stored: bool = False


class ErrorInfo(NamedTuple):
    """Why a task failed: the exception itself (in-process) and its printable parts."""

    exception: BaseException
    type_name: str
    message: str
    traceback: str
    qualified_type: str | None = None
    #: The full chain, kept in the task's stderr log when `traceback` is a short message.
    detail: str | None = None

    def to_record(self) -> dict[str, str]:
        """What the store keeps of the failure (the type as `module.Class`, like Metaflow)."""
        qualified = self.qualified_type
        if qualified is None:
            cls = type(self.exception)
            qualified = f"{cls.__module__}.{cls.__qualname__}"  # e.g. builtins.ValueError
        return {"type": qualified, "message": self.message, "traceback": self.traceback}


@dataclass(slots=True)
class TaskOutcome:
    """What a task attempt produced."""

    spec: TaskSpec
    manifest: dict[str, str]
    small: list[tuple[str, bytes]]
    log: TaskLog | None
    transition: Transition | None = None
    item_keys: list[str] | None = None
    error: ErrorInfo | None = None
    stdout_key: str | None = None
    stderr_key: str | None = None
    #: what the store keeps of `transition` (`transition_record()`); before the fields a
    #: finished attempt leaves as they are, so that it is passed by position (every task is)
    transition_record: bytes | None = None
    caught: bool = False
    origin: str | None = None
    finished_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        """True when the step succeeded."""
        return self.error is None


def task_pathspec(flow_name: str, run_id: str, spec: TaskSpec) -> str:
    """`Flow/run_id/step/task_id`."""
    return f"{flow_name}/{run_id}/{spec.step}/{spec.task_id}"


class BlobReader(Protocol):
    """Where tasks read blobs from: the run's writer (with its cache), or a worker's reader."""

    def read_blob(self, key: str) -> tuple[int, Buffer]:
        """(tag, payload) of the blob stored under `key`."""
        ...


@dataclass(slots=True)
class RunEnv:
    """What every task of one run shares (read-only while tasks run)."""

    flow_cls: type[FlowSpec]
    graph: FlowGraph
    flow_name: str
    run_id: str
    username: str
    namespace: str
    tags: frozenset[str]
    parameter_names: tuple[str, ...]
    readonly: frozenset[str]
    base_manifest: dict[str, str]
    reader: BlobReader
    blobs: BlobStore
    line_sink: Callable[[str, str, str], None]
    origin_run_id: str | None = None
    max_num_splits: int = 100
    max_num_splits_name: str = "the keyword argument max_num_splits="
    catch_vars: dict[str, str] = field(default_factory=dict)
    task_cls: type[FlowSpec] | None = None
    #: The run's @project (`current.project_name`, ...), or None.
    project: Any = None
    #: Each step's @card decorators (steps without cards are not listed).
    cards: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: Where cards' records go (the run's MetadataStore); None stores no cards.
    card_index: Any = None
    #: The run's Store, where `current.run` / `current.task` read (None: they raise).
    store: Store | None = None

    run_context: RunContext = field(init=False)
    #: the graph's steps by name (a dict: a task looks its step up without a Python call)
    nodes: dict[str, StepNode] = field(init=False)
    #: packed records of transitions without foreach items, by (targets, foreach): a memo
    #: tasks fill in as they finish (an entry written twice by two threads is the same bytes)
    records: dict[tuple[tuple[str, ...], str | None], bytes] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.task_cls is None:
            constants = self.readonly - set(self.parameter_names)
            self.task_cls = task_class(self.flow_cls, constants)
        self.nodes = self.graph.nodes
        self.run_context = RunContext(
            flow_name=self.flow_name,
            run_id=self.run_id,
            origin_run_id=self.origin_run_id,
            username=self.username,
            namespace=self.namespace,
            tags=self.tags,
            parameter_names=self.parameter_names,
            graph=self.graph,
            project=self.project,
            store=self.store,
        )

    def pathspec(self, spec: TaskSpec) -> str:
        """`Flow/run_id/step/task_id` of a task of this run."""
        return task_pathspec(self.flow_name, self.run_id, spec)

    def starting_manifest(self, spec: TaskSpec) -> dict[str, str]:
        """What a task starts from: its parent's artifacts, or for a join only the run's own
        (name, parameters, constants), fresh because merge_artifacts adds to it."""
        return dict(self.base_manifest) if self.nodes[spec.step].is_join else spec.manifest

    def load(self, key: str) -> Any:
        """Decode the artifact stored under `key` (fresh object on every call)."""
        blob = identity_blob(key)
        if blob is not None:  # the key holds it (a foreach item, most often): no reader to ask
            return decode(blob[0], blob[1:])  # (read_identity, inlined: every task comes here)
        tag, payload = self.reader.read_blob(key)
        return decode(tag, payload)

    def put_large(self, encoded: Encoded) -> None:
        """Write a blob too large for the database to the blob store; StoreFull when the disk
        is full."""
        try:
            put_encoded(self.blobs, encoded)  # a large one hashed while written
        except OSError as exc:
            if not is_full(exc):
                raise
            where = getattr(self.blobs, "root", None)
            raise StoreFull(f"blob {encoded.key}", location=where, key=encoded.key) from exc


def _error_info(exc: BaseException) -> ErrorInfo:
    """The failure as users should read it: the traceback shows their code, not aioflow's.

    aioflow's frames around the body (the runner that called it, and e.g. `self.next()` raising
    a transition error) are dropped, unless nothing else would be left. A value that cannot be
    stored is one line naming the artifact, the step and the reason: the step's code ran to its
    end, and the chain through aioflow's encoder, kept for the stored log, would bury that line.
    """
    report = tracebacks.report(exc, exc.__traceback__)
    if isinstance(exc, ArtifactEncodingError):
        short = f"{type(exc).__name__}: {exc}\n"
        return ErrorInfo(exc, type(exc).__name__, str(exc), short, detail="".join(report.format()))
    text = "".join(tracebacks.without_aioflow(report).format())
    return ErrorInfo(exc, type(exc).__name__, str(exc), text)


class Frozen(NamedTuple):
    """What an abandoned attempt held when it was abandoned: its instance's attributes, its
    manifest and its printed lines, copied so that its thread may go on changing the originals."""

    attributes: dict[str, Any]
    manifest: dict[str, str]
    log: TaskLog


#: Types whose values encode in microseconds whatever they hold (see `needs_thread_to_finish`).
_SCALARS = frozenset({int, float, bool, complex, type(None)})
#: The longest str or bytes value, and the most values, still finished on the event loop.
QUICK_TEXT = 4096
QUICK_COUNT = 64


def parallel_place(spec: TaskSpec) -> Parallel | None:
    """`current.parallel` of a task of a @parallel step (None for any other task).

    The walk spawns the N tasks of a `num_parallel=N` split one after the other, node 0 (the
    control task) first, so the control task's id is this task's id minus its index.
    """
    if not spec.frames or spec.frames[-1][4] != PARALLEL_FOREACH:
        return None
    _, count, index, _, _, _ = spec.frames[-1]
    return Parallel("127.0.0.1", count, index, str(spec.task_id - index))


class TaskRun(TaskContext):
    """One attempt of one task, from instance to outcome; `current`'s view of it while its
    body runs (a TaskContext)."""

    __slots__ = ("abandoned", "env", "flow", "node", "spec", "state", "task_cards")

    log: TaskLog | None
    task_cards: TaskCards | None

    def __init__(self, env: RunEnv, spec: TaskSpec) -> None:
        self.env = env
        self.spec = spec
        self.node = node = env.nodes[spec.step]
        self.state = state = TaskState(
            node,
            env.starting_manifest(spec),
            env.load,
            env.readonly,
            spec.frames,
            env.max_num_splits,
            env.max_num_splits_name,
        )
        assert env.task_cls is not None
        self.flow = env.task_cls._for_task(state)
        self.task_cards = cards = None
        decorators = env.cards.get(spec.step)
        if decorators:  # the cards' modules load for a run with cards only
            from .cards import TaskCards

            self.task_cards = cards = TaskCards(env, spec, decorators)
            cards.live = (self.flow.__dict__, state.manifest)
        TaskContext.__init__(
            self,
            env.run_context,
            spec.step,
            str(spec.task_id),
            spec.attempt,
            parallel_place(spec) if node.parallel_step else None,
            None if cards is None else cards.collector,
            None,  # made by `open_log` if the task prints
        )
        #: set when the attempt's thread was abandoned (@timeout): its outcome is already made
        self.abandoned = False

    def open_log(self) -> TaskLog:
        """The attempt's log, made now if it has none yet (the first line it prints)."""
        log = self.log
        if log is None:
            log = self.log = TaskLog(self.env.line_sink, self.env.pathspec(self.spec))
        return log

    def enter(self) -> Any:
        """Make this task current in the calling context (`current`, printed lines)."""
        return enter_task(self)

    def exit(self, token: Any) -> None:
        """Undo `enter`."""
        exit_task(token)

    def _args(self) -> tuple[Any, ...]:
        if not self.node.is_join:
            return (self.flow,)
        return (self.flow, Inputs(self.spec.inputs or (), self.env.load))

    def call_body(self) -> Any:
        """Call the step function (returns its coroutine for an async step)."""
        return self.node.func(*self._args())

    def needs_thread_to_finish(self) -> bool:
        """True when finishing may be slow (values to encode), so it should leave the loop.

        Numbers, short strings and the like encode in a few microseconds, less than the trip to
        a worker thread and back: an async step that sets only those finishes on the loop.
        """
        transition = self.state.transition
        if (
            self.task_cards is not None
            or self.log is not None
            or (transition is not None and transition.items is not None)
        ):
            return True
        values = self.flow.__dict__
        if len(values) > QUICK_COUNT:
            return True
        for value in values.values():  # (a loop, not a function per value: every task asks)
            kind = type(value)
            if kind in _SCALARS:
                if kind is int and value.bit_length() > 64 * 1024:  # a huge int is not quick
                    return True
            elif not ((kind is str or kind is bytes) and len(value) <= QUICK_TEXT):
                return True
        return False

    def abandon(self) -> Frozen:
        """Give up on a thread still running the body (@timeout) and copy what it holds now.

        As Metaflow keeps a timed-out task's artifacts and output, the attempt's outcome is
        what the instance held and what it printed at this moment. The copies are whole: under
        the GIL, `dict()` of a dict with string keys and `list()` of a list run no Python code,
        so the thread cannot change them halfway. A line still unterminated is left out.
        """
        self.abandoned = True
        log = TaskLog()
        printed = self.log
        if printed is not None:
            log.stdout = list(printed.stdout)
            log.stderr = list(printed.stderr)
        return Frozen(dict(self.flow.__dict__), dict(self.state.manifest), log)

    def finish(self, error: BaseException | None, frozen: Frozen | None = None) -> TaskOutcome:
        """Check the transition and snapshot the artifacts (or what `frozen` copied); any
        thread."""
        step = self.spec.step
        state = self.state
        log: TaskLog | None
        if frozen is None:
            attributes, inherited, log = self.flow.__dict__, state.manifest, self.log
            if log is not None:
                log.close()
        else:
            attributes, inherited, log = frozen.attributes, frozen.manifest, frozen.log
        if error is None and state.transition is None and self.node.type != "end":
            try:
                check_against_graph(self.node, Transition(()))
            except TransitionError as exc:
                error = exc
        catch_var = self.env.catch_vars.get(step)
        if error is None and catch_var:
            # As Metaflow's @catch: a task that did not fail stores None in the catch variable.
            attributes[catch_var] = None
        small: list[tuple[str, bytes]] = []
        item_keys = None
        try:
            manifest = snapshot(
                attributes,
                inherited,
                step,
                small,
                self.env.put_large,
                skip_unencodable=error is not None,
                readonly=state.readonly,
            )
            if error is None and state.transition is not None and state.transition.items:
                item_keys = encode_values(
                    state.transition.items,
                    state.transition.foreach or "items",
                    step,
                    small,
                    self.env.put_large,
                )
        except StoreFull as exc:
            # The task fails (so @retry and @catch apply) with what it had when it started.
            error = exc
            small = []
            manifest = state.manifest
            item_keys = None
        except ArtifactEncodingError as exc:
            error = exc
            small = []
            manifest = snapshot(
                attributes,
                inherited,
                step,
                small,
                self.env.put_large,
                skip_unencodable=True,
                readonly=state.readonly,
            )
        info = None if error is None else _error_info(error)
        if info is not None:
            # The stored stderr ends with the traceback, as Metaflow's does. Added directly, not
            # as printed lines: the TaskFailed event already carries it to listeners.
            now = time.time()
            text = info.detail or info.traceback
            if log is None:
                log = self.open_log()
            log.stderr.extend((now, line) for line in text.rstrip("\n").split("\n"))
        stdout_key = stderr_key = None
        if log is not None:
            stdout_key = self._store_log(log.stdout, small)
            stderr_key = self._store_log(log.stderr, small)
        transition = state.transition if error is None else None
        record = None
        if transition is not None:
            transition.items = None  # the values now live in blobs; free them
            if item_keys is None:
                # The same few records for every task of a step: packed once per run.
                cache_key = (transition.targets, transition.foreach)
                record = self.env.records.get(cache_key)
                if record is None:
                    record = transition_record(transition, None, small, self.env.put_large)
                    self.env.records[cache_key] = record
            else:
                record = transition_record(transition, item_keys, small, self.env.put_large)
        if self.task_cards is not None:
            self.task_cards.finish(attributes, manifest, info)
        return TaskOutcome(
            self.spec,
            manifest,
            small,
            log,
            transition,
            item_keys,
            info,
            stdout_key,
            stderr_key,
            record,
        )

    def _store_log(
        self, lines: list[tuple[float, str]], small: list[tuple[str, bytes]]
    ) -> str | None:
        if not lines:
            return None
        encoded = encode([list(pair) for pair in lines])
        store_encoded(encoded, small, self.env.put_large)
        return encoded.key


def transition_record(
    transition: Transition,
    item_keys: list[str] | None,
    small: list[tuple[str, bytes]],
    put_large: Callable[[Encoded], None],
) -> bytes:
    """What the store keeps of a transition, so a resumed run can replay it without the step.

    `[targets, foreach variable, key of a blob listing the foreach item keys]`.
    """
    items_key = None
    if item_keys is not None:
        encoded = encode(item_keys)
        store_encoded(encoded, small, put_large)
        items_key = encoded.key
    return pack([list(transition.targets), transition.foreach, items_key])


def timeout_error(spec: TaskSpec, seconds: float, note: str = "") -> TimeoutException:
    """The error of an attempt that hit its @timeout, worded like Metaflow's (+ `note`)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)  # a limit under a second must not read "0 seconds"
    return TimeoutException(
        f"Step {spec.step} timed out after {int(hours)} hours, {int(minutes)} minutes, "
        f"{secs:g} seconds (@timeout; task {spec.task_id}, attempt {spec.attempt}).{note}"
    )


def run_sync_task(env: RunEnv, spec: TaskSpec) -> TaskOutcome:
    """Run a sync step's task start to finish in the calling (worker) thread."""
    outcome = run_sync_attempt(TaskRun(env, spec))
    assert outcome is not None  # nobody else holds the run, so nobody abandoned it
    return outcome


def run_sync_attempt(run: TaskRun) -> TaskOutcome | None:
    """Run a prepared attempt's body and finish it in the calling (worker) thread.

    None when the attempt was abandoned while its body ran (`TaskRun.abandon`): its outcome
    was made from what it held then, and what the body did afterwards is not stored.
    """
    tokens = run.enter()
    try:
        error: BaseException | None = None
        try:
            run.call_body()
        except BaseException as exc:  # a step's failure, KeyboardInterrupt included, is data
            error = exc
        return None if run.abandoned else run.finish(error)
    finally:
        run.exit(tokens)


async def run_async_task(
    env: RunEnv, offload: Callable[..., Any], timeout: float | None, spec: TaskSpec
) -> TaskOutcome:
    """Await an async step's body on the loop; snapshot off the loop when there is work.

    With a `timeout`, the body is cancelled when it runs longer, and the attempt fails with
    `timeout_error()`; artifacts it set before that are kept.
    """
    run = TaskRun(env, spec)
    tokens = run.enter()
    error: BaseException | None = None
    try:
        try:
            if timeout is None:  # no cancel scope: entering one costs a task microseconds
                await run.call_body()
            else:
                with anyio.fail_after(timeout) as scope:
                    await run.call_body()
        except TimeoutError as exc:
            # Only our deadline is a @timeout; a TimeoutError the step raised itself is its own.
            if timeout is not None and scope.cancel_called:
                error = timeout_error(spec, timeout)
            else:
                error = exc
        except Exception as exc:  # cancellation propagates; a step's failure is data
            error = exc
    finally:
        run.exit(tokens)
    if run.needs_thread_to_finish():
        outcome: TaskOutcome = await offload(run.finish, error)
        return outcome
    return run.finish(error)
