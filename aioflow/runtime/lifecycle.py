"""A stored run from its first task to its recorded end: `OpenRun.run()`.

`runner.open_run` stores a run and returns an `OpenRun`; `run()` builds what the tasks share
(the run's environment, metadata writer, thread lane, process pool), runs the scheduler, and,
however it ends (success, a failed task, cancellation, an internal error), records the end in
the store, emits RunFinished and closes the store, shielded from cancellation. Nothing here
blocks the event loop: commits, the store's close and stopping worker processes run in threads.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from ..store import Store
from ..store.keeper import StoreKeeper, store_keeper
from ..store.metadata import task_row
from ..store.serde import pack
from ..store.writer import BatchWriter
from ..transient import transient_names
from .bridge import LoopInbox
from .collector import collector_guard
from .dispatch import Dispatcher
from .executors import ExecutorContext, ThreadLane
from .logs import install as install_log_capture
from .logs import uninstall as uninstall_log_capture
from .offload import offload, offload_limiter
from .scheduler import RunResult, Scheduler
from .task import RunEnv, TaskOutcome, task_pathspec

if TYPE_CHECKING:
    from ..events import Event
    from .config import RunConfig
    from .resume import Origin
    from .runner import PreparedRun


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
    #: The store the run went to (closed: its connections reopen on use).
    store: Store | None = None
    #: The store was the caller's (`root=Store(...)`), not opened from a folder for the run.
    callers_store: bool = False

    @property
    def successful(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"


class OpenRun:
    """A stored run whose tasks have not started: `run_id` is known, `run()` runs it.

    `run()` must be awaited exactly once: it is what records how the run ended. Cancelled
    before its first task starts, it still stores the run as cancelled and emits RunFinished.
    """

    def __init__(
        self,
        prepared: PreparedRun,
        options: RunConfig,
        store: Store,
        run_id: str,
        user_tags: list[str],
        base: dict[str, str],
        small: list[tuple[str, bytes]],
        origin: Origin | None,
    ) -> None:
        self.prepared = prepared
        self.options = options
        self.store = store
        self.run_id = run_id
        self.flow_name = prepared.flow_cls.__name__
        self.outcome: RunOutcome | None = None
        self._user_tags = user_tags
        self._base = base
        self._small = small
        self._origin = origin
        self._started = False

    @property
    def pathspec(self) -> str:
        """`Flow/run_id`."""
        return f"{self.flow_name}/{self.run_id}"

    async def run(self) -> RunOutcome:
        """Run the tasks until `end` succeeds, a task fails, or the caller is cancelled.

        Returns the outcome (also kept as `self.outcome`); re-raises a cancellation after the
        run was recorded as cancelled.
        """
        if self._started:
            raise RuntimeError(f"Run {self.pathspec} was already started.")
        self._started = True
        prepared, options = self.prepared, self.options
        flow_name, run_id = self.flow_name, self.run_id
        listeners = list(options.listeners)

        def deliver(event: Event) -> None:
            for listener in listeners:
                listener(event)

        def emit(event: Event) -> None:
            # Lines a task printed reach listeners before the event that ends the task.
            if inbox is not None:
                inbox.drain(limit=None)
            deliver(event)

        started = time.time()
        keeper = store_keeper() if on_asyncio() else None
        writer = BatchWriter(self.store, limiter=offload_limiter() if on_asyncio() else None)
        result = RunResult(status="cancelled")
        inbox: LoopInbox[Event] | None = None
        lane: ThreadLane | None = None
        dispatcher: Dispatcher | None = None
        scheduler: Scheduler | None = None
        capturing = False
        try:
            for key, data in self._small:
                # Stored before the run's row already; stored again with the first batch, now
                # that the row names them, in case gc swept them in between (store/gc.py).
                writer.put_blob(key, data)
            if listeners and on_asyncio():
                inbox = LoopInbox(asyncio.get_running_loop(), deliver)
            env = self._env(writer, inbox)
            lane = ThreadLane(options.max_workers, name=f"aioflow-{flow_name}-{run_id}")
            context = ExecutorContext(
                env=env,
                lane=lane,
                unflushed=writer,
                store_root=str(self.store.root),
                store_settings=self.store.settings,
                process_slots=min(options.max_workers, os.cpu_count() or 1),
                emit=emit,
                dask_address=options.dask_address,
                dask_client=options.dask_client,
            )
            dispatcher = Dispatcher(context)
            scheduler = Scheduler(
                env,
                writer,
                dispatcher,
                prepared.options,
                max_workers=options.max_workers,
                emit=emit if listeners else None,
                origin=self._origin,
            )
            if listeners:
                # (Imported here, as every event class is: a run that nobody listens to, such
                # as `aioflow run --quiet`, builds no event, and importing them costs 5 ms.)
                from ..events import RunStarted

                emit(RunStarted(flow_name, run_id, prepared.username, options.origin_run_id))
            install_log_capture()
            collector_guard().run_started()
            capturing = True
            await dispatcher.start(prepared.options)  # a cluster that cannot work fails here
            result = await scheduler.run()
        except Exception as exc:
            result = RunResult(status="failed", error=exc)
            raise
        finally:
            if scheduler is not None and result is not scheduler.result:
                # cancelled or broken: the tasks still running are marked interrupted
                result.interrupted_tasks = scheduler.result.interrupted_tasks
            if capturing:
                uninstall_log_capture()
                collector_guard().run_ended()
            if lane is not None:
                lane.close()
            with anyio.CancelScope(shield=True):
                if dispatcher is not None:
                    await dispatcher.aclose()  # stops worker processes, if any were started
                try:
                    outcome = await _record_end(writer, flow_name, run_id, result)
                    outcome.callers_store = isinstance(options.root, Store)
                    self.outcome = outcome
                    await self._forget_transient()
                    if inbox is not None:
                        inbox.close()
                    failed = outcome.failure
                    if listeners:
                        from ..events import RunFinished

                        emit(
                            RunFinished(
                                flow_name,
                                run_id,
                                outcome.status,
                                time.time() - started,
                                None
                                if failed is None
                                else task_pathspec(flow_name, run_id, failed.spec),
                                tuple(outcome.interrupted),
                            )
                        )
                finally:
                    await offload(let_go, self.store, int(run_id), keeper)
        return outcome

    async def _forget_transient(self) -> None:
        """Drop the flow's @transient artifacts from the ended run's tasks (not its
        parameters, constants or configs, which a resume reads)."""
        prepared = self.prepared
        kept = {*prepared.values, *prepared.constants, *prepared.configs}
        names = transient_names(prepared.flow_cls) - kept
        if names:
            from ..store.gc import forget_artifacts  # a flow with @transient only

            await offload(forget_artifacts, self.store, int(self.run_id), names)

    async def abandon(self) -> None:
        """Record a run that will not be run as cancelled (instead of `run()`)."""
        with anyio.CancelScope() as scope:
            scope.cancel()
            await self.run()

    def _env(self, writer: BatchWriter, inbox: LoopInbox[Event] | None) -> RunEnv:
        prepared = self.prepared
        if inbox is not None:
            from ..events import LogLine

        def line_sink(pathspec: str, stream: str, line: str) -> None:
            if inbox is not None:
                inbox.put(LogLine(pathspec, stream, line))

        return RunEnv(
            flow_cls=prepared.flow_cls,
            graph=prepared.graph,
            flow_name=self.flow_name,
            run_id=self.run_id,
            username=prepared.username,
            namespace=f"user:{prepared.username}",
            tags=frozenset(self._user_tags),  # Metaflow's current.tags: the user tags only
            parameter_names=tuple(prepared.values),
            readonly=frozenset([*prepared.values, *prepared.constants, *prepared.configs]),
            base_manifest=self._base,
            reader=writer,
            blobs=self.store.blobs,
            line_sink=line_sink,
            origin_run_id=self.options.origin_run_id,
            max_num_splits=self.options.max_num_splits,
            max_num_splits_name=self.options.max_num_splits_name,
            catch_vars={
                step: opts.catch.attributes["var"]
                for step, opts in prepared.options.items()
                if opts.catch is not None and opts.catch.attributes["var"]
            },
            project=prepared.project,
            cards={step: opts.cards for step, opts in prepared.options.items() if opts.cards},
            card_index=self.store.metadata,
            store=self.store,
        )


async def _record_end(
    writer: BatchWriter, flow_name: str, run_id: str, result: RunResult
) -> RunOutcome:
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
                int(run_id),
                spec.task_id,
                spec.attempt,
                spec.step,
                # Not "failed": the task raised nothing; the run stopped it (Metaflow's client
                # reads it as neither successful nor finished).
                "cancelled",
                started_at=spec.started_at,
                finished_at=now,
                frames=pack(spec.frames) if spec.frames else None,
                parents=pack(spec.parents) if spec.parents else None,
                exception=pack(record),
            )
        )
        interrupted.append(task_pathspec(flow_name, run_id, spec))
    error: dict[str, str | None] | None = None
    if result.failure is not None and result.failure.error is not None:
        error = {"pathspec": task_pathspec(flow_name, run_id, result.failure.spec),
                 **result.failure.error.to_record()}  # fmt: skip
    elif result.error is not None:
        error = {"pathspec": None, "type": type(result.error).__name__,
                 "message": str(result.error), "traceback": ""}  # fmt: skip
    writer.update_run(
        int(run_id),
        status=result.status,
        finished_at=now,
        error=None if error is None else pack(error),
    )
    await writer.flush()
    return RunOutcome(
        flow_name,
        run_id,
        result.status,
        str(writer.store.root),
        result.failure,
        result.error,
        interrupted,
        writer.store,
    )


def let_go(store: Store, run_id: int | None, keeper: StoreKeeper | None) -> None:
    """End a run's hold on its store: close a store of its own; in a store the loop's runs
    share (`keeper.run_store`), release the run's lock only (`run_id` None: no run was stored).
    """
    if keeper is not None and keeper.shares(store):
        keeper.end_run(store, run_id)
    else:
        store.close()


def on_asyncio() -> bool:
    """True when called on a running asyncio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
