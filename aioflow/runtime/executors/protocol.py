"""What the scheduler needs from a place where task bodies run, and what a run offers it.

An `Executor` runs one attempt of a task and returns its `TaskOutcome`. It never raises for the
step: a failing body, a `@timeout` hit, a worker process that died become the outcome's error,
so `@retry` and `@catch` treat them like any exception the step raised. Each executor enforces
`@timeout` its own way (an async body is cancelled, a thread is abandoned, a process is killed).
`@resources` are reserved around the attempt by the dispatcher, the same for every executor.

A `CallbackExecutor` also takes attempts without a coroutine: `submit` hands the outcome to a
callback on the loop. The scheduler uses it for plain sync steps, where a coroutine and a
future per task would be most of a tiny task's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from ...decorators import StepOptions
from ...store.settings import StoreSettings
from ...tracebacks import format_exception_only
from ..logs import TaskLog
from ..task import ErrorInfo, RunEnv, TaskOutcome, TaskSpec
from .thread_lane import Done, ThreadLane

if TYPE_CHECKING:
    from ...events import Event


class UnflushedBlobs(Protocol):
    """Small blobs handed to the run's writer and not committed yet (another process cannot
    read them from the store, so they travel with a task sent there)."""

    def unflushed_blob(self, key: str) -> bytes | None:
        """The blob stored under `key` if it is not committed yet, else None."""
        ...


class ExecutorContext(NamedTuple):
    """What a run offers the executors it starts: built once per run, shared by all of them."""

    env: RunEnv
    #: the run's worker threads (sync bodies, and off-loop work such as an async step's snapshot)
    lane: ThreadLane
    unflushed: UnflushedBlobs
    #: the store's root folder, for executors whose workers open the store themselves
    store_root: str
    #: how many worker processes the run may start
    process_slots: int
    #: emits events to the run's listeners (on the loop)
    emit: Callable[[Event], None]
    #: the Dask cluster to run "dask" steps on: a scheduler's address, or a Client the caller
    #: keeps (both None: $AIOFLOW_DASK_ADDRESS, else a LocalCluster for the run)
    dask_address: str | None = None
    dask_client: Any = None
    #: the store's configuration, for those workers: the run's, not what their environment
    #: names (None: theirs)
    store_settings: StoreSettings | None = None


class Executor(Protocol):
    """A place where task bodies run: the event loop, the run's threads, worker processes."""

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        """Run one attempt of a task under its step's options; never raises for the step."""
        ...

    async def aclose(self) -> None:
        """Release what the executor started (threads, processes); called once, at run end."""
        ...


@runtime_checkable
class CallbackExecutor(Executor, Protocol):
    """An executor that can also start an attempt with a callback instead of a coroutine."""

    def can_submit(self, options: StepOptions) -> bool:
        """True when attempts of a step with these options may go through `submit`."""
        ...

    def submit(self, spec: TaskSpec, done: Done) -> None:
        """Start one attempt; `done(ok, outcome)` is called on the loop when it ends.

        `ok` is False (with the exception as the value) only when aioflow itself failed around
        the step; a step's own failure is an outcome, as with `attempt`.
        """
        ...


#: Builds a run's executor of one kind from what the run offers (see `registry`).
ExecutorFactory = Callable[[ExecutorContext], Executor]


def failed_outcome(env: RunEnv, spec: TaskSpec, exc: BaseException) -> TaskOutcome:
    """An outcome for an attempt whose body could not report back (no new artifacts)."""
    manifest = env.starting_manifest(spec)
    text = format_exception_only(exc)
    info = ErrorInfo(exc, type(exc).__name__, str(exc), text)
    return TaskOutcome(spec, manifest, [], TaskLog(), error=info)


__all__ = [
    "CallbackExecutor",
    "Done",
    "Executor",
    "ExecutorContext",
    "ExecutorFactory",
    "UnflushedBlobs",
    "failed_outcome",
]
