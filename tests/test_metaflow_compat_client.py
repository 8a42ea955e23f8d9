"""Metaflow parity, round 2 (issue 11), items 5, 6, 12 and 14, checked against what Metaflow's
documentation says its API does (the expectations below are written from the docs, not from
Metaflow's code):

- 5: the client's module-level functions `metadata`, `get_metadata`, `default_metadata` (and
  the namespace ones) exist, answer `local@<path>` for the local store, and switch the store
  the client reads, through the same mechanism as `set_root`;
- 6: Metaflow's module paths (`aioflow.exception`, `aioflow.metaflow_current`,
  `aioflow.client`), and a Metaflow flow file run unmodified (`--metaflow-imports`,
  `load_flow(..., metaflow_imports=True)`) without touching an installed Metaflow;
- 12: `_namespace_check=False` on every client object, `Step.parent_steps`/`child_steps`,
  `current.run`/`current.task` (client objects that pickle), the instance's `_current_step`;
- 14: `Runner` and `NBRunner` with `ExecutingRun`'s `run`, `status`, `returncode`, `stdout`,
  `stderr`, `wait()` and `stream_log()`, in-process.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.resources
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import aioflow
from aioflow import (
    DataArtifact,
    Flow,
    FlowSpec,
    NBRunner,
    Run,
    Runner,
    Step,
    Task,
    current,
    scoped_namespace,
    set_root,
    step,
)
from aioflow.exceptions import FlowDefinitionError, ParameterError, StoreError
from aioflow.loader import load_flow
from tests.helpers import invoke


@pytest.fixture(autouse=True)
def _default_store_after() -> Iterator[None]:
    # `metadata()` and `set_root()` switch the store for the rest of the context, as Metaflow's
    # switch it for the process: go back to the default one after each test.
    yield
    set_root(None)


# -- flows --------------------------------------------------------------------------------------

LINEAR = """
from aioflow import FlowSpec, Parameter, step


class LinearFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        print("alpha is", self.alpha)
        self.x = self.alpha * 2
        self.next(self.end)

    @step
    def end(self):
        if self.alpha < 0:
            raise ValueError("alpha is negative")
"""

# A flow file as written for Metaflow: every import names `metaflow`, at the top, inside a
# step, through a helper module next to it, and with Metaflow's module paths.
METAFLOW_FLOW = """
import metaflow.client as mc
from metaflow import FlowSpec, Parameter, current, step
from metaflow.exception import MetaflowException
from metaflow.metaflow_current import current as current_too

from mf_helper import double


class PortedFlow(FlowSpec):
    alpha = Parameter("alpha", default=2)

    @step
    def start(self):
        from metaflow import get_metadata  # as Metaflow's tutorial 03 imports it

        self.meta = get_metadata()
        self.x = double(self.alpha)
        self.exception_base = MetaflowException.__module__
        self.same_current = current_too is current
        self.has_client = mc.Flow.__module__
        self.next(self.end)

    @step
    def end(self):
        import metaflow

        self.same_flowspec = metaflow.FlowSpec is FlowSpec


if __name__ == "__main__":
    PortedFlow()
"""

HELPER = """
from metaflow import current


def double(x):
    return 2 * x
"""


class CurrentFlow(FlowSpec):
    """Keeps `current.run` and `current.task` as artifacts, and reads `_current_step`."""

    @step
    def start(self):
        self.run_obj = current.run
        self.task_obj = current.task
        self.task_pathspec = current.task.pathspec
        self.step_seen = self._current_step
        self.next(self.middle)

    @step
    def middle(self):
        self.run_back = pickle.loads(pickle.dumps(self.run_obj)).pathspec
        self.step_seen = self._current_step
        self.next(self.end)

    @step
    def end(self):
        pass


class SlowFlow(FlowSpec):
    """A start step that waits for an event nobody sets: it ends only by cancellation."""

    @step
    async def start(self):
        print("waiting")
        await asyncio.Event().wait()
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture
def linear_file(write_flow: Callable[..., Path]) -> Path:
    return write_flow(LINEAR, "linear_flow.py")


@pytest.fixture
def metaflow_file(write_flow: Callable[..., Path]) -> Path:
    write_flow(HELPER, "mf_helper.py")
    return write_flow(METAFLOW_FLOW, "ported_flow.py")


# -- 5: metadata, get_metadata, default_metadata --------------------------------------------------


async def test_get_metadata_names_the_local_store(aioflow_root: Path, flow_runner) -> None:
    # Metaflow: get_metadata() -> "local@<path>" for the local provider.
    await flow_runner(CurrentFlow)
    assert aioflow.get_metadata() == f"local@{aioflow_root}"
    assert aioflow.default_metadata() == f"local@{aioflow_root}"


async def test_metadata_switches_the_store_the_client_reads(
    tmp_path: Path, aioflow_root: Path, flow_runner
) -> None:
    await flow_runner(CurrentFlow)
    other = tmp_path / "project"
    await aioflow.run_flow(CurrentFlow, root=other / ".aioflow", quiet=True)
    await aioflow.run_flow(CurrentFlow, root=other / ".aioflow", quiet=True)

    # Metaflow: local@<path> names the folder holding the store; it returns get_metadata().
    assert aioflow.metadata(f"local@{other}") == f"local@{other / '.aioflow'}"
    assert Flow("CurrentFlow").latest_run.id == "2"
    # a plain path, and the store folder itself, are accepted too
    assert aioflow.metadata(str(aioflow_root)) == f"local@{aioflow_root}"
    assert Flow("CurrentFlow").latest_run.id == "1"
    assert aioflow.metadata(f"local@{other / '.aioflow'}") == f"local@{other / '.aioflow'}"
    # default_metadata() goes back to the default store, "local" too
    assert aioflow.default_metadata() == f"local@{aioflow_root}"
    aioflow.metadata(str(other))
    assert aioflow.metadata("local") == f"local@{aioflow_root}"


def test_metadata_and_set_root_are_one_switch(tmp_path: Path) -> None:
    store = tmp_path / "elsewhere"
    set_root(store)
    assert aioflow.get_metadata() == f"local@{store}"
    project = tmp_path / "project"
    (project / ".aioflow").mkdir(parents=True)
    aioflow.metadata(str(project))
    assert aioflow.get_metadata() == f"local@{project / '.aioflow'}"
    assert set_root(None) == Path(aioflow.get_metadata().removeprefix("local@"))


def test_metadata_refuses_what_aioflow_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="only its own local store"):
        aioflow.metadata("service@https://metadata.example.com")
    with pytest.raises(StoreError, match="only its own local store"):
        aioflow.metadata("https://metadata.example.com")
    with pytest.raises(StoreError, match=r"holds no \.aioflow"):
        aioflow.metadata(f"local@{tmp_path / 'nothing-here'}")


def test_the_client_module_has_metaflows_functions() -> None:
    from aioflow import client

    for name in (
        "namespace",
        "get_namespace",
        "default_namespace",
        "metadata",
        "get_metadata",
        "default_metadata",
    ):
        assert callable(getattr(client, name)), name
        assert getattr(aioflow, name) is getattr(client, name), name


# -- 6: Metaflow's module paths, and Metaflow flow files run unmodified -------------------------


def test_metaflows_module_paths_exist() -> None:
    from aioflow.client import DataArtifact as ClientArtifact
    from aioflow.client import Flow as ClientFlow
    from aioflow.exception import (
        MetaflowException,
        MetaflowInvalidPathspec,
        MetaflowNamespaceMismatch,
        MetaflowNotFound,
    )
    from aioflow.metaflow_current import current as current_again

    assert MetaflowException is aioflow.MetaflowException
    assert MetaflowNotFound is aioflow.MetaflowNotFound
    assert MetaflowNamespaceMismatch is aioflow.MetaflowNamespaceMismatch
    assert MetaflowInvalidPathspec is aioflow.InvalidPathspec
    assert current_again is current
    assert (ClientFlow, ClientArtifact) == (Flow, DataArtifact)


async def test_a_metaflow_flow_file_runs_unmodified(
    metaflow_file: Path, aioflow_root: Path
) -> None:
    flow_cls = load_flow(metaflow_file, metaflow_imports=True)
    run = await aioflow.run_flow(flow_cls, quiet=True, alpha=5)
    start = run["start"].task.data
    assert start.x == 10
    assert start.meta == f"local@{aioflow_root}"  # imported inside the step, at run time
    assert start.exception_base == "aioflow.exceptions"
    assert start.same_current is True
    assert start.has_client == "aioflow.client.flows"
    assert run.data.same_flowspec is True


def test_metaflow_imports_leave_an_installed_metaflow_alone(
    metaflow_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = types.ModuleType("metaflow")
    installed_exception = types.ModuleType("metaflow.exception")
    monkeypatch.setitem(sys.modules, "metaflow", installed)
    monkeypatch.setitem(sys.modules, "metaflow.exception", installed_exception)
    meta_path = list(sys.meta_path)

    flow_cls = load_flow(metaflow_file, metaflow_imports=True)

    assert issubclass(flow_cls, aioflow.FlowSpec)
    assert sys.modules["metaflow"] is installed
    assert sys.modules["metaflow.exception"] is installed_exception
    assert "metaflow.client" not in sys.modules  # the alias made for the file is gone
    assert sys.meta_path == meta_path
    assert not hasattr(sys.modules["aioflow.exception"], "__path__")  # still a plain module


def test_metaflow_imports_leave_aioflows_own_module_specs(metaflow_file: Path) -> None:
    names = ("aioflow", "aioflow.exception")
    specs = {name: importlib.import_module(name).__spec__ for name in names}

    load_flow(metaflow_file, metaflow_imports=True)

    # The import system gave each aliased module the alias's spec: a card with a chart then
    # could not read the package's files (importlib.resources: "Can't open orphan path").
    assert {name: sys.modules[name].__spec__ for name in specs} == specs
    assert (importlib.resources.files("aioflow") / "cards_static" / "README.md").is_file()


def test_without_the_option_a_metaflow_flow_file_needs_metaflow(metaflow_file: Path) -> None:
    with pytest.raises(FlowDefinitionError, match="metaflow"):
        load_flow(metaflow_file)


def test_a_metaflow_module_aioflow_lacks_is_named(write_flow: Callable[..., Path]) -> None:
    path = write_flow("from metaflow.plugins.cards import card_modules\n", "cards_flow.py")
    with pytest.raises(FlowDefinitionError) as info:
        load_flow(path, metaflow_imports=True)
    # The user's line, then the error as it is (no frame of aioflow's import hook, and no
    # hint Python 3.15 would add for a module name, formatting or failing to).
    assert str(info.value).endswith(
        "line 1, in <module>\n    from metaflow.plugins.cards import card_modules\n"
        "ModuleNotFoundError: No module named 'metaflow.plugins.cards': aioflow has no "
        "counterpart of it (aioflow.plugins.cards)"
    )


def test_aioflow_run_with_metaflow_imports(metaflow_file: Path, aioflow_root: Path) -> None:
    code, _, err = invoke("run", "--metaflow-imports", str(metaflow_file), "--alpha", "4")
    assert code == 0, err
    assert Flow("PortedFlow").latest_run["start"].task.data.x == 8


def test_the_console_script_takes_metaflow_imports_before_the_file(
    metaflow_file: Path, aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflow.cli import main

    argv = ["aioflow", "run", "--metaflow-imports", str(metaflow_file), "--quiet"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    assert Flow("PortedFlow").latest_run.successful


# -- 12: client details Metaflow code relies on -------------------------------------------------


async def test_namespace_check_false_finds_objects_of_any_namespace(flow_runner) -> None:
    run = await flow_runner(CurrentFlow)
    task = run["start"].task
    with scoped_namespace("user:someone-else"):
        for kind, pathspec in [
            (Flow, "CurrentFlow"),
            (Run, run.pathspec),
            (Step, f"{run.pathspec}/start"),
            (Task, task.pathspec),
            (DataArtifact, f"{task.pathspec}/step_seen"),
        ]:
            with pytest.raises(aioflow.MetaflowNamespaceMismatch):
                kind(pathspec)
            assert kind(pathspec, _namespace_check=False).pathspec == pathspec
        # reaching up from an unchecked object does not check either
        assert Task(task.pathspec, _namespace_check=False).parent.parent.data is not None
        assert DataArtifact(f"{task.pathspec}/step_seen", _namespace_check=False).data == "start"


async def test_parent_and_child_steps_follow_the_graph(flow_runner) -> None:
    run = await flow_runner(CurrentFlow)
    assert list(run["start"].parent_steps) == []
    assert list(run["start"].child_steps) == [run["middle"]]
    assert list(run["middle"].parent_steps) == [run["start"]]
    assert list(run["middle"].child_steps) == [run["end"]]
    assert list(run["end"].child_steps) == []


async def test_data_on_every_path_to_a_run_and_task(flow_runner) -> None:
    run = await flow_runner(CurrentFlow)
    runs = [run, Run(run.pathspec), Flow("CurrentFlow").latest_run, next(iter(Flow("CurrentFlow")))]
    runs.append(run["start"].task.parent.parent)
    runs.append(pickle.loads(pickle.dumps(run)))
    for each in runs:
        assert each.data.step_seen == "middle", each
        assert each["start"].task.data.step_seen == "start", each


async def test_current_run_and_task_are_client_objects_that_pickle(flow_runner) -> None:
    run = await flow_runner(CurrentFlow)
    start = run["start"].task
    assert start.data.run_obj == run
    assert isinstance(start.data.task_obj, Task)
    assert start.data.task_obj == start
    assert start.data.task_obj.data.step_seen == "start"  # read back once the task is stored
    assert start.data.task_pathspec == start.pathspec
    assert run["middle"].task.data.run_back == run.pathspec
    assert current.run is None and current.task is None  # outside a task, as Metaflow's


async def test_client_objects_pickle_by_name(flow_runner) -> None:
    run = await flow_runner(CurrentFlow)
    task = run["start"].task
    for obj in (Flow("CurrentFlow"), run, run["start"], task, task["step_seen"]):
        assert pickle.loads(pickle.dumps(obj)) == obj
    attempt = Task(task.pathspec, attempt=0)
    assert repr(pickle.loads(pickle.dumps(attempt))) == repr(attempt)


def test_current_step_is_the_running_steps_name(flow_runner) -> None:
    run = flow_runner.sync(CurrentFlow)
    assert run["start"].task.data.step_seen == "start"
    assert run["middle"].task.data.step_seen == "middle"
    assert CurrentFlow(use_cli=False)._current_step is None


# -- 14: Runner and NBRunner ---------------------------------------------------------------------


def test_runner_run_blocks_until_the_run_ends(linear_file: Path, aioflow_root: Path) -> None:
    with Runner(str(linear_file), show_output=False).run(alpha=5) as running:
        assert running.status == "successful"
        assert running.returncode == 0
        assert isinstance(running.run, Run)
        assert running.run.successful
        assert running.run.data.x == 10
        assert "alpha is 5" in running.stdout
        assert running.stdout.rstrip().endswith("Done!")
        assert running.stderr == ""


def test_runner_reports_a_failed_run(linear_file: Path, aioflow_root: Path) -> None:
    running = Runner(linear_file, show_output=False).run(alpha=-1)
    assert running.status == "failed"
    assert running.returncode == 1
    assert running.run is not None and not running.run.successful
    assert "ValueError: alpha is negative" in running.stdout
    assert "Step end (task-id 2) failed." in running.stderr


def test_runner_shows_output_when_asked(
    linear_file: Path, aioflow_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Runner(linear_file, show_output=False).run()
    assert "alpha is" not in capsys.readouterr().out
    Runner(linear_file).run()
    assert "alpha is 1" in capsys.readouterr().out


def test_runner_resume(linear_file: Path, aioflow_root: Path) -> None:
    failed = Runner(linear_file, show_output=False).run(alpha=-1)
    resumed = Runner(linear_file, show_output=False).resume(origin_run_id=failed.run.id)
    assert resumed.status == "failed"  # the same parameters fail again, as in Metaflow
    assert resumed.run.origin_pathspec == failed.run.pathspec
    assert resumed.run["start"].task.origin_pathspec == failed.run["start"].task.pathspec


def test_runner_refuses_what_needs_a_subprocess(linear_file: Path) -> None:
    with pytest.raises(TypeError, match="env="):
        Runner(linear_file, env={"A": "1"})
    with pytest.raises(TypeError, match="colour="):
        Runner(linear_file, colour="blue")
    with pytest.raises(TypeError, match="runs locally"):
        Runner(linear_file, metadata="service")
    Runner(linear_file, pylint=False, metadata="local")  # accepted, nothing to do in-process


def test_runner_raises_a_bad_parameter_before_storing(
    linear_file: Path, aioflow_root: Path
) -> None:
    with pytest.raises(ParameterError):
        Runner(linear_file, show_output=False).run(alpha="many")
    with pytest.raises((aioflow.MetaflowNotFound, StoreError)):  # nothing was stored
        Flow("LinearFlow")


async def test_async_run_as_a_block(linear_file: Path, aioflow_root: Path) -> None:
    async with Runner(linear_file, show_output=False).async_run(alpha=3) as executing:
        assert isinstance(executing.run, Run)  # stored before the first task
        lines = [line async for _, line in executing.stream_log("stdout")]
        await executing.wait()
        assert executing.status == "successful"
        assert executing.run.data.x == 6
    assert any("alpha is 3" in line for line in lines)
    assert "\n".join(lines) + "\n" == executing.stdout


async def test_awaited_async_run_and_stream_positions(
    linear_file: Path, aioflow_root: Path
) -> None:
    executing = await Runner(linear_file, show_output=False).async_run()
    with executing:
        await executing.wait()
    seen = [position async for position, _ in executing.stream_log("stdout", position=2)]
    assert seen == list(range(2, len(executing.stdout.splitlines())))
    with pytest.raises(ValueError, match="'stdout' or 'stderr'"):
        [_ async for _ in executing.stream_log("stdlog")]


async def test_wait_with_a_timeout_cancels_the_run(aioflow_root: Path) -> None:
    runner = NBRunner(SlowFlow, show_output=False)
    async with runner.async_run() as executing:
        assert executing.status == "running" and executing.returncode is None
        await executing.wait(timeout=0.01)  # the step never ends: the timeout always runs out
        assert executing.status == "timeout"
        assert executing.returncode == 1
    assert Run(executing.run.pathspec).status == "cancelled"


async def test_leaving_the_block_cancels_a_running_run(aioflow_root: Path) -> None:
    async with NBRunner(SlowFlow, show_output=False).async_run() as executing:
        pass
    assert executing.status == "failed"
    assert Run(executing.run.pathspec).status == "cancelled"


def test_nbrunner_nbrun_returns_the_run(aioflow_root: Path) -> None:
    run = NBRunner(CurrentFlow, show_output=False).nbrun()
    assert isinstance(run, Run) and run.successful
    resumed = NBRunner(CurrentFlow, show_output=False).nbresume(origin_run_id=run.id)
    assert resumed.origin_pathspec == run.pathspec
    with pytest.raises(TypeError, match="FlowSpec subclass"):
        NBRunner("flow.py")  # type: ignore[arg-type]


async def test_blocking_calls_work_inside_a_running_loop(aioflow_root: Path) -> None:
    # A notebook cell runs in a loop: the blocking calls run the flow in a worker thread.
    with scoped_namespace(None):
        run = NBRunner(CurrentFlow, show_output=False).nbrun()
    assert run.successful


def test_runner_is_importable_as_metaflow_writes_it() -> None:
    from aioflow.runner_api import ExecutingRun

    assert aioflow.Runner is Runner and aioflow.NBRunner is NBRunner
    with Runner("flow.py") as runner:  # the flow file is read when a run starts
        assert isinstance(runner, Runner)
    assert {"status", "returncode", "stdout", "stderr", "wait", "stream_log"} <= set(
        dir(ExecutingRun)
    )
