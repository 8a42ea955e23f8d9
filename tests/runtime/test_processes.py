"""The process executor: steps run in a run's pool of worker processes.

Covers `@step(executor="process")` on sync and async steps, `executor="process"` as the default
for sync steps (run_flow and `--executor`), `@environment` steps, every way a flow class reaches a
worker (by name from an importable module, by value from a flow file, `__main__`, a notebook cell
or a test function; with the parent's graph, so a worker never reads the steps' source),
tracebacks of by-value steps, artifacts in both directions (large ones written by the worker,
small uncommitted ones inline), logs, exceptions, and the pool being reused. Workers take ~0.3 s
to start, so one run of `ProcFlow` is shared by several tests.
"""

from __future__ import annotations

import asyncio
import importlib
import linecache
import os
import re
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import Flow, FlowFailed, FlowSpec, Parameter, current, run_flow, run_flow_sync, step
from aioflow.client import Run, Task
from aioflow.events import Event, LogLine
from aioflow.exceptions import FlowDefinitionError, ParameterError, RemoteTaskError
from aioflow.loader import load_flow
from aioflow.runtime.executors import process as process_executor
from aioflow.runtime.graphs import linted_graph
from aioflow.runtime.processes import pickle_flow
from aioflow.store import SMALL, Store
from aioflow.store.keys import is_identity
from aioflow.store.writer import BatchWriter
from aioflow.testing import run_in_temp_store
from tests.helpers import aioflow_command, record_task_requests

pytestmark = pytest.mark.timeout(90)

BIG = bytes(range(256)) * 1200  # 307,200 bytes: over the 256 KiB limit of database blobs
assert len(BIG) > SMALL


def blob_keys(run: Run, step_name: str, artifact: str) -> list[str]:
    return [task.manifest[artifact] for task in run[step_name]]


def run_sub(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)


def latest_run(flow_name: str, root: Path) -> Run:
    run = Flow(flow_name, _store=Store(root)).latest_run
    assert run is not None
    return run


# -- one shared run: foreach over process steps, a process join, artifacts both ways ----------


class ProcFlow(FlowSpec):
    """start (thread) -> square (process, foreach) -> gather (async, process) -> end (thread)."""

    n = Parameter("n", default=12)

    @step
    def start(self):
        self.parent_pid = os.getpid()
        self.small = {"a": 1}
        self.big_in = BIG
        self.items = list(range(self.n))
        self.next(self.square, foreach="items")

    @step(executor="process")
    def square(self):
        self.pid = os.getpid()
        self.thread_name = threading.current_thread().name
        self.sq = self.input * self.input
        self.big_ok = self.big_in == BIG
        self.small_seen = self.small["a"]
        self.retry = current.retry_count
        self.pathspec = current.pathspec
        self.big_out = bytes([self.input]) * (300 * 1024)
        print(f"square {self.input} -> {self.sq}")
        print(f"warn {self.input}", file=sys.stderr)
        self.next(self.gather)

    @step(executor="process")
    async def gather(self, inputs):
        await asyncio.sleep(0)
        self.pid = os.getpid()
        self.had_loop = asyncio.get_running_loop() is not None
        self.squares = [i.sq for i in inputs]
        self.first_bytes = [i.big_out[0] for i in inputs]
        self.sizes = sorted({len(i.big_out) for i in inputs})
        self.square_pids = sorted({i.pid for i in inputs})
        self.small = {"a": 2}
        self.merge_artifacts(inputs, include=["big_in"])
        self.next(self.end)

    @step
    def end(self):
        self.end_pid = os.getpid()
        self.total = sum(self.squares)
        self.small_now = self.small["a"]
        self.big_back = self.big_in == BIG


class Shared:
    run: Run
    root: Path
    events: list[Event]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    result = Shared()
    result.root = tmp_path_factory.mktemp("procflow") / "store"
    result.events = []
    # max_workers=2 caps the process pool at two workers whatever the machine's core count.
    result.run = run_flow_sync(
        ProcFlow, root=result.root, quiet=True, max_workers=2, listeners=[result.events.append]
    )
    return result


def test_process_steps_run_in_workers_and_artifacts_flow_both_ways(shared: Shared) -> None:
    run = shared.run
    assert run.successful
    parent = run["start"].task.data.parent_pid
    assert parent == os.getpid()
    tasks = sorted(run["square"], key=lambda t: t.index)
    assert [t.index for t in tasks] == list(range(12))
    for task in tasks:
        data = task.data
        assert data.pid != parent
        assert data.thread_name == "MainThread"  # the worker's own thread, not a lane thread
        assert data.sq == task.index**2
        assert data.big_ok is True and data.small_seen == 1
        assert data.retry == 0
        assert data.pathspec == task.pathspec
    gather = run["gather"].task.data
    assert gather.pid != parent and gather.had_loop is True
    assert gather.squares == [i * i for i in range(12)]
    assert gather.first_bytes == list(range(12))
    assert gather.sizes == [300 * 1024]
    end = run["end"].task.data
    assert end.end_pid == parent  # a plain sync step still runs in a thread of the parent
    assert end.total == sum(i * i for i in range(12))
    assert end.small_now == 2 and end.big_back is True


def test_the_pool_is_started_once_and_reused(shared: Shared) -> None:
    run = shared.run
    square_pids = {t.data.pid for t in run["square"]}
    # Twelve tasks, at most two workers (max_workers=2): every worker ran several tasks.
    assert 1 <= len(square_pids) <= 2
    assert run["gather"].task.data.pid in square_pids
    assert run["gather"].task.data.square_pids == sorted(square_pids)


def test_large_artifacts_are_written_by_the_worker_into_the_blob_store(shared: Shared) -> None:
    store = Store(shared.root)
    keys = blob_keys(shared.run, "square", "big_out")
    assert len(set(keys)) == 12
    for key in keys:
        assert store.db.get_blob(key) is None  # not in the database: a file in blobs/
        assert store.blobs.has(key)
        assert store.blobs.size(key) > SMALL
    by_index = {t.index: t.data.big_out for t in shared.run["square"]}
    assert by_index[5] == bytes([5]) * (300 * 1024)
    # The parent's large artifact was read by the workers from the same store, not re-sent.
    big_in = shared.run["start"].task.manifest["big_in"]
    assert store.blobs.has(big_in)
    assert {t.manifest["big_in"] for t in shared.run["square"]} == {big_in}


def test_logs_of_process_tasks_are_captured(shared: Shared) -> None:
    tasks = {t.index: t for t in shared.run["square"]}
    assert tasks[3].stdout == "square 3 -> 9\n"
    assert tasks[3].stderr == "warn 3\n"
    assert tasks[11].stdout == "square 11 -> 121\n"
    lines = [e for e in shared.events if isinstance(e, LogLine)]
    printed = {(e.pathspec, e.stream, e.line) for e in lines}
    for index, task in tasks.items():
        assert (task.pathspec, "stdout", f"square {index} -> {index * index}") in printed
        assert (task.pathspec, "stderr", f"warn {index}") in printed


# -- executor="process" as the default ------------------------------------------------------


class DefaultExecutorFlow(FlowSpec):
    @step
    async def start(self):
        self.loop_pid = os.getpid()
        self.next(self.work)

    @step
    def work(self):
        self.pid = os.getpid()
        self.next(self.end)

    @step(executor="thread")
    def end(self):
        self.end_pid = os.getpid()


async def test_executor_process_default_via_run_flow(aioflow_root: Path) -> None:
    run = await run_flow(DefaultExecutorFlow, root=aioflow_root, quiet=True, executor="process")
    assert run["start"].task.data.loop_pid == os.getpid()  # async steps stay on the loop
    assert run["work"].task.data.pid != os.getpid()  # a plain sync step goes to the pool
    assert run["end"].task.data.end_pid == os.getpid()  # an explicit executor wins

    run = await run_flow(DefaultExecutorFlow, root=aioflow_root, quiet=True)
    assert run["work"].task.data.pid == os.getpid()  # the default default is a thread


async def test_an_unknown_executor_is_refused(aioflow_root: Path) -> None:
    with pytest.raises(
        ParameterError, match="keyword argument 'executor': 'gpu' is not one of thread, process"
    ):
        await run_flow(DefaultExecutorFlow, root=aioflow_root, quiet=True, executor="gpu")
    with pytest.raises(FlowDefinitionError, match="the executor is one of thread, process"):
        step(executor="gpu")(lambda self: None)


# -- the ways a flow class reaches a worker ----------------------------------------------------

CLI_FLOW = """
import os
import sys

from aioflow import FlowSpec, environment, step


class CliProcFlow(FlowSpec):
    @step
    async def start(self):
        self.loop_pid = os.getpid()
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.pid = os.getpid()
        self.by_name = "cliprocflow" in sys.modules
        self.sq = self.input ** 2
        print("square", self.input)
        self.next(self.join)

    @step(executor="process")
    def join(self, inputs):
        self.pid = os.getpid()
        self.squares = [i.sq for i in inputs]
        self.next(self.configured)

    @environment(vars={"CLI_PROC_ENV": "set"})
    @step
    def configured(self):
        self.pid = os.getpid()
        self.env_value = os.environ.get("CLI_PROC_ENV")
        self.next(self.end)

    @step
    async def end(self):
        self.end_pid = os.getpid()


if __name__ == "__main__":
    CliProcFlow()
"""


def assert_ran_with_environment(task: Task, parent_pid: int) -> None:
    """The task of `configured` ran in a worker, with its @environment variable set."""
    assert task.data.pid != parent_pid
    assert task.data.env_value == "set"


def test_aioflow_run_with_executor_process(
    aioflow_root: Path, write_flow: Callable[..., Path]
) -> None:
    path = write_flow(CLI_FLOW, name="cliprocflow.py")
    proc = run_sub([*aioflow_command(), "run", str(path), "--executor", "process"], path.parent)
    assert proc.returncode == 0, proc.stderr
    run = latest_run("CliProcFlow", aioflow_root)
    assert run.successful
    loop_pid = run["start"].task.data.loop_pid
    assert run["end"].task.data.end_pid == loop_pid
    squares = list(run["square"])
    assert len(squares) == 3
    for task in squares:
        assert task.data.pid != loop_pid  # --executor process: sync steps in workers
        assert task.data.by_name is False  # a flow file's class travels by value
        assert task.stdout == f"square {task.index + 1}\n"
    assert run["join"].task.data.pid != loop_pid
    assert run["join"].task.data.squares == [1, 4, 9]
    assert_ran_with_environment(run["configured"].task, loop_pid)
    assert re.search(rf"\[{run.id}/square/\d+\] square 2\n", proc.stdout)


def test_python_flow_py_run(aioflow_root: Path, write_flow: Callable[..., Path]) -> None:
    path = write_flow(CLI_FLOW, name="cliprocflow.py")
    proc = run_sub([sys.executable, str(path), "run", "--quiet"], path.parent)
    assert proc.returncode == 0, proc.stderr
    run = latest_run("CliProcFlow", aioflow_root)
    loop_pid = run["start"].task.data.loop_pid
    # The default executor is the thread: only the explicitly marked join went to a worker.
    assert {t.data.pid for t in run["square"]} == {loop_pid}
    assert run["join"].task.data.pid != loop_pid
    assert run["join"].task.data.squares == [1, 4, 9]
    assert_ran_with_environment(run["configured"].task, loop_pid)


SCRIPT = """
import os

from aioflow import FlowSpec, environment, run_flow_sync, step


def double(x):
    return 2 * x


class ScriptFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step(executor="process")
    def work(self):
        self.pid = os.getpid()
        self.double = double(self.input)
        self.next(self.join)

    @environment(vars={"SCRIPT_ENV": "set"})
    @step
    def join(self, inputs):
        self.doubles = [i.double for i in inputs]
        self.pids = [i.pid for i in inputs] + [os.getpid()]
        self.env_value = os.environ.get("SCRIPT_ENV")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    run = run_flow_sync(ScriptFlow, quiet=True)
    data = run["join"].task.data
    print("RESULT", data.doubles, os.getpid() not in data.pids, data.env_value)
"""


def test_a_class_in_main_of_a_script_that_calls_run_flow_sync(
    aioflow_root: Path, write_flow: Callable[..., Path]
) -> None:
    path = write_flow(SCRIPT, name="script.py")
    proc = run_sub([sys.executable, str(path)], path.parent)
    assert proc.returncode == 0, proc.stderr
    assert "RESULT [2, 4, 6] True set" in proc.stdout


MODULE_FLOW = """
import os
import sys

from aioflow import FlowSpec, step


class ModuleFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step(executor="process")
    def work(self):
        self.pid = os.getpid()
        self.by_name = "{name}" in sys.modules
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_run_flow_with_a_class_from_an_importable_module(
    aioflow_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"procmod_{os.getpid()}_{id(tmp_path)}"
    package = tmp_path / "pkg"
    package.mkdir()
    (package / f"{name}.py").write_text(MODULE_FLOW.replace("{name}", name))
    monkeypatch.syspath_prepend(str(package))
    module = importlib.import_module(name)
    try:
        # An importable class travels by name, its steps too: the payload holds none of their
        # code (such as the names the code calls).
        payload = pickle_flow(module.ModuleFlow, linted_graph(module.ModuleFlow))
        assert name.encode() in payload and b"getpid" not in payload
        run = await run_in_temp_store(module.ModuleFlow, aioflow_root)
    finally:
        del sys.modules[name]
    data = run["work"].task.data
    assert data.pid != os.getpid()
    assert data.by_name is True  # the worker imported the module by its name


async def test_a_class_defined_in_a_test_function_travels_by_value(aioflow_root: Path) -> None:
    factor = 7  # a closure variable: it can only reach the worker with the class's code

    class LocalFlow(FlowSpec):
        @step
        def start(self):
            self.items = [1, 2]
            self.next(self.work, foreach="items")

        @step(executor="process")
        def work(self):
            self.pid = os.getpid()
            self.value = self.input * factor
            self.next(self.join)

        @step(executor="process")
        def join(self, inputs):
            self.values = [i.value for i in inputs]
            self.next(self.end)

        @step
        def end(self):
            pass

    run = await run_in_temp_store(LocalFlow, aioflow_root)
    assert run["join"].task.data.values == [7, 14]
    assert all(t.data.pid != os.getpid() for t in run["work"])


CELL = """
import os

from aioflow import FlowSpec, Parameter, environment, step


class CellFlow(FlowSpec):
    fail = Parameter("fail", default=False)

    @step
    def start(self):
        self.next(self.work)

    @step(executor="process")
    def work(self):
        self.pid = os.getpid()
        if self.fail:
            raise ValueError("failed in a cell")
        self.answer = helper()
        self.next(self.configured)

    @environment(vars={"CELL_ENV": "set"})
    @step
    def configured(self):
        self.pid = os.getpid()
        self.env_value = os.environ.get("CELL_ENV")
        self.next(self.end)

    @step
    def end(self):
        pass


def helper():
    return 42
"""


@pytest.fixture
def notebook_cell(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Run CELL as Jupyter runs a cell: in a `__main__` with no file, its source in linecache."""
    main = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    filename = f"/nonexistent/ipykernel_{os.getpid()}/{id(CELL)}.py"
    source = textwrap.dedent(CELL)
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    exec(compile(source, filename, "exec"), main.__dict__)
    yield main.__dict__
    linecache.cache.pop(filename, None)


async def test_a_class_defined_in_a_notebook_cell(
    aioflow_root: Path, notebook_cell: dict[str, Any]
) -> None:
    flow_cls = notebook_cell["CellFlow"]
    assert flow_cls.__module__ == "__main__"
    run = await run_in_temp_store(flow_cls, aioflow_root)
    data = run["work"].task.data
    assert data.pid != os.getpid()
    assert data.answer == 42
    assert_ran_with_environment(run["configured"].task, os.getpid())


async def test_a_failing_step_of_a_notebook_cell_shows_its_lines(
    aioflow_root: Path, notebook_cell: dict[str, Any]
) -> None:
    flow_cls = notebook_cell["CellFlow"]
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(flow_cls, aioflow_root, fail=True)
    trace = info.value.run["work"].task.exception.stacktrace
    # The cell's lines travel with the worker's setup: the worker has no file to read them.
    assert f'File "{flow_cls.work.__code__.co_filename}", line ' in trace
    assert 'raise ValueError("failed in a cell")' in trace


async def test_a_failing_step_sent_by_value_shows_its_file_and_line(aioflow_root: Path) -> None:
    class LocalFailFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.work)

        @step(executor="process")
        def work(self):
            raise PlannedError("sent by value")
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(LocalFailFlow, aioflow_root)
    trace = info.value.run["work"].task.exception.stacktrace
    # cloudpickle 3.1.3 names the file of code it sends by value "<dynamic-code>"; aioflow
    # keeps the real name, so the worker's traceback shows where the step failed.
    assert f'File "{__file__}", line ' in trace
    assert 'raise PlannedError("sent by value")' in trace


async def test_a_failing_process_step_reports_its_traceback_once(aioflow_root: Path) -> None:
    # The worker's stored stderr ends with the traceback; only TaskFailed may carry it to
    # listeners, or the console prints it twice.
    class TwiceFailFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.work)

        @step(executor="process")
        def work(self):
            print("before the failure", file=sys.stderr)
            raise PlannedError("reported once")
            self.next(self.end)

        @step
        def end(self):
            pass

    events: list[Event] = []
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(TwiceFailFlow, aioflow_root, listeners=[events.append])
    printed = [e.line for e in events if isinstance(e, LogLine)]
    assert printed == ["before the failure"]
    stored = info.value.run["work"].task.stderr
    assert stored.startswith("before the failure\nTraceback (most recent call last):")


VANISHING_FLOW = """
import linecache
import os

from aioflow import FlowSpec, environment, step


class VanishingFlow(FlowSpec):
    @step
    def start(self):
        # Deleted (and forgotten by linecache) before any worker starts: from now on, no
        # process can read the source of the steps.
        os.remove(__file__)
        linecache.checkcache(__file__)
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @step(executor="process")
    def square(self):
        self.pid = os.getpid()
        self.sq = self.input ** 2
        self.next(self.join)

    @environment(vars={"VANISHING_ENV": "set"})
    @step
    def join(self, inputs):
        self.pid = os.getpid()
        self.squares = [i.sq for i in inputs]
        self.env_value = os.environ.get("VANISHING_ENV")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


async def test_workers_run_steps_whose_source_they_cannot_read(
    aioflow_root: Path, write_flow: Callable[..., Path]
) -> None:
    path = write_flow(VANISHING_FLOW)
    flow_cls = load_flow(path)
    # A worker uses the graph the parent built and linted: it never reads the steps' source.
    run = await run_in_temp_store(flow_cls, aioflow_root)
    assert not path.exists()
    squares = list(run["square"])
    assert sorted(t.data.sq for t in squares) == [1, 4, 9]
    assert all(t.data.pid != os.getpid() for t in squares)
    join = run["join"].task
    assert join.data.squares == [1, 4, 9]
    assert_ran_with_environment(join, os.getpid())


async def test_a_worker_that_cannot_load_the_flow_fails_the_task_clearly(
    aioflow_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importable here, but not in the worker: its folder left sys.path after the import.
    name = f"goneaway_{os.getpid()}_{id(tmp_path)}"
    package = tmp_path / "gone"
    package.mkdir()
    (package / f"{name}.py").write_text(MODULE_FLOW.replace("{name}", name))
    monkeypatch.syspath_prepend(str(package))
    module = importlib.import_module(name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(package)])
    # The step never ran: neither a retry (it would fail the same way) nor @catch applies.
    specs = ["retry:times=2,minutes_between_retries=0", "catch:var=err"]
    try:
        with pytest.raises(FlowFailed) as info:
            await run_in_temp_store(module.ModuleFlow, aioflow_root, with_decorators=specs)
    finally:
        del sys.modules[name]
    message = str(info.value.__cause__)
    assert message == (
        "The worker process for task 2 of step *work* could not load the flow ModuleFlow: "
        f"ModuleNotFoundError: No module named '{name}'"
    )
    run = info.value.run
    assert run.status == "failed"
    task = run["work"].task
    assert task.exception.type == "aioflow.exceptions.WorkerSetupError"
    assert len(Store(aioflow_root).db.task_attempts(int(run.id), "work")) == 1


# -- small blobs the parent has not committed travel inline ---------------------------------


class InlineFlow(FlowSpec):
    store = Parameter("store", default="")

    @step
    def start(self):
        self.numbers = [1, 2, 3]
        self.next(self.first)

    @step(executor="process")
    def first(self):
        # Nothing of this run is in the database yet: the inputs came with the request.
        self.committed = len(Store(self.store).db.task_attempts(int(current.run_id)))
        self.total = sum(self.numbers)
        self.next(self.second)

    @step(executor="process")
    def second(self):
        self.committed = len(Store(self.store).db.task_attempts(int(current.run_id)))
        self.doubled = 2 * self.total  # written by the first worker task, still uncommitted
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_small_uncommitted_blobs_travel_inline(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def commit_only_at_the_end(self: BatchWriter, on_error: Any) -> None:
        while not self._closing.is_set():  # the run's final flush (in the runner) commits
            await self._wakeup.wait()
            self._wakeup = anyio.Event()

    monkeypatch.setattr(BatchWriter, "run", commit_only_at_the_end)
    run = await run_in_temp_store(InlineFlow, aioflow_root, store=str(aioflow_root))
    assert run["first"].task.data.committed == 0
    assert run["first"].task.data.total == 6
    assert run["second"].task.data.committed == 0
    assert run["second"].task.data.doubled == 12


class IdentityKeyFlow(FlowSpec):
    @step
    def start(self):
        self.small = 7  # a blob of two bytes: its key holds it, nothing stores it
        self.items = ["p", "q"]
        self.next(self.work, foreach="items")

    @step(executor="process")
    def work(self):
        # Neither the request (it carries uncommitted stored blobs) nor the store holds these:
        # the worker decodes them from their keys.
        self.seen = f"{self.input}{self.small}"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = sorted(i.seen for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_process_task_reads_identity_keyed_inputs(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = record_task_requests(monkeypatch, process_executor)
    run = await run_in_temp_store(IdentityKeyFlow, aioflow_root)
    assert run["join"].task.data.seen == ["p7", "q7"]
    start = run["start"].task
    assert is_identity(start.manifest["small"])
    item_keys = {frame[5] for request in requests for frame in request.frames}
    assert len(requests) == 2 and len(item_keys) == 2 and all(map(is_identity, item_keys))
    for request in requests:
        assert not set(request.inline) & (item_keys | {start.manifest["small"]})
    for task in run["work"]:
        assert is_identity(task.manifest["seen"])  # written by the worker, as a key too


# -- exceptions from process steps ----------------------------------------------------------


class PlannedError(Exception):
    pass


class Unpicklable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class RaiseFlow(FlowSpec):
    kind = Parameter("kind", default="planned")

    @step
    def start(self):
        self.next(self.work)

    @step(executor="process")
    def work(self):
        self.before = "set before the failure"
        print("about to fail")
        if self.kind == "planned":
            raise PlannedError(f"planned failure in {current.step_name}")
        raise Unpicklable("holds a lock")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_an_exception_in_a_process_step(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(RaiseFlow, aioflow_root)
    failed = info.value
    cause = failed.__cause__
    assert type(cause).__name__ == "PlannedError"
    assert str(cause) == "planned failure in work"
    assert failed.pathspec is not None and failed.pathspec.endswith("/work/2")
    assert "PlannedError: planned failure in work" in str(failed)
    task = failed.run["work"].task
    assert not task.successful
    assert task.exception.type.endswith(".PlannedError")
    assert task.exception.exception == "planned failure in work"
    trace = task.exception.stacktrace
    assert 'raise PlannedError(f"planned failure in {current.step_name}")' in trace
    assert __file__ in trace and "in work" in trace
    assert "aioflow/runtime" not in trace  # only the user's frames
    assert task.stdout == "about to fail\n"
    assert "PlannedError: planned failure in work" in task.stderr
    assert task.data.before == "set before the failure"  # stored although the step failed
    assert failed.run.status == "failed"


async def test_an_unpicklable_exception_in_a_process_step(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(RaiseFlow, aioflow_root, kind="unpicklable")
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTaskError)
    assert str(cause).endswith("Unpicklable: holds a lock")
    task = info.value.run["work"].task
    assert task.exception.type.endswith(".Unpicklable")
    assert task.exception.exception == "holds a lock"
    assert 'raise Unpicklable("holds a lock")' in task.exception.stacktrace
