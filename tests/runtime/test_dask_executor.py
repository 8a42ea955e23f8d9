"""The Dask executor on a real in-process cluster: `LocalCluster(processes=False)`, two workers.

One cluster serves the module (it starts in about a second); each run reaches it by address,
as `--dask-address` does, except the test that hands `run_flow` a client of its own. Covers:
the graph-shape x behaviour matrix run on Dask and on threads with identical results (flows
from files, so the flow class travels by value); live output; @retry, @catch and @timeout;
@resources as Dask resources, and a request no worker offers; the checks made before any task
starts (versions, a store the workers cannot reach, a store in memory); the usage errors
(no `distributed`, trio); a caller's client left open; `--executor dask` on the command line;
the nodes of a @parallel step on distinct workers, with node 0's host as `main_ip`.
Killing a worker is tested on a cluster of separate processes (tests/test_dask_cluster.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from distributed import Client

from aioflow import FlowFailed, FlowSpec, resources, run_flow, step, timeout
from aioflow.client import Flow, Run
from aioflow.events import Event, LogLine, TaskFinished
from aioflow.exceptions import ClusterError, ParameterError
from aioflow.runtime.executors import dask_executor, dask_worker
from aioflow.runtime.executors.dask_cluster import Cluster, Watched
from aioflow.store import Store
from aioflow.store.keys import is_identity
from tests.helpers import gang_flow_source, local_dask_cluster, record_task_requests

pytestmark = pytest.mark.timeout(120)

MakeFlow = Callable[[str], type[FlowSpec]]

#: Gates the in-process workers' steps wait on (the flows below run in this process's threads).
GATES: dict[str, threading.Event] = {}


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """One in-process cluster of two workers for the module, reached over TCP on 127.0.0.1."""
    with local_dask_cluster(threads_per_worker=2, resources={"CPU": 2, "MEMORY": 1000}) as address:
        yield address


async def on_dask(flow: type[FlowSpec], root: Path, address: str, **kwargs: Any) -> Run:
    return await run_flow(
        flow, root=root, executor="dask", dask_address=address, quiet=True, **kwargs
    )


def snapshot(run: Run) -> dict[str, list[str]]:
    """Every step's tasks as their artifacts and output, in an order that ignores task ids."""
    shape: dict[str, list[str]] = {}
    for step_ in run:
        tasks = []
        for task in step_:
            values = sorted((artifact.id, repr(artifact.data)) for artifact in task.artifacts)
            tasks.append(f"{values} {task.stdout!r} {task.successful}")
        shape[step_.id] = sorted(tasks)
    return shape


HEADER = "from aioflow import FlowSpec, Parameter, catch, current, retry, step\n"

SHAPES = {
    "linear_branch_merge_parameters_current_logs": """
class ShapesFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.seen = [current.flow_name, current.step_name, current.retry_count]
        print("starting with", self.alpha)
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = self.alpha * 2
        self.shared = "same"
        print("in a")
        self.next(self.join)

    @step
    def b(self):
        self.y = [self.alpha] * 3
        self.shared = "same"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.both = (self.x, self.y)
        self.next(self.end)

    @step
    def end(self):
        print("done", self.both)
""",
    "foreach_nested": """
class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = [1, 2, 3]
        self.next(self.outer, foreach="numbers")

    @step
    def outer(self):
        self.n = self.input
        self.letters = ["a", "b"]
        self.next(self.inner, foreach="letters")

    @step
    def inner(self):
        self.label = f"{self.letters[self.index]}{self.n}"
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.labels = sorted(i.label for i in inputs)
        self.n = inputs[0].n
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all = sorted(label for i in inputs for label in i.labels)
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    "switch_recursive": """
class LoopFlow(FlowSpec):
    @step
    def start(self):
        self.count = 0
        self.next(self.loop)

    @step
    def loop(self):
        self.count += 1
        self.again = "yes" if self.count < 3 else "no"
        self.next({"yes": self.loop, "no": self.pick}, condition="again")

    @step
    def pick(self):
        self.mode = "big" if self.count > 2 else "small"
        self.next({"big": self.big, "small": self.small}, condition="mode")

    @step
    def big(self):
        self.result = "big"
        self.next(self.end)

    @step
    def small(self):
        self.result = "small"
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    "retry_catch": """
class FaultsFlow(FlowSpec):
    @retry(times=2)
    @step
    def start(self):
        self.tries = current.retry_count
        if current.retry_count < 2:
            raise ValueError(f"attempt {current.retry_count} fails")
        self.next(self.risky)

    @catch(var="failure")
    @step
    def risky(self):
        self.before = "kept"
        raise RuntimeError("bad row")
        self.next(self.end)

    @step
    def end(self):
        self.failure_type = self.failure.type
""",
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_every_shape_gives_what_threads_give(
    shape: str, make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    flow = make_flow(HEADER + SHAPES[shape])
    on_threads = await run_flow(flow, root=tmp_path, executor="thread", quiet=True)
    on_cluster = await on_dask(flow, tmp_path, address)
    assert on_cluster.successful and on_threads.successful
    assert snapshot(on_cluster) == snapshot(on_threads)


class LiveFlow(FlowSpec):
    @step(executor="dask")
    def start(self) -> None:
        print("first line")
        # Ends only once the console has shown the first line: output is live, not at the end.
        self.saw_it_live = GATES["live"].wait(60)
        print("second line")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_a_local_cluster_starts_beside_another_dask(
    make_flow: MakeFlow, tmp_path: Path
) -> None:
    # Another Dask on this machine (a notebook's cluster, a `dask scheduler`) holds port 8787,
    # which a scheduler takes for its HTTP routes even without a dashboard; warnings are errors.
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):  # taken already: by another Dask, as wanted
            stack.enter_context(socket.create_server(("127.0.0.1", 8787)))
        flow = make_flow(HEADER + SHAPES["foreach_nested"])
        run = await run_flow(flow, root=tmp_path, executor="dask", quiet=True)
    assert run.successful


async def test_printed_lines_arrive_while_the_step_runs(tmp_path: Path, address: str) -> None:
    GATES["live"] = threading.Event()
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event, LogLine) and event.line == "first line":
            GATES["live"].set()

    run = await run_flow(
        LiveFlow, root=tmp_path, dask_address=address, quiet=True, listeners=[listen]
    )
    assert run.data.saw_it_live is True
    lines = [(e.pathspec.split("/", 2)[2], e.line) for e in events if isinstance(e, LogLine)]
    assert lines == [("start/1", "first line"), ("start/1", "second line")]  # each once
    ends = [i for i, e in enumerate(events) if isinstance(e, TaskFinished)]
    assert events.index(next(e for e in events if isinstance(e, LogLine))) < ends[0]
    assert run["start"].task.stdout == "first line\nsecond line\n"


class SlowFlow(FlowSpec):
    @timeout(seconds=1)
    @step(executor="dask")
    def start(self) -> None:
        GATES["slow"].wait(60)  # let go by the test once the run has failed
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_a_timeout_cancels_the_future_and_says_the_body_runs_on(
    tmp_path: Path, address: str
) -> None:
    GATES["slow"] = threading.Event()
    try:
        with pytest.raises(FlowFailed) as failed:
            await run_flow(SlowFlow, root=tmp_path, dask_address=address, quiet=True)
    finally:
        GATES["slow"].set()
    message = str(failed.value.__cause__)
    assert "timed out after 0 hours, 0 minutes, 1 seconds" in message
    assert "Its Dask future was cancelled" in message and "goes on in its worker" in message


class ResourcesFlow(FlowSpec):
    @resources(cpu=2, memory=800)
    @step(executor="dask")
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class GpuFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.train)

    @resources(gpu=1)
    @step(executor="dask")
    def train(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_resources_are_asked_of_the_workers(tmp_path: Path, address: str) -> None:
    assert await run_flow(ResourcesFlow, root=tmp_path, dask_address=address, quiet=True)


async def test_resources_no_worker_offers_fail_before_any_task(
    tmp_path: Path, address: str
) -> None:
    with pytest.raises(ClusterError) as refused:
        await run_flow(GpuFlow, root=tmp_path, dask_address=address, quiet=True)
    # (@resources asks for cpu=1 unless told otherwise, as Metaflow's does)
    assert str(refused.value).startswith(
        "Step *train* asks for Dask resources CPU=1, GPU=1 (@resources), which no worker "
        "offers (tcp://127.0.0.1:"
    )
    assert "CPU=2, MEMORY=1000). Start workers with --resources" in str(refused.value)
    latest = Flow("GpuFlow", _store=Store(tmp_path)).latest_run  # recorded, with no task run
    assert latest is not None and list(latest) == []


async def test_parallel_nodes_go_to_distinct_workers_and_read_node_0s_host(
    make_flow: MakeFlow, tmp_path: Path, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every worker here is on 127.0.0.1: name each worker's host after its port, to see whose
    # host current.parallel.main_ip reads.
    monkeypatch.setattr(dask_executor, "_host", lambda worker: f"host-{worker.rsplit(':', 1)[1]}")
    flow = make_flow(gang_flow_source(executor='(executor="dask")'))
    run = await on_dask(flow, tmp_path, address, folder=str(tmp_path / "meet"), width=2)
    where = run["gather"].task.data.where
    workers = [worker for _, worker, _, _ in where]
    assert len(set(workers)) == 2  # one node per worker, though each has two threads
    control = next(iter(run["train"].control_tasks())).id
    host = f"host-{workers[0].rsplit(':', 1)[1]}"  # node 0's worker's
    assert run["gather"].task.data.nodes == [(2, 0, host, control), (2, 1, host, control)]


def test_a_node_whose_worker_leaves_before_it_starts_fails() -> None:
    # A node of a @parallel step may run on its worker only: Dask would hold it forever.
    cluster = Cluster(client=None, cluster=None, owns_client=False, token="t")
    queued = Watched("aioflow-F-1-train-2-0-x", lambda *line: None, pinned="tcp://127.0.0.1:7")
    elsewhere = Watched("aioflow-F-1-train-3-0-y", lambda *line: None, pinned="tcp://127.0.0.1:8")
    cluster.follow(queued)
    cluster.follow(elsewhere)
    cluster._on_cluster_event(
        (0.0, {"action": "remove-worker", "worker": "tcp://127.0.0.1:7", "processing-tasks": []})
    )
    assert queued.gone.is_set() and queued.lost is not None
    assert queued.lost.worker == "tcp://127.0.0.1:7"
    assert queued.lost.how.endswith(
        ", before the task (placed there as a node of a @parallel step) started"
    )
    assert not elsewhere.gone.is_set() and elsewhere.lost is None


async def test_workers_of_another_version_are_refused(
    tmp_path: Path, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = dask_worker.describe

    def older(dask_worker: Any = None) -> dict[str, Any]:
        described = real(dask_worker)
        described["versions"] = {**described["versions"], "aioflow": "0.0.1"}
        return described

    monkeypatch.setattr(dask_worker, "describe", older)  # the workers run in this process
    with pytest.raises(ClusterError, match=r"does not match this process: aioflow \S+ here, "):
        await run_flow(ResourcesFlow, root=tmp_path, dask_address=address, quiet=True)


def test_a_local_store_is_refused_for_workers_on_other_hosts() -> None:
    described = {"tcp://10.1.2.3:4000": {"host": "gpu-box-7"}}
    with pytest.raises(ClusterError) as refused:
        Cluster._check_store("/home/me/.aioflow", described)
    assert str(refused.value) == (
        "The Dask worker tcp://10.1.2.3:4000 runs on another host (gpu-box-7), which cannot "
        "read this run's local store /home/me/.aioflow: use a shared blob store for runs on a "
        "cluster."
    )
    Cluster._check_store("/s", {"tcp://127.0.0.1:4000": {"host": "x"}})  # this host: fine


async def test_a_store_in_memory_is_refused(address: str) -> None:
    with pytest.raises(ParameterError, match=r"cannot use a store in memory"):
        await run_flow(ResourcesFlow, root=Store.memory(), dask_address=address, quiet=True)


async def test_a_callers_client_is_used_and_left_open(tmp_path: Path, address: str) -> None:
    async with Client(address, asynchronous=True) as client:
        run = await run_flow(ResourcesFlow, root=tmp_path, dask_client=client, quiet=True)
        assert run.successful
        assert client.status == "running"
        assert await client.submit(sum, [1, 2]) == 3


class HopsFlow(FlowSpec):
    """Three Dask tasks one after another, then a local step."""

    @step
    def start(self) -> None:
        self.i = 0
        self.next(self.hop)

    @step(executor="dask")
    def hop(self) -> None:
        self.i += 1
        self.more = "yes" if self.i < 3 else "no"
        self.next({"yes": self.hop, "no": self.after}, condition="more")

    @step
    async def after(self) -> None:
        # The run goes on here, with nothing more to submit: the last hop's reply must not
        # stay held on its worker meanwhile.
        client, prefix = HELD["client"], HELD["prefix"]
        with anyio.fail_after(30):
            while any(str(key).startswith(prefix) for key in client.futures):
                await anyio.sleep(0.05)  # polling interval of the client's futures
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


#: What HopsFlow's local step checks: the caller's client, and the keys of the run's tasks.
HELD: dict[str, Any] = {}


async def test_a_finished_tasks_future_is_released_with_the_next_submission(
    tmp_path: Path, address: str
) -> None:
    async with Client(address, asynchronous=True) as client:
        HELD.update(client=client, prefix="aioflow-HopsFlow-1-")
        sent = client.scheduler_comm.recent_message_log  # what went to the scheduler, batched
        first = len(sent)
        run = await run_flow(HopsFlow, root=tmp_path, dask_client=client, quiet=True)
        assert run.successful and run["after"].task.successful
        # Each hop's release went in the same message as the next hop's submission (a release
        # sent alone holds the next submission back: one message per 10 ms goes out), and
        # the last hop's went out while the run went on locally. (On a loaded machine two
        # releases may share a message; each must still travel with a submission.)
        released_with: dict[str, set[Any]] = {}
        for batch in list(sent)[first:]:
            ops = {message.get("op") for message in batch}
            for message in batch:
                if message.get("op") == "client-releases-keys":
                    for key in message["keys"]:
                        if str(key).startswith("aioflow-HopsFlow-1-hop-"):
                            released_with[str(key)] = ops
        assert len(released_with) == 3
        hops = sorted(released_with, key=lambda key: int(key.split("-hop-")[1].split("-")[0]))
        assert all("update-graph" in released_with[key] for key in hops[:2])
        assert not [key for key in client.futures if str(key).startswith("aioflow-HopsFlow-1-")]


async def test_a_sync_client_is_a_usage_error(tmp_path: Path) -> None:
    class NotAsync:
        asynchronous = False

    with pytest.raises(ParameterError, match=r"give a Client\(asynchronous=True\)"):
        await run_flow(ResourcesFlow, root=tmp_path, dask_client=NotAsync(), quiet=True)


async def test_without_distributed_choosing_dask_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(ParameterError) as refused:
        await run_flow(ResourcesFlow, root=tmp_path, quiet=True)
    assert "pip install 'aioflow[dask]'" in str(refused.value)


def test_under_trio_the_dask_executor_says_it_needs_asyncio(tmp_path: Path) -> None:
    async def main() -> None:
        await run_flow(ResourcesFlow, root=tmp_path, quiet=True)

    with pytest.raises(ParameterError, match="needs the asyncio backend"):
        anyio.run(main, backend="trio")


def test_a_scheduler_address_must_look_like_one() -> None:
    from aioflow.runtime.config import run_config

    with pytest.raises(ParameterError, match="is not a Dask scheduler address"):
        run_config(dask_address="tcp://host 8786")
    assert run_config(dask_address=" tcp://h:8786 ").dask_address == "tcp://h:8786"


class IdentityKeyFlow(FlowSpec):
    """Dask tasks reading values kept in their keys (identity keys), stored nowhere."""

    @step
    def start(self) -> None:
        self.small = 7
        self.items = ["p", "q"]
        self.next(self.work, foreach="items")

    @step(executor="dask")
    def work(self) -> None:
        self.seen = f"{self.input}{self.small}"
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen = sorted(i.seen for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_a_dask_task_reads_identity_keyed_inputs(
    tmp_path: Path, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = record_task_requests(monkeypatch, dask_executor)
    run = await on_dask(IdentityKeyFlow, tmp_path, address)
    assert run["join"].task.data.seen == ["p7", "q7"]
    small = run["start"].task.manifest["small"]
    work = [request for request in requests if request.step == "work"]
    item_keys = {frame[5] for request in work for frame in request.frames}
    assert len(work) == 2 and len(item_keys) == 2
    assert is_identity(small) and all(map(is_identity, item_keys))
    for request in work:  # nothing of them travels beside the keys: no blob holds them
        assert not set(request.inline) & (item_keys | {small})
