"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio


def aioflow_command() -> list[str]:
    """The argv prefix that runs the `aioflow` console script of this interpreter's environment.

    The script beside `sys.executable` comes first, so the suite works in a virtualenv that was
    not activated; without a script (an install that skipped it), `python -m aioflow`.
    """
    beside = Path(sys.executable).with_name("aioflow")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("aioflow")
    return [found] if found else [sys.executable, "-m", "aioflow"]


def env_without_valgrind() -> dict[str, str]:
    """This environment with PATH holding only this Python's folder: valgrind is not found, as
    on a machine without Debian's valgrind package."""
    return {**os.environ, "PATH": str(Path(sys.executable).parent)}


@contextmanager
def local_dask_cluster(threads_per_worker: int, **kwargs: Any) -> Iterator[str]:
    """A Dask cluster of two workers in this process (`LocalCluster(processes=False)`), reached
    over TCP on 127.0.0.1; yields the scheduler's address. Its dashboard listens on loopback
    too, on a free port: 8787 may be another Dask's. `kwargs` go to `LocalCluster`."""
    from distributed import LocalCluster

    from aioflow.runtime.executors.dask_cluster import quiet_dask_logs

    quiet_dask_logs()
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=threads_per_worker,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        **kwargs,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


class Gate:
    """An event set from any thread, awaited on the loop or waited for in a worker thread.

    Made on the loop (it remembers the loop to wake); `timeout` bounds every wait, so a test
    whose other side never comes fails instead of hanging.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._async = anyio.Event()
        self._sync = threading.Event()
        self._timeout = timeout

    def set(self) -> None:
        self._sync.set()
        if threading.get_ident() == self._loop_thread:
            self._async.set()
        else:
            self._loop.call_soon_threadsafe(self._async.set)

    def is_set(self) -> bool:
        return self._sync.is_set()

    async def wait(self) -> None:
        with anyio.fail_after(self._timeout):
            await self._async.wait()

    def wait_sync(self) -> None:
        if not self._sync.wait(self._timeout):
            raise TimeoutError("gate never opened")


def record_task_requests(monkeypatch: Any, module: Any) -> list[Any]:
    """The TaskRequests an executor module builds (`module.task_request`) from now on, in a
    list that grows as it builds them."""
    requests: list[Any] = []
    real = module.task_request

    def recording(*args: Any) -> Any:
        request = real(*args)
        requests.append(request)
        return request

    monkeypatch.setattr(module, "task_request", recording)
    return requests


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the `aioflow` command in this process: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from aioflow.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def wait_for_marker(folder: str, name: str, timeout: float = 30.0) -> str:
    """Wait until marker file `name` (another process or thread writes it) exists in `folder`
    and return its text; TimeoutError at the deadline. A writer whose text is read must write
    it under another name and rename it: a file appears before what is written to it."""
    path = Path(folder) / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"marker {name!r} never appeared in {folder}")
        time.sleep(0.005)  # polling interval of the file, not a synchronisation delay
    return path.read_text()


def gang_flow_source(decorators: str = "", executor: str = "") -> str:
    """GANG_FLOW with `decorators` (lines) above its @parallel step and `executor` as @step's
    arguments (such as `(executor="dask")`)."""
    return GANG_FLOW.replace("{decorators}", decorators).replace("{executor}", executor)


#: A flow with a @parallel step, for tests of gangs on any executor (see gang_flow_source). Its
#: N nodes meet (each waits, bounded, until all N started: they must run at the same time), and
#: record where they ran. With `fail`, node 1 raises ("always", or "first" for its first attempt
#: only). With `hold` too, node 1 raises only once every node of that attempt started its body,
#: and the others wait for a `release` file instead of meeting (a test creates it once done, to
#: free what could not be stopped): so they are stopped in their bodies, whatever the timing.
GANG_FLOW = """
import os
import time
from pathlib import Path

from aioflow import FlowSpec, Parameter, catch, current, parallel, retry, step


def _worker():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not on a Dask worker
        return None


def _wait(done, what):
    deadline = time.monotonic() + 60
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


class GangFlow(FlowSpec):
    folder = Parameter("folder", help="Where the nodes meet")
    width = Parameter("width", default=3)
    fail = Parameter("fail", default="")
    hold = Parameter("hold", default=False)

    @step
    def start(self):
        self.next(self.train, num_parallel=self.width)

{decorators}    @parallel
    @step{executor}
    def train(self):
        info = current.parallel
        self.node = (info.num_nodes, info.node_index, info.main_ip, info.control_task_id)
        self.attempt = current.retry_count
        self.pid = os.getpid()
        self.worker = _worker()
        here = Path(self.folder, f"attempt-{self.attempt}")
        here.mkdir(parents=True, exist_ok=True)
        (here / f"node-{info.node_index}").touch()

        def met():  # every node of this attempt started its body
            return len(list(here.iterdir())) == info.num_nodes

        failing = self.fail == "always" or (self.fail == "first" and self.attempt == 0)
        if failing and info.node_index == 1:
            if self.hold:  # the others reach their bodies first: they are stopped in them
                _wait(met, "the nodes never met")
            raise ValueError("node 1 broke")
        if failing and self.hold:
            _wait(Path(self.folder, "release").exists, "never released")
        else:
            _wait(met, "the nodes never met")
        self.next(self.gather)

    @step
    def gather(self, inputs):
        ran = [i for i in inputs if "node" in i.artifact_names()]  # (a stopped node has none)
        self.nodes = sorted(i.node for i in ran)
        self.where = sorted((i.node[1], i.worker, i.pid, i.attempt) for i in ran)
        self.errors = [(i.index, i.error.type if "error" in i.artifact_names() else None)
                       for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""
