"""A run in progress: its id at once, its events as they happen, its `Run` at the end.

    async with start_flow(MyFlow, alpha=0.5, quiet=True) as handle:
        print(handle.run_id)                      # stored already
        async for event in handle.events():       # RunStarted ... RunFinished, then it ends
            ...
        run = await handle.wait()                 # the client Run, or FlowFailed

The run executes in a task of the `async with` block's task group, so it cannot outlive the
block: leaving the block before the run ends (normally, by an exception, or by cancellation)
cancels the run, waits until it is stored as cancelled, and lets the exception through as is.

Events reach `events()` through an unbounded anyio memory stream fed by a listener of the run.
Unbounded on purpose: listeners run on the event loop and must not wait, and a run must never
slow down because a consumer does (a client reading a server-sent event stream slowly, a
notebook that reads the events later). A consumer that falls behind, or never reads, only holds
the backlog in memory: a small object per event, log lines included, for the handle's lifetime.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from types import TracebackType

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from .client import Run
from .client.base import shared_store
from .events import Event, RunFinished
from .exceptions import FlowFailed
from .runtime.config import RunConfig
from .runtime.offload import offload
from .runtime.runner import OpenRun, PreparedRun, RunOutcome, open_run
from .runtime.task import task_pathspec

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


def result_run(outcome: RunOutcome) -> Run:
    """The client Run of a finished run; raise FlowFailed when it did not succeed.

    Reads the store: call it off the event loop (`finished_run` does).
    """
    return check_outcome(outcome, client_run(outcome))


def client_run(outcome: RunOutcome) -> Run:
    """The client Run of a run that ended (reads the run's row).

    A run in a store folder is read through the client's store for that folder, opened once
    per process (a connection per returned run would cost a thousand concurrent runs hundreds
    of megabytes); a store the caller gave (`root=Store.memory()`, `root=open_store(...)`) is
    read from itself, with its own settings.
    """
    store = outcome.store
    if store is None or not outcome.callers_store:
        store = shared_store(outcome.root)
    return Run(f"{outcome.flow_name}/{outcome.run_id}", _store=store)


def check_outcome(outcome: RunOutcome, run: Run) -> Run:
    """`run` when the run succeeded; else raise FlowFailed with the failed task and cause."""
    if outcome.successful:
        return run
    failure = outcome.failure
    if failure is not None and failure.error is not None:
        spec = failure.spec
        pathspec = task_pathspec(outcome.flow_name, outcome.run_id, spec)
        error = failure.error
        raise FlowFailed(
            f"Run {run.pathspec} failed: step *{spec.step}* (task {pathspec}) raised "
            f"{error.type_name}: {error.message}",
            run=run,
            pathspec=pathspec,
        ) from error.exception
    how = "was cancelled" if outcome.status == "cancelled" else outcome.status
    raise FlowFailed(
        f"Run {run.pathspec} {how}"
        + (f": {outcome.error}" if outcome.error is not None else ".")
        + (" Resume it with resume_flow()." if outcome.status == "cancelled" else ""),
        run=run,
        pathspec=None,
    ) from outcome.error


async def finished_run(outcome: RunOutcome) -> Run:
    """`result_run` with the store read in a worker thread; FlowFailed is raised here."""
    return check_outcome(outcome, await offload(client_run, outcome))


class EventStream:
    """The events of one run, in order, ending after RunFinished: `async for e in stream`."""

    def __init__(self, receive: MemoryObjectReceiveStream[Event]) -> None:
        self._receive = receive

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


class FlowHandle:
    """A run started by `start_flow`; use it as `async with start_flow(...) as handle`."""

    def __init__(
        self,
        configure: Callable[[], RunConfig],
        prepare: Callable[[RunConfig], PreparedRun],
    ) -> None:
        """`configure` builds the run's configuration and `prepare` the run, on entering."""
        self._configure = configure
        self._prepare = prepare
        self._send, self._receive = anyio.create_memory_object_stream[Event](math.inf)
        self._stream = EventStream(self._receive)
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._tg: TaskGroup | None = None
        self._opened: OpenRun | None = None
        self._error: Exception | None = None
        self._entered = False

    # -- the block ----------------------------------------------------------------------------

    async def __aenter__(self) -> FlowHandle:
        if self._entered:
            raise RuntimeError("A FlowHandle can be entered only once; call start_flow again.")
        self._entered = True
        try:
            config = self._configure().listening(self._listen)
            # Prepared in the worker thread that stores the run: one trip to a thread, not two.
            opened = await open_run(functools.partial(self._prepare, config), config)
        except BaseException:
            self._close_streams()  # bad arguments: the run never starts, nobody will read
            raise
        self._opened = opened
        try:
            tg = anyio.create_task_group()
            await tg.__aenter__()
        except BaseException:
            self._close_streams()
            await opened.abandon()
            raise
        self._tg = tg
        tg.start_soon(self._drive, opened, name=f"aioflow run {opened.pathspec}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        if not self._done.is_set():
            self._scope.cancel()  # leaving the block early cancels the run
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The block's own exception comes back wrapped by the task group: let it through
            # as it was raised (the run task itself never raises).
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return False
            raise
        finally:
            self._receive.close()

    def _close_streams(self) -> None:
        self._send.close()
        self._receive.close()

    async def _drive(self, opened: OpenRun) -> None:
        try:
            with self._scope:
                await opened.run()
        except Exception as exc:  # an internal error: `wait()` raises it
            self._error = exc
        finally:
            self._send.close()
            self._done.set()

    def _listen(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the handle was closed: nobody reads any more
        if isinstance(event, RunFinished):
            self._send.close()

    # -- the run ------------------------------------------------------------------------------

    @property
    def _run(self) -> OpenRun:
        if self._opened is None:
            raise RuntimeError("The run is not started yet: use `async with start_flow(...)`.")
        return self._opened

    @property
    def run_id(self) -> str:
        """The run's id (known as soon as the block is entered)."""
        return self._run.run_id

    @property
    def flow_name(self) -> str:
        """The flow's name."""
        return self._run.flow_name

    @property
    def pathspec(self) -> str:
        """`Flow/run_id`, as the client's `Run(...)` takes it."""
        return self._run.pathspec

    @property
    def done(self) -> bool:
        """True once the run ended and its end is stored."""
        return self._done.is_set()

    @property
    def status(self) -> str:
        """running, then succeeded, failed or cancelled."""
        outcome = self._run.outcome
        if outcome is None or not self._done.is_set():
            return "running"
        return outcome.status

    def events(self) -> EventStream:
        """The run's events from RunStarted to RunFinished (see `aioflow.events`).

        There is one stream per handle, holding every event from the run's start: iterating it
        again continues where the last iteration stopped. It ends after RunFinished.
        """
        return self._stream

    def cancel(self) -> None:
        """Cancel the run (it is stored as cancelled; `wait()` then raises FlowFailed)."""
        self._scope.cancel()

    async def wait(self) -> Run:
        """Wait for the run's end; return its `Run`, or raise FlowFailed (as `run_flow`)."""
        opened = self._run
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert opened.outcome is not None
        return await finished_run(opened.outcome)

    def __repr__(self) -> str:
        name = self._opened.pathspec if self._opened is not None else "not started"
        return f"<FlowHandle {name} {self.status if self._opened else ''}>".replace(" >", ">")


__all__ = ["EventStream", "FlowHandle", "check_outcome", "client_run", "finished_run", "result_run"]
