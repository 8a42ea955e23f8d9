"""The Dask executor on a cluster of separate processes, as a user runs one.

A scheduler and two workers are started once for the module with Dask's own command line
(`python -m dask scheduler` / `dask worker`, on 127.0.0.1, dashboards off) and reached over TCP.
Flows come from files, so their classes travel by value. Covers: tasks running in the workers'
processes with a large artifact written and read there, a worker killed mid-task (only its task
fails, naming the worker; @retry runs it again), and examples/dask/ run from the command line
with --dask-address, and a flow file with `aioflow run --executor dask` and
$AIOFLOW_DASK_ADDRESS. A @parallel step runs its nodes on distinct workers and fails, retries
and is refused as a gang (issue 11, item 9); Ctrl-C of `aioflow run` and cancelling `run_flow`
cancel the run's tasks on the cluster (issue 15).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from distributed import Client

from aioflow import FlowFailed, FlowSpec, run_flow
from aioflow.client import Run, Task
from aioflow.events import Event, LogLine, RunStarted, TaskFailed
from aioflow.exceptions import ClusterError
from aioflow.runtime.executors import dask_worker
from tests.helpers import aioflow_command, gang_flow_source

pytestmark = pytest.mark.timeout(180)

MakeFlow = Callable[[str], type[FlowSpec]]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask" / "model_fits.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and two single-threaded workers, each a process of its own."""
    logs = tmp_path_factory.mktemp("dask-logs")
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    dask = [sys.executable, "-m", "dask"]
    commands = [
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
         "--no-dashboard", "--dashboard-address", "127.0.0.1:0"],  # its HTTP routes: loopback
        *(
            [*dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--no-dashboard", "--resources", "CPU=1", "--name", f"worker-{n}"]
            for n in (1, 2)
        ),
    ]  # fmt: skip
    processes = []
    try:
        for n, command in enumerate(commands):
            with open(logs / f"{n}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
                )
        with Client(address, timeout=60) as client:  # retries until the scheduler listens
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


WORKERS_FLOW = """
import os
from aioflow import FlowSpec, step

BIG = 300_000  # bytes: over the store's limit for blobs kept in the database


class WorkersFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3, 4]
        self.next(self.each, foreach="items")

    @step(executor="dask")
    def each(self):
        self.pid = os.getpid()
        self.payload = bytes([self.input]) * BIG  # written to the blob store by the worker
        self.next(self.join)

    @step(executor="dask")
    def join(self, inputs):
        self.sizes = sorted((len(i.payload), i.payload[0]) for i in inputs)
        self.pids = sorted({i.pid for i in inputs} | {os.getpid()})
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_tasks_run_in_the_worker_processes(
    make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    run = await run_flow(make_flow(WORKERS_FLOW), root=tmp_path, dask_address=address, quiet=True)
    assert run.data.sizes == [(300_000, n) for n in (1, 2, 3, 4)]
    assert os.getpid() not in run.data.pids
    assert run["each"].task.data.payload[:1] in {bytes([n]) for n in (1, 2, 3, 4)}
    # The workers let go of the run as it ended: none holds its store open (a worker's
    # connection outliving this process's would checkpoint the database from there).
    async with Client(address, asynchronous=True) as client:
        loaded = await client.run(lambda: len(dask_worker._runs))
    assert set(loaded.values()) == {0}


KILLED_FLOW = """
import os
import threading
from aioflow import FlowSpec, current, retry, step


class KilledFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["victim", "bystander"]
        self.next(self.work, foreach="items")

    @retry(times=1)
    @step(executor="dask")
    def work(self):
        self.attempt = current.retry_count
        if self.input == "victim" and current.retry_count == 0:
            print(f"pid {os.getpid()}", flush=True)
            threading.Event().wait(120)  # until the test kills this worker
        self.next(self.join)

    @step
    def join(self, inputs):
        self.attempts = sorted((i.input, i.attempt) for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_a_killed_worker_fails_only_its_task(
    make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    failures: list[TaskFailed] = []

    def listen(event: Event) -> None:
        if isinstance(event, LogLine) and event.line.startswith("pid "):
            os.kill(int(event.line.split()[1]), signal.SIGKILL)  # the worker, mid-task
        if isinstance(event, TaskFailed):
            failures.append(event)

    run = await run_flow(
        make_flow(KILLED_FLOW), root=tmp_path, dask_address=address, quiet=True,
        listeners=[listen],
    )  # fmt: skip
    assert run.successful
    assert run.data.attempts == [("bystander", 0), ("victim", 1)]  # @retry ran it again
    [failure] = failures
    assert failure.exception_type == "WorkerDied" and failure.retrying
    assert failure.message.startswith("The Dask worker tcp://127.0.0.1:")
    assert f"running task {failure.task_id} of step *work* was lost: its process ended" in (
        failure.message
    )


def test_the_example_runs_on_the_cluster(tmp_path: Path, address: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "run", "--dask-address", address, "--points", "2000"],
        cwd=tmp_path,
        env={**os.environ, "AIOFLOW_ROOT": str(tmp_path / "store")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best alpha 0: y = 3.000 x + 1.000" in done.stdout
    assert done.stdout.count("error=") == 5  # each fit's line, with its task's prefix
    assert done.stdout.rstrip().endswith("Done!")


def test_the_command_line_takes_the_address_from_the_environment(
    tmp_path: Path, address: str
) -> None:
    flow = tmp_path / "hello.py"
    flow.write_text(
        "import os\nfrom aioflow import FlowSpec, step\n\n\nclass HelloFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.pid = os.getpid()\n"
        "        print('hello from a worker')\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n"
    )
    done = subprocess.run(
        [*aioflow_command(), "run", str(flow), "--executor", "dask"],
        cwd=tmp_path,
        env={
            **os.environ,
            "AIOFLOW_ROOT": str(tmp_path / "store"),
            "AIOFLOW_DASK_ADDRESS": address,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/start/1] hello from a worker" in done.stdout


# -- @parallel: a gang of N tasks on N workers (issue 11, item 9) -------------------------------


def run_prefix(flow: str, run_id: str) -> str:
    """What the keys of a run's Dask tasks start with (the Dask executor names them so)."""
    return f"aioflow-{flow}-{run_id}-"


async def pending_on_scheduler(client: Client, prefix: str) -> dict[str, str]:
    """The run's tasks the scheduler still has, by key: state (processing, queued, waiting...)."""
    states: dict[str, str] = await client.run_on_scheduler(
        lambda dask_scheduler: {str(k): ts.state for k, ts in dask_scheduler.tasks.items()}
    )
    return {k: v for k, v in states.items() if k.startswith(prefix) and v not in ("memory",)}


async def on_workers(client: Client, prefix: str) -> dict[str, list[str]]:
    """The run's tasks each worker still holds (a cancelled body goes on until it returns)."""
    held: dict[str, list[str]] = await client.run(
        lambda dask_worker: [str(k) for k in dask_worker.state.tasks]
    )
    found = {w: [k for k in keys if k.startswith(prefix)] for w, keys in held.items()}
    return {w: keys for w, keys in found.items() if keys}


async def poll(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Until the coroutine `check()` returns something false (bounded: TimeoutError)."""
    with anyio.fail_after(timeout):
        while left := await check():  # type: ignore[misc]
            await anyio.sleep(0.05)  # polling interval of the cluster's state
    assert not left, what


async def release(folder: Path, address: str, prefix: str) -> None:
    """Let the bodies still running on the workers return, and wait until the workers dropped
    them (the next test finds its workers' threads free)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "release").touch()
    async with Client(address, asynchronous=True) as client:
        await poll(lambda: on_workers(client, prefix), "the workers never let go of the run")


def gang(make_flow: MakeFlow, decorators: str = "") -> type[FlowSpec]:
    return make_flow(gang_flow_source(decorators, '(executor="dask")'))


async def worker_addresses(address: str) -> set[str]:
    async with Client(address, asynchronous=True) as client:
        identity = await client.scheduler.identity()
    return set(identity["workers"])


async def test_a_parallel_step_runs_one_node_per_worker(
    make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    run = await run_flow(
        gang(make_flow), root=tmp_path / "store", dask_address=address, quiet=True,
        folder=str(tmp_path / "meet"), width=2,
    )  # fmt: skip
    # The two nodes met (each waited until both had started), each on a worker of its own.
    where = run["gather"].task.data.where
    assert [index for index, _, _, _ in where] == [0, 1]
    workers = [worker for _, worker, _, _ in where]
    assert len(set(workers)) == 2 and set(workers) == await worker_addresses(address)
    assert os.getpid() not in {pid for _, _, pid, _ in where}
    # current.parallel as Metaflow defines it: main_ip is the address of node 0's host.
    control = next(iter(run["train"].control_tasks()))
    main_ip = re.match(r"tcp://([^:]+):", workers[0])
    assert main_ip is not None
    assert run["gather"].task.data.nodes == [
        (2, 0, main_ip.group(1), control.id), (2, 1, main_ip.group(1), control.id)
    ]  # fmt: skip
    assert control.data.node[1] == 0
    assert len(list(run["gather"].task.parent_tasks)) == 2  # the join saw both


async def test_a_failing_node_fails_its_gang_on_the_cluster(
    make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    meet = tmp_path / "meet"
    with pytest.raises(FlowFailed) as info:
        await run_flow(
            gang(make_flow), root=tmp_path / "store", dask_address=address, quiet=True,
            folder=str(meet), width=2, fail="always", hold=True,
        )  # fmt: skip
    run = info.value.run
    assert run is not None and isinstance(info.value.__cause__, ValueError)
    prefix = run_prefix("GangFlow", run.id)
    try:
        nodes = {t.index: t for t in run["train"]}
        assert info.value.pathspec == nodes[1].pathspec
        assert nodes[1].exception is not None
        assert nodes[1].exception.type == "builtins.ValueError"
        # Node 0 had started (it waited for a release) and was stopped: its Dask task is
        # cancelled, so the scheduler has nothing of the run left to run.
        assert (meet / "attempt-0" / "node-0").exists()
        stopped = nodes[0].exception
        assert stopped is not None and stopped.type == "aioflow.exceptions.ParallelStepFailed"
        assert stopped.exception.endswith("so this one was stopped.")
        assert "gather" not in run
        async with Client(address, asynchronous=True) as client:
            await poll(lambda: pending_on_scheduler(client, prefix), "tasks left on the scheduler")
    finally:
        await release(meet, address, prefix)


async def test_retry_runs_the_gang_again_on_the_workers(
    make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    run = await run_flow(
        gang(make_flow, "    @retry(times=1)\n"), root=tmp_path / "store", dask_address=address,
        quiet=True, folder=str(tmp_path / "meet"), width=2, fail="first",
    )  # fmt: skip
    where = run["gather"].task.data.where
    assert [(index, attempt) for index, _, _, attempt in where] == [(0, 1), (1, 1)]
    assert len({worker for _, worker, _, _ in where}) == 2
    first = {t.index: Task(t.pathspec, attempt=0, root=tmp_path / "store") for t in run["train"]}
    assert first[1].exception is not None and first[1].exception.type == "builtins.ValueError"
    assert first[0].status == "failed"
    assert first[0].exception is not None
    assert first[0].exception.type == "aioflow.exceptions.ParallelStepFailed"


async def test_more_nodes_than_workers_is_an_error(
    make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_flow(
            gang(make_flow), root=tmp_path / "store", dask_address=address, quiet=True,
            folder=str(tmp_path / "meet"), width=3,
        )  # fmt: skip
    cause = info.value.__cause__
    assert isinstance(cause, ClusterError)
    assert str(cause).startswith(
        "Step *train* asks for 3 parallel tasks (num_parallel), each on a Dask worker of its "
        "own, but the cluster has 2 worker(s) (tcp://127.0.0.1:"
    )
    assert str(cause).endswith("Start more workers, or lower num_parallel.")
    assert not (tmp_path / "meet").exists()  # no node ran


# -- Ctrl-C and cancellation reach the cluster (issue 15) -------------------------------------

BLOCKED_FLOW = """
import time
from pathlib import Path
from aioflow import FlowSpec, Parameter, step


class BlockedFlow(FlowSpec):
    folder = Parameter("folder")

    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.wait, foreach="items")

    @step(executor="dask")
    def wait(self):
        Path(self.folder, f"started-{self.input}").touch()
        deadline = time.monotonic() + 120
        while not Path(self.folder, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # a body that waits for something that does not come
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def both_running(client: Client, folder: Path, prefix: str) -> bool:
    """True once both bodies started on the workers and the scheduler has both processing."""
    started = all((folder / f"started-{n}").exists() for n in (0, 1))
    states = await pending_on_scheduler(client, prefix)
    return started and sorted(states.values()) == ["processing", "processing"]


async def wait_until_running(address: str, folder: Path, prefix: str) -> None:
    async with Client(address, asynchronous=True) as client:
        with anyio.fail_after(60):
            while not await both_running(client, folder, prefix):
                await anyio.sleep(0.05)  # polling interval of the cluster's state


async def test_ctrl_c_cancels_the_runs_tasks_on_the_cluster(tmp_path: Path, address: str) -> None:
    flow = tmp_path / "blocked.py"
    flow.write_text(BLOCKED_FLOW)
    folder = tmp_path / "meet"
    folder.mkdir()
    store = tmp_path / "store"
    process = subprocess.Popen(
        [*aioflow_command(), "run", str(flow), "--dask-address", address, "--folder", str(folder),
         "--run-id-file", str(tmp_path / "run-id")],
        cwd=tmp_path, env={**os.environ, "AIOFLOW_ROOT": str(store)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    prefix = run_prefix("BlockedFlow", "1")
    try:
        await wait_until_running(address, folder, prefix)
        process.send_signal(signal.SIGINT)
        output, _ = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=60))
        assert process.returncode == 130, output
        async with Client(address, asynchronous=True) as client:
            await poll(lambda: pending_on_scheduler(client, prefix), "tasks left on the scheduler")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        await release(folder, address, prefix)
    run_id = (tmp_path / "run-id").read_text().strip()
    assert run_id == "1"
    assert "Run BlockedFlow/1 was cancelled. Resume it with:" in output
    assert f"aioflow resume {flow} --origin-run-id 1" in output
    run = Run("BlockedFlow/1", root=store)
    assert run.status == "cancelled"
    assert {t.status for t in run["wait"]} == {"cancelled"}


async def test_cancelling_run_flow_cancels_its_tasks_on_the_cluster(
    make_flow: MakeFlow, tmp_path: Path, address: str
) -> None:
    folder = tmp_path / "meet"
    folder.mkdir()
    store = tmp_path / "store"
    started: list[str] = []

    def listen(event: Event) -> None:
        if isinstance(event, RunStarted):
            started.append(event.run_id)

    flow = make_flow(BLOCKED_FLOW)
    prefix = run_prefix("BlockedFlow", "1")
    # The caller's client stays connected after the run, so its going away cannot be what
    # takes the run's tasks off the scheduler: the run's cancelled attempts let go of them.
    async with Client(address, asynchronous=True) as client:
        running = asyncio.ensure_future(
            run_flow(flow, root=store, dask_client=client, listeners=[listen], folder=str(folder))
        )
        try:
            await wait_until_running(address, folder, prefix)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            assert client.status == "running"
            await poll(lambda: pending_on_scheduler(client, prefix), "tasks left on the scheduler")
            assert [key for key in client.futures if str(key).startswith(prefix)] == []
        finally:
            if not running.done():
                running.cancel()
            await release(folder, address, prefix)
    assert started == ["1"]
    run = Run("BlockedFlow/1", root=store)
    assert run.status == "cancelled"
    assert {t.status for t in run["wait"]} == {"cancelled"}
