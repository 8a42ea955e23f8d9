"""A Dask attempt cut short while its reply is being fetched leaves the client working.

Dask's client fetches the results of the futures that finish together in one shared asyncio
task (`Client._gather_remote`, in distributed 2024.8.0 to 2026.8.0): a caller cancelled while it
waits for that task cancels it for all its callers, and one cancelled before it started is
never cleared, so that each later fetch on the client raises asyncio.CancelledError. A
@parallel node stopped just as its reply arrived so failed the next round of its gang, now and
then ("WorkerDied: lost" in tests/test_dask_cluster.py's gang retry).

Here the race happens every time: one shared fetch of the client waits, started (so that it
stays the one later fetches join), until the test saw the attempt waiting for it cut short on
the cluster (its future gone from the scheduler). Overriding `_gather_remote` is the one
private part of Dask these tests touch. On a real in-process cluster
(`LocalCluster(processes=False)`, two single-threaded workers).
"""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from distributed import Client, Future

from aioflow import FlowFailed, FlowSpec, current, parallel, retry, run_flow, step
from aioflow.client import Task
from aioflow.exceptions import WorkerDied
from tests.helpers import local_dask_cluster

pytestmark = pytest.mark.timeout(120)

#: Gates the in-process workers' steps wait on (the flows below run in this process's threads).
GATES: dict[str, threading.Event] = {}


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """Two single-threaded in-process workers (a gang's two nodes need one each)."""
    with local_dask_cluster(threads_per_worker=1) as address:
        yield address


class HeldFetch(Client):
    """A client whose `held`-th shared fetch of results waits, started, until `let_go` is set.
    The fetches before it return their results only once it waits (`fetched` is set as the
    first of them has its results)."""

    def __init__(self, *args: Any, held: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = held
        self.fetches = 0
        self.fetched = asyncio.Event()
        self.fetching = asyncio.Event()
        self.let_go = asyncio.Event()
        self.held_keys: set[str] = set()

    async def _gather_remote(self, direct: bool, local_worker: bool) -> dict[str, Any]:
        self.fetches += 1
        number = self.fetches
        if number == self.held:
            self.held_keys = {str(key) for key in self._gather_keys}
            self.fetching.set()
            await self.let_go.wait()
        reply: dict[str, Any] = await super()._gather_remote(direct, local_worker)
        if number < self.held:
            self.fetched.set()
            await self.fetching.wait()
        return reply


async def let_go_once_cut_short(client: HeldFetch) -> None:
    """Let the held fetch go on once the attempt waiting for it was cut short: aioflow cancels
    the attempt's future as the attempt ends, and the scheduler forgets it."""

    async def on_scheduler() -> set[str]:
        keys: set[str] = await client.run_on_scheduler(
            lambda dask_scheduler: {str(k) for k in dask_scheduler.tasks}
        )
        return keys & client.held_keys

    try:
        with anyio.fail_after(60):
            await client.fetching.wait()
            while await on_scheduler():
                await anyio.sleep(0.05)  # polling interval of the scheduler's state
    finally:
        client.let_go.set()


class StoppedGangFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @retry(times=1)
    @parallel
    @step(executor="dask")
    def train(self):
        self.attempt = current.retry_count
        if current.parallel.node_index == 0 and self.attempt == 0:
            GATES["node 0"].wait(60)  # until node 1's failure is being fetched
        if current.parallel.node_index == 1 and self.attempt == 0:
            raise ValueError("node 1 broke")
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.attempts = sorted(i.attempt for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_gang_node_stopped_mid_fetch_leaves_the_retry_working(
    tmp_path: Path, address: str
) -> None:
    GATES["node 0"] = threading.Event()
    # The first fetch, node 1's failure, returns once the second, node 0's reply, waits: node
    # 1's failure stops node 0 while its reply is on its way, as when both end together.
    async with HeldFetch(address, asynchronous=True, held=2) as client:
        running = asyncio.ensure_future(
            run_flow(StoppedGangFlow, root=tmp_path, dask_client=client, quiet=True)
        )
        try:
            with anyio.fail_after(60):
                await client.fetched.wait()
            GATES["node 0"].set()
            await let_go_once_cut_short(client)
        finally:
            GATES["node 0"].set()
        run = await running
        assert run.data.attempts == [1, 1]  # the retry ran both nodes again, and got both
        assert await client.submit(operator.add, 1, 2) == 3
    first = {t.index: Task(t.pathspec, attempt=0, root=tmp_path) for t in run["train"]}
    assert first[1].exception is not None and first[1].exception.type == "builtins.ValueError"
    assert first[0].exception is not None
    assert first[0].exception.type == "aioflow.exceptions.ParallelStepFailed"


class OneStepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step(executor="dask")
    def work(self):
        self.answer = 42
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_run_cancelled_mid_fetch_leaves_the_callers_client_working(
    tmp_path: Path, address: str
) -> None:
    async with HeldFetch(address, asynchronous=True) as client:
        running = asyncio.ensure_future(
            run_flow(OneStepFlow, root=tmp_path, dask_client=client, quiet=True)
        )
        try:
            with anyio.fail_after(60):
                await client.fetching.wait()
            running.cancel()
            await let_go_once_cut_short(client)
        finally:
            running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        # The caller's client fetches results as before the run.
        with anyio.fail_after(60):
            assert await client.submit(operator.add, 1, 2) == 3


class BlockedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step(executor="dask")
    def work(self):
        GATES["blocked"].wait(60)  # until the test cancelled this task from another client
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_task_cancelled_by_another_client_fails_saying_so(
    tmp_path: Path, address: str
) -> None:
    GATES["blocked"] = threading.Event()
    running = asyncio.ensure_future(
        run_flow(BlockedFlow, root=tmp_path, dask_address=address, quiet=True)
    )
    try:
        async with Client(address, asynchronous=True) as other:

            async def processing() -> list[str]:
                keys: list[str] = await other.run_on_scheduler(
                    lambda dask_scheduler: [
                        str(k) for k, ts in dask_scheduler.tasks.items() if ts.state == "processing"
                    ]
                )
                return [key for key in keys if key.startswith("aioflow-BlockedFlow-")]

            with anyio.fail_after(60):
                while not (keys := await processing()):
                    await anyio.sleep(0.05)  # polling interval of the scheduler's state
            await other.cancel([Future(keys[0], client=other)], force=True)
            with pytest.raises(FlowFailed) as failed:
                await running
    finally:
        GATES["blocked"].set()
        running.cancel()
    cause = failed.value.__cause__
    assert isinstance(cause, WorkerDied)
    assert str(cause).startswith(
        "The Dask task running task 2 of step *work* was cancelled on the cluster, not by this "
        "run (reason: "
    )
    assert str(cause).endswith("another client or the scheduler cancelled it.")
