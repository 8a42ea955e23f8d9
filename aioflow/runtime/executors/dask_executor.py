"""The Dask executor: sync step bodies run on a Dask distributed cluster.

`@step(executor="dask")` sends one step there, `--executor dask` every sync step. Each attempt
is one Dask task running `dask_worker.run_on_worker` with the same request a worker process
gets: blob keys and the few small blobs not committed yet, never values. The worker reads its
inputs from the blob store and writes its outputs there; the reply is the new name -> key map
and what the task printed. Metadata is written only here, by the scheduling process.

The run's `WorkerSetup` (the flow class, pickled by value when the workers could not import it,
and its linted graph) is the result of one Dask task of the run: Dask copies it to each worker
once, as a dependency of the run's tasks, and computes it again if its worker dies.

The N nodes of a @parallel step run on N distinct workers, the least busy ones offering the
step's @resources, each node pinned to its own (`workers=`); `current.parallel.main_ip` is the
host of node 0's worker. A cluster with fewer such workers than nodes fails the step saying so.

Faults map to the outcomes the other executors give: a worker that leaves while running a task
fails that attempt (`WorkerDied`, naming the worker and how it went), a @timeout cancels the
task's future, and a cancelled run cancels its futures; a future cancelled by anyone else fails
its attempt as `WorkerDied` too, saying so. `@resources(cpu=, memory=, gpu=)` are asked of the
workers as Dask resources (CPU, MEMORY in MB, GPU), not reserved here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from typing import Any

import anyio

from ...decorators import StepOptions
from ...events import LogLine
from ...exceptions import ClusterError, ParameterError, WorkerDied, WorkerSetupError
from ...store import FileBlobStore, MemoryBlobStore
from ..gangs import gang_node
from ..process_worker import TaskReply, WorkerSetup
from ..processes import pickle_flow, unsaved_sources
from ..task import TaskOutcome, TaskSpec, timeout_error
from . import dask_worker
from .dask_cluster import RESOURCE_NAMES, Cluster, Watched, import_distributed
from .process import ENV_FIELDS, outcome_from_reply, task_request
from .protocol import ExecutorContext, failed_outcome

#: Added to the @timeout message: a Dask worker cannot stop a task's thread.
CANCELLED_NOTE = (
    " Its Dask future was cancelled, but a worker cannot interrupt a running task: the body "
    "goes on in its worker thread until it returns, and what it returns is discarded."
)


#: How long a run's end waits for the workers to drop the run (a lost worker does not answer).
FORGET_WAIT = 10.0

#: How long an attempt that ends early waits for the fetch of its reply to end once its future
#: is cancelled (see `_first_of`): a scheduler that does not answer the cancellation never ends it.
FETCH_END_WAIT = 10.0

#: A finished attempt's future is released with the run's next submission, or after this many
#: seconds without one (see `DaskExecutor._keep`).
RELEASE_AFTER = 1.0


def dask_resources(options: StepOptions) -> dict[str, float]:
    """The Dask worker resources a step's @resources ask for (none when it asks for none)."""
    amounts = {"cpu": options.cpu, "memory": options.memory, "gpu": options.gpu}
    return {RESOURCE_NAMES[name]: amount for name, amount in amounts.items() if amount}


class DaskExecutor:
    """Sync step bodies on a Dask cluster, reached on first use (or by `start`)."""

    #: The dispatcher reserves no local resources for this executor: @resources go to Dask.
    reserves_locally = False

    def __init__(self, context: ExecutorContext) -> None:
        self.context = context
        self.env = context.env
        self.token = uuid.uuid4().hex
        self._cluster: Cluster | None = None
        self._setup: Any = None  # the scattered WorkerSetup's future
        self._lock = anyio.Lock()
        #: where the nodes of each @parallel gang in progress run, by (split task, attempt):
        #: the placement (made by the first node to ask) and how many nodes have yet to ask
        self._placements: dict[tuple[int, int], tuple[asyncio.Future[list[str]], list[int]]] = {}
        #: futures of finished attempts, released with the next submission (see `_keep`)
        self._ended: list[Any] = []
        self._release_timer: asyncio.TimerHandle | None = None

    async def start(self, steps: dict[str, StepOptions]) -> None:
        """Connect and check the cluster before any task starts (`steps`: the run's steps
        this executor runs, whose @resources some worker must offer)."""
        await self._connected(steps)

    async def _connected(self, steps: dict[str, StepOptions] | None = None) -> Cluster:
        async with self._lock:
            if self._cluster is not None:
                return self._cluster
            if not _on_asyncio():
                raise ParameterError(
                    "The Dask executor needs the asyncio backend (Dask's client runs on "
                    "asyncio): run this flow under asyncio, or with another executor."
                )
            import_distributed()
            context = self.context
            cluster = await Cluster.connect(
                context.dask_address, context.dask_client, context.process_slots, self.token
            )
            try:
                requests = {
                    name: wanted
                    for name, options in (steps or {}).items()
                    if (wanted := dask_resources(options))
                }
                await cluster.check(self._local_store(), requests)
                cluster.watch(dask_worker.lines_topic(self.token))
                # A task's result, not scattered data: when the worker holding it dies, Dask
                # computes it again from the task (scattered data would be lost for good, and
                # every later task of the run with it).
                self._setup = cluster.client.submit(
                    dask_worker.hold, self._worker_setup(), key=f"aioflow-setup-{self.token}"
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await cluster.aclose()
                raise
            self._cluster = cluster
            return cluster

    def _local_store(self) -> str | None:
        """The run's store folder when its blobs are files here (workers on other hosts cannot
        read them); None for a shared blob store. A store in memory no worker can reach."""
        blobs = self.env.blobs
        if isinstance(blobs, MemoryBlobStore):
            raise ParameterError(
                "The Dask executor cannot use a store in memory (Store.memory()): its workers "
                "cannot reach it. Run with a store folder, or a shared blob store."
            )
        return self.context.store_root if isinstance(blobs, FileBlobStore) else None

    def _worker_setup(self) -> WorkerSetup:
        env = self.env
        return WorkerSetup(
            flow_pickle=pickle_flow(env.flow_cls, env.graph),
            root=self.context.store_root,
            settings=self.context.store_settings,
            env_fields={name: getattr(env, name) for name in ENV_FIELDS},
            sources=unsaved_sources(node.file for node in env.graph),
        )

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        """Run the body as a Dask task; a lost worker, a @timeout, an error around the body
        become the attempt's error. Cancelling the attempt cancels the task's future."""
        cluster = await self._connected()  # (`start` connected it, or raised, already)
        context, env = self.context, self.env
        pathspec = env.pathspec(spec)
        key = f"aioflow-{env.flow_name}-{env.run_id}-{spec.step}-{spec.task_id}-{spec.attempt}"
        key += f"-{uuid.uuid4().hex[:8]}"

        def on_line(stream: str, ts: float, line: str) -> None:
            context.emit(LogLine(pathspec, stream, line, timestamp=ts))

        request = task_request(context, spec, options)
        pinned: list[str] | None = None
        node = gang_node(spec)
        if node is not None:
            try:
                placed = await self._placed(spec, node, options)
            except ClusterError as exc:
                return failed_outcome(env, spec, exc)
            except Exception as exc:  # the scheduler could not be asked (a broken connection)
                return failed_outcome(env, spec, ClusterError(
                    f"The tasks of the @parallel step *{spec.step}* could not be placed on the "
                    f"Dask cluster: {type(exc).__name__}: {exc}"
                ))  # fmt: skip
            pinned = [placed[node[2]]]
            request.main_ip = _host(placed[0])
        watched = Watched(key, on_line, pinned=None if pinned is None else pinned[0])
        cluster.follow(watched)
        self._release_ended()  # (before the submission: both go in one message, see `_keep`)
        future = cluster.client.submit(
            dask_worker.run_on_worker,
            self._setup,
            self.token,
            key,
            request,
            key=key,
            pure=False,
            resources=dask_resources(options) or None,
            workers=pinned,
            allow_other_workers=False,
        )
        try:
            with anyio.fail_after(options.timeout):
                reply = await _first_of(future, watched)  # (which cancels the future if cut short)
        except TimeoutError:
            assert options.timeout is not None
            return failed_outcome(env, spec, timeout_error(spec, options.timeout, CANCELLED_NOTE))
        finally:
            cluster.unfollow(key)
        self._keep(future)
        if isinstance(reply, BaseException):
            return failed_outcome(env, spec, self._error(spec, watched, reply))
        emitted = (watched.counts["stdout"], watched.counts["stderr"])
        return outcome_from_reply(context, spec, reply, emitted)

    def _keep(self, future: Any) -> None:
        """Hold a finished attempt's future until the run submits its next task.

        Dask's client sends the scheduler at most one batch of messages per 10 ms. A future
        dropped as its attempt ends is released at once, in a batch of its own, and the next
        task's submission, a moment later, then waits out the rest of those 10 ms: a chain of
        trivial tasks took 17 ms per task against 11 ms for a raw `client.submit` round trip.
        Released just before the next submission, the release travels in the same batch.
        """
        self._ended.append(future)
        if self._release_timer is None:
            loop = asyncio.get_running_loop()
            self._release_timer = loop.call_later(RELEASE_AFTER, self._release_ended)

    def _release_ended(self) -> None:
        """Release the futures of finished attempts (their replies leave the workers' memory)."""
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        ended, self._ended = self._ended, []
        for future in ended:
            future.release()

    async def _placed(
        self, spec: TaskSpec, node: tuple[int, int, int], options: StepOptions
    ) -> list[str]:
        """The workers of the gang of node `spec`, one per node (chosen once per gang attempt,
        by its first node to ask)."""
        key = (node[0], spec.attempt)
        entry = self._placements.get(key)
        if entry is None:
            choosing = asyncio.ensure_future(self._choose(spec.step, node[1], options))
            entry = self._placements[key] = (choosing, [node[1]])
        placing, left = entry
        try:
            # (shielded: a node cancelled while it waits leaves the choice to the others)
            return await asyncio.shield(placing)
        finally:
            left[0] -= 1
            if left[0] == 0:
                del self._placements[key]

    async def _choose(self, step: str, count: int, options: StepOptions) -> list[str]:
        """`count` distinct workers offering the step's @resources, the least busy first."""
        assert self._cluster is not None
        client = self._cluster.client
        identity = await client.scheduler.identity()
        processing = await client.processing()
        wanted = dask_resources(options)
        workers: dict[str, Any] = identity.get("workers", {})
        eligible = [
            address
            for address, info in workers.items()
            if info.get("status", "running") == "running"
            and all(info.get("resources", {}).get(n, 0) >= v for n, v in wanted.items())
        ]
        if len(eligible) < count:
            offering = " offering its @resources" if wanted else ""
            found = ", ".join(sorted(eligible)) or "none"
            raise ClusterError(
                f"Step *{step}* asks for {count} parallel tasks (num_parallel), each on a Dask "
                f"worker of its own, but the cluster has {len(eligible)} worker(s){offering} "
                f"({found}). Start more workers, or lower num_parallel."
            )

        def load(address: str) -> float:
            return len(processing.get(address, ())) / max(1, workers[address].get("nthreads", 1))

        return sorted(eligible, key=lambda address: (load(address), address))[:count]

    def _error(self, spec: TaskSpec, watched: Watched, exc: BaseException) -> BaseException:
        where = f"task {spec.task_id} of step *{spec.step}*"
        if watched.lost is not None:
            lost = watched.lost
            return WorkerDied(f"The Dask worker {lost.worker} running {where} {lost.how}.")
        if type(exc).__name__ == "KilledWorker":
            worker = getattr(getattr(exc, "last_worker", None), "address", "?")
            return WorkerDied(
                f"The Dask worker {worker} running {where} died while running it (its process "
                "ended: killed, out of memory or crashed)."
            )
        if isinstance(exc, WorkerSetupError):
            return exc
        if isinstance(exc, concurrent.futures.CancelledError):  # (what Dask raises for it)
            reason = getattr(exc, "reason", None) or "unknown"
            return WorkerDied(
                f"The Dask task running {where} was cancelled on the cluster, not by this run "
                f"(reason: {reason}): another client or the scheduler cancelled it."
            )
        if isinstance(exc, asyncio.CancelledError):
            return WorkerDied(
                f"The reply of the Dask task running {where} could not be fetched: the Dask "
                "client's fetch was cancelled by another of its users (a fetch of several "
                "results is shared, and cancelling one caller cancels it for all)."
            )
        return WorkerDied(
            f"The Dask task running {where} failed around the step: {type(exc).__name__}: {exc}"
        )

    async def aclose(self) -> None:
        """Close the client and cluster the run started (a caller's client stays open)."""
        self._release_ended()
        cluster, self._cluster = self._cluster, None
        if cluster is None:
            return
        try:
            # The workers let go of the run's store now, before this process closes its own.
            with contextlib.suppress(Exception), anyio.move_on_after(FORGET_WAIT):
                await cluster.client.run(dask_worker.forget, self.token)
        finally:
            await cluster.aclose()


async def _first_of(future: Any, watched: Watched) -> TaskReply | BaseException:
    """The task's reply, or the error that ended it: its own, its worker's loss (a WorkerDied
    to describe), the future's cancellation by someone else (a concurrent.futures
    CancelledError), or the fetch of its reply cancelled by someone else (an
    asyncio.CancelledError). Cut short (a @timeout, a cancelled run, a lost worker), it cancels
    the task's future.

    The reply is fetched by a task that aioflow never cancels: only the future's end, or its
    cancellation, ends it. Dask's client fetches the results of the futures that finish
    together in one shared asyncio task, and a caller cancelled while it waits for that task
    cancels it for all of them; cancelled before it started, it is never cleared, and from then
    on each fetch of any result on that client raises asyncio.CancelledError (distributed
    2024.8.0 to 2026.8.0 at least). A @parallel node stopped just as its reply arrived so made
    the next round of its gang fail, with a task nobody had cancelled.
    """

    async def fetch() -> TaskReply | BaseException:
        try:
            reply: TaskReply = await future
        except Exception as exc:
            return exc
        return reply

    fetching = asyncio.ensure_future(fetch())
    lost = asyncio.ensure_future(watched.gone.wait())
    try:
        await asyncio.wait((fetching, lost), return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        if not fetching.done():
            await _cancel(future, fetching)
    if watched.lost is not None:
        return WorkerDied("lost")  # replaced by the worker's description
    if fetching.cancelled():
        return asyncio.CancelledError()
    return fetching.result()


async def _cancel(future: Any, fetching: asyncio.Future[Any]) -> None:
    """Cancel a task's future, whatever state the run is in (cancelled, timed out), and wait
    for the fetch of its reply to end with it (see `_first_of`)."""
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(Exception):
            await future.cancel()
        with anyio.move_on_after(FETCH_END_WAIT):
            await asyncio.wait((fetching,))
    if not fetching.done():
        # The scheduler did not answer the cancellation: nothing else would end it. (It then
        # waits for the future's state, not for a shared fetch, or for one started long ago.)
        fetching.cancel()


def _host(address: str) -> str:
    """The host (an IP address, as Dask names workers) of a worker's address."""
    from distributed.comm import get_address_host

    return str(get_address_host(address))


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = ["CANCELLED_NOTE", "DaskExecutor", "dask_resources"]
