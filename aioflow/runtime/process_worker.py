"""The child side of the process executor: run one task in a worker process.

A worker is initialised once per run with the flow class and its graph (cloudpickled, so classes
defined in `__main__`, a notebook cell or a loaded flow file travel by value) and the store's
location. Each request carries blob keys, plus inline the few small blobs the parent has not
committed yet; the worker reads everything else from the store, writes large blobs itself and
returns the artifact map with the small blobs inline. Values never cross the process boundary.

A worker process runs `serve`: the run's process sends it one message at a time on its pipe (a
task, or a ping) and reads one answer back (`worker_pipe.py` is the other end).
"""

from __future__ import annotations

import linecache
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from multiprocessing.connection import Connection
from operator import attrgetter
from typing import Any

import cloudpickle

from ..exceptions import WorkerSetupError
from ..inputs import Frame, JoinInput
from ..store import Store
from ..store.serde import Buffer
from ..store.settings import StoreSettings
from ..transitions import Transition
from . import logs, worker_logging
from .fd_capture import capture_descriptors, prepare_files
from .task import RunEnv, TaskRun, TaskSpec
from .worker_pipe import SPIN, read_message, write_message


@dataclass
class WorkerSetup:
    """What every task of a run needs in a worker (sent once, when the worker starts)."""

    #: The flow class and its linted graph, from `processes.pickle_flow`.
    flow_pickle: bytes
    root: str
    env_fields: dict[str, Any]
    #: Source lines of steps with no file on disk (notebook cells), by file name: tracebacks
    #: show them.
    sources: dict[str, list[str]] = field(default_factory=dict)
    #: The host's logging configuration, for a worker whose imports configure none.
    logging: tuple[worker_logging.LoggerConfig, ...] = ()
    #: The run's store configuration (None: the one this worker's environment names).
    settings: StoreSettings | None = None


@dataclass
class TaskRequest:
    """One task attempt to run in a worker."""

    task_id: int
    step: str
    attempt: int
    frames: tuple[Frame, ...]
    parents: tuple[int, ...]
    manifest: dict[str, str]
    inputs: list[tuple[str, int, dict[str, str], tuple[Frame, ...]]] | None
    inline: dict[str, bytes]
    env_vars: Mapping[str, str] = field(default_factory=dict)
    #: `current.parallel.main_ip` of a node of a @parallel step placed on a Dask worker: the
    #: host of the worker running its node 0 (None: this machine, 127.0.0.1)
    main_ip: str | None = None


@dataclass
class TaskReply:
    """What a worker sends back: keys, small blobs, logs and the failure if any."""

    manifest: dict[str, str]
    small: list[tuple[str, bytes]]
    transition: Transition | None
    transition_record: bytes | None
    item_keys: list[str] | None
    stdout: list[tuple[float, str]]
    stderr: list[tuple[float, str]]
    stdout_key: str | None
    stderr_key: str | None
    error: dict[str, str] | None
    exception: bytes | None
    finished_at: float


# A worker's pipe carries these as plain tuples of their fields: pickling the dataclasses
# themselves (their classes looked up by name, their state as a dict) costs four times as much,
# 10 us of a trivial task's round trip.
_request_fields = attrgetter(*(f.name for f in fields(TaskRequest)))
_reply_fields = attrgetter(*(f.name for f in fields(TaskReply)))
_transition_fields = attrgetter(*(f.name for f in fields(Transition)))
_TRANSITION = [f.name for f in fields(TaskReply)].index("transition")


def request_to_wire(request: TaskRequest) -> tuple[Any, ...]:
    """`request` as the tuple a worker's pipe carries."""
    wire: tuple[Any, ...] = _request_fields(request)
    return wire


def request_from_wire(wire: tuple[Any, ...]) -> TaskRequest:
    return TaskRequest(*wire)


def reply_to_wire(reply: TaskReply) -> tuple[Any, ...]:
    """`reply` as the tuple a worker's pipe carries (its transition a tuple too)."""
    wire = list(_reply_fields(reply))
    if reply.transition is not None:
        wire[_TRANSITION] = _transition_fields(reply.transition)
    return tuple(wire)


def reply_from_wire(wire: tuple[Any, ...]) -> TaskReply:
    reply = TaskReply(*wire)
    transition: Any = reply.transition
    if transition is not None:
        reply.transition = Transition(*transition)
    return reply


class _Reader(threading.local):
    """Blob reads in a worker: the request's inline blobs first, then the store.

    The inline blobs are the calling thread's own: a Dask worker runs several tasks of one run
    at once, in threads, with one reader.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.inline: dict[str, bytes] = {}

    def read_blob(self, key: str) -> tuple[int, Buffer]:
        data = self.inline.get(key)
        if data is not None:
            return data[0], memoryview(data)[1:]
        return self.store.read_blob(key)


@dataclass
class WorkerRun:
    """One run as loaded in a worker: its environment, and the reader of its blobs."""

    env: RunEnv
    reader: _Reader


_state: list[WorkerRun] = []  # this worker process's run (set once by `initialize`)
_setup_error: list[str] = []  # why `initialize` failed, reported by every task instead


def watch_lifeline(lifeline: Connection) -> None:
    """End this process as soon as `lifeline` reads end-of-file: its run's process is gone.

    A daemon thread blocks on the read, so a step busy in Python code (or hanging) is ended
    too; `os._exit`, since nothing of a run that is gone deserves cleaning up.
    """

    def watch() -> None:
        try:
            while True:
                lifeline.recv_bytes()  # nothing is ever sent: this returns only at EOF
        except (EOFError, OSError):
            pass
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="aioflow-lifeline", daemon=True).start()


#: The exit status of a worker that ended because its run's process was gone.
EXIT_ORPHANED = 70


def initialize(setup: WorkerSetup, lifeline: Connection | None = None) -> None:
    """Worker set-up: watch the run's process (`lifeline`), load the flow class and open the
    store.

    A failure here is kept and raised by each task as WorkerSetupError: escaping from here
    would only end the process, and the task would read as a crashed worker.
    """
    if lifeline is not None:
        watch_lifeline(lifeline)
    try:
        _initialize(setup)
    except Exception as exc:
        flow = setup.env_fields.get("flow_name", "")
        _setup_error[:] = [f"could not load the flow {flow}: {type(exc).__name__}: {exc}"]


def _initialize(setup: WorkerSetup) -> None:
    _state[:] = [load_run(setup)]
    worker_logging.apply(setup.logging, {"stdout": sys.stdout, "stderr": sys.stderr})
    logs.install()


def load_run(
    setup: WorkerSetup, line_sink: Callable[[str, str, str], None] | None = None
) -> WorkerRun:
    """Load the flow class and graph of `setup` and open its store; `line_sink` is called with
    every line a task prints, as it is printed (by default lines only go to the reply)."""
    for file, lines in setup.sources.items():
        # As IPython registers a cell: no mtime, so linecache never drops the entry.
        linecache.cache[file] = (sum(map(len, lines)), None, lines, file)
    # The parent's graph, not one built here: the steps' source may not be readable here.
    flow_cls, graph = pickle.loads(setup.flow_pickle)
    store = Store(setup.root, settings=setup.settings)
    reader = _Reader(store)
    env = RunEnv(
        flow_cls=flow_cls,
        graph=graph,
        reader=reader,
        blobs=store.blobs,
        line_sink=line_sink or _no_sink,
        card_index=store.metadata,
        store=store,
        **setup.env_fields,
    )
    return WorkerRun(env, reader)


def _no_sink(pathspec: str, stream: str, line: str) -> None:
    """Lines printed in a worker process go back with the reply only."""


def _views_spec(request: TaskRequest) -> TaskSpec:
    inputs = None
    if request.inputs is not None:
        inputs = [JoinInput.of(*parent) for parent in request.inputs]
    return TaskSpec(
        request.task_id,
        request.step,
        request.frames,
        request.parents,
        request.manifest,
        inputs,
        request.attempt,
    )


def run_task(request: TaskRequest) -> TaskReply:
    """Run one task attempt in this worker and describe its outcome."""
    if _setup_error:
        raise WorkerSetupError(
            f"The worker process for task {request.task_id} of step *{request.step}* "
            f"{_setup_error[0]}"
        )
    return execute(_state[0], request)


def execute(state: WorkerRun, request: TaskRequest, *, capture_fds: bool = True) -> TaskReply:
    """Run one task attempt of `state`'s run in this thread and describe its outcome.

    `capture_fds` points file descriptors 1 and 2 at the task while it runs: right in a
    process that runs one task at a time, wrong where threads run several at once.
    """
    state.reader.inline = request.inline
    saved = {name: os.environ.get(name) for name in request.env_vars}
    os.environ.update(request.env_vars)
    try:
        run = TaskRun(state.env, _views_spec(request))
        if request.main_ip is not None and run.parallel is not None:
            run.parallel = run.parallel._replace(main_ip=request.main_ip)
        tokens = run.enter()
        try:
            error: BaseException | None = None
            try:
                captured = capture_descriptors(run.open_log()) if capture_fds else nullcontext()
                with captured:  # a subprocess's output is the task's too
                    result = run.call_body()
                    if isinstance(result, Coroutine):  # an async step
                        import asyncio  # here: a worker of sync steps never loads it

                        asyncio.run(result)
            except BaseException as exc:
                error = exc
            outcome = run.finish(error)
        finally:
            run.exit(tokens)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        state.reader.inline = {}
        sys.stdout.flush()
    exception = None
    if outcome.error is not None:
        try:
            exception = cloudpickle.dumps(outcome.error.exception)
            pickle.loads(exception)
        except Exception:
            exception = None
    log = outcome.log
    return TaskReply(
        manifest=outcome.manifest,
        small=outcome.small,
        transition=outcome.transition,
        transition_record=outcome.transition_record,
        item_keys=outcome.item_keys,
        stdout=[] if log is None else log.stdout,
        stderr=[] if log is None else log.stderr,
        stdout_key=outcome.stdout_key,
        stderr_key=outcome.stderr_key,
        error=None if outcome.error is None else outcome.error.to_record(),
        exception=exception,
        finished_at=outcome.finished_at,
    )


def ping() -> int:
    """A no-op round trip; returns the worker's pid."""
    return os.getpid()


#: The kinds of message a worker's pipe brings: (TASK, `request_to_wire(request)`), answered
#: with `reply_to_wire(reply)`, or (PING, None), answered with the worker's pid.
TASK, PING = "task", "ping"


def serve(setup: WorkerSetup, lifeline: Connection | None, conn: Connection) -> None:
    """A worker process's life: set up once, then answer each message `conn` brings with
    `(True, result)` or `(False, exception)`, one at a time, until the run's process closes its
    end of `conn`.

    Ctrl-C is ignored here, as in the forkserver: a terminal sends it to the whole process
    group, and it is the run's process that decides what stops (it kills a worker whose task it
    cancels); an idle worker interrupted would end with a traceback and fail its next task.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    initialize(setup, lifeline)
    prepare_files()
    receive, send = _messages(conn)
    while True:
        message = receive()
        if message is None:
            return
        kind, payload = pickle.loads(message)
        answer: tuple[bool, Any]
        try:
            if kind == TASK:
                answer = (True, reply_to_wire(run_task(request_from_wire(payload))))
            else:
                answer = (True, ping())
        except BaseException as exc:  # WorkerSetupError, or a bug: the parent raises it
            answer = (False, exc)
        send(_dumps(answer))
        prepare_files()  # while the run's process reads the answer


def _messages(
    conn: Connection,
) -> tuple[Callable[[], bytes | bytearray | None], Callable[[bytes], None]]:
    """Reading (None at end-of-file) and writing one message on `conn`: with a read and a write
    of its descriptor each, except on Windows, whose pipes are no descriptors."""
    if sys.platform == "win32":

        def receive_windows() -> bytes | None:
            try:
                return conn.recv_bytes()
            except EOFError:
                return None

        return receive_windows, conn.send_bytes
    fd, pending = conn.fileno(), bytearray()
    return (lambda: read_message(fd, pending, SPIN)), (lambda data: write_message(fd, data))


def _dumps(answer: tuple[bool, Any]) -> bytes:
    try:
        return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        what = "its reply" if answer[0] else f"the error {answer[1]!r}"
        error = RuntimeError(f"A worker process could not send {what}: {type(exc).__name__}: {exc}")
        return pickle.dumps((False, error), protocol=pickle.HIGHEST_PROTOCOL)
