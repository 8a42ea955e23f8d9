"""`aioflow spin` (runtime/spin.py, cli/spin_command.py): one step again, with a past task's inputs.

The Python function is tested in-process; the command line through real subprocesses (both
spellings, `aioflow spin flow.py` and `python flow.py spin`), including `breakpoint()` reading
the terminal's stdin and the step's code read from the file as it is now.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aioflow import Run, run_flow_sync
from aioflow.exceptions import ParameterError
from aioflow.flowspec import FlowSpec
from aioflow.loader import load_flow
from aioflow.runtime.spin import SPIN_TAG, spin
from aioflow.store import Store
from tests.helpers import aioflow_command

FLOW = """
from aioflow import FlowSpec, Parameter, step


class SpinFlow(FlowSpec):
    factor = Parameter("factor", default=2)

    @step
    def start(self):
        self.words = ["a", "b", "c"]
        self.next(self.shout, foreach="words")

    @step
    def shout(self):
        print("shouting", self.input, self.index)
        self.loud = self.input.upper() * self.factor
        self.next(self.join)

    @step
    def join(self, inputs):
        self.all = [i.loud for i in inputs]
        self.next(self.end)

    @step
    async def end(self):
        self.count = len(self.all)


if __name__ == "__main__":
    SpinFlow()
"""


@pytest.fixture
def past(tmp_path: Path, write_flow: Callable[..., Path]) -> tuple[Path, Path, type[FlowSpec]]:
    """A flow file, its store with one finished run, and the class."""
    path = write_flow(FLOW, name="spinflow.py")
    flow_cls = load_flow(path)
    root = tmp_path / "store"
    run_flow_sync(flow_cls, root=root, quiet=True)
    return path, root, flow_cls


def test_spin_a_foreach_child_reads_the_past_item(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    _, root, flow_cls = past
    result = spin(flow_cls, "shout", root=root, index=1)
    assert result.ok and result.origin.startswith("SpinFlow/1/shout/")
    assert result.changed == ["loud"] and result.value("loud") == "BB"
    assert result.outcome.transition is not None
    assert result.outcome.transition.targets == ("join",)


def test_spin_a_join_reads_the_tasks_that_arrived(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    _, root, flow_cls = past
    assert spin(flow_cls, "join", root=root).value("all") == ["AA", "BB", "CC"]


def test_spin_start_and_an_async_step(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    _, root, flow_cls = past
    start = spin(flow_cls, "start", root=root)
    assert start.value("words") == ["a", "b", "c"] and start.outcome.item_keys is not None
    assert spin(flow_cls, "end", root=root).value("count") == 3


def test_given_artifacts_replace_the_loaded_ones(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    _, root, flow_cls = past
    result = spin(flow_cls, "shout", root=root, index=0, artifacts={"factor": 3})
    assert result.value("loud") == "AAA"
    joined = spin(flow_cls, "join", root=root, artifacts={"all": "ignored"})
    assert joined.value("all") == ["AA", "BB", "CC"]  # the join sets it from its inputs


def test_spin_stores_nothing_unless_persisted(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    _, root, flow_cls = past
    spin(flow_cls, "join", root=root)
    store = Store(root, create=False)
    try:
        assert [r.run_id for r in store.metadata.run_page("SpinFlow")] == [1]
    finally:
        store.close()
    stored = spin(flow_cls, "join", root=root, persist=True)
    assert stored.run_id == "2"
    run = Run("SpinFlow/2", root=root)
    assert SPIN_TAG in run.system_tags and "spin_origin:SpinFlow/1/join/5" in run.system_tags
    # The run's status is the task's; `successful` stays Metaflow's (its end step succeeded).
    assert run.status == "succeeded" and run["join"].task.data.all == ["AA", "BB", "CC"]
    assert run.origin_pathspec == "SpinFlow/1"


def test_a_failing_step_is_in_the_result(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    _, root, flow_cls = past
    result = spin(flow_cls, "shout", root=root, artifacts={"factor": "x"})
    assert not result.ok and result.outcome.error is not None
    assert result.outcome.error.type_name == "TypeError"


def test_what_cannot_be_spun_is_one_clear_error(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    _, root, flow_cls = past
    with pytest.raises(ParameterError, match="has no step 'nope'"):
        spin(flow_cls, "nope", root=root)
    with pytest.raises(ParameterError, match="Run SpinFlow/7 does not exist"):
        spin(flow_cls, "join", root=root, run_id="7")
    with pytest.raises(ParameterError, match="has no task 99; its tasks are: 2, 3, 4"):
        spin(flow_cls, "shout", root=root, task_id="99")
    with pytest.raises(ParameterError, match="no task at foreach index 5"):
        spin(flow_cls, "shout", root=root, index=5)


def _cli(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_cli_spins_the_file_as_it_is_now(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    path, root, _ = past
    # The user edits the step and spins again: the new code runs with the old inputs.
    path.write_text(path.read_text().replace(".upper() * self.factor", ".upper() + '!'"))
    proc = _cli(*aioflow_command(), "spin", path.name, "shout", "--index", "2", "--root",
                str(root), cwd=path.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "shouting c 2" in proc.stdout  # printed by the step, straight to the terminal
    assert "loud = 'C!'" in proc.stderr and "next: join" in proc.stderr
    assert "spun from SpinFlow/1/shout/4" in proc.stderr


def test_python_flow_py_spin_with_an_artifacts_file(
    past: tuple[Path, Path, type[FlowSpec]],
) -> None:
    path, root, _ = past
    (path.parent / "given.json").write_text(json.dumps({"factor": 4}))
    with open(path.parent / "given.pkl", "wb") as f:
        pickle.dump({"factor": 1}, f)
    for name, loud in (("given.json", "AAAA"), ("given.pkl", "A")):
        proc = _cli(sys.executable, path.name, "spin", "shout", "--index", "0", "--artifacts",
                    name, "--root", str(root), cwd=path.parent)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert f"loud = '{loud}'" in proc.stderr
    (path.parent / "bad.json").write_text("[1, 2]")
    proc = _cli(sys.executable, path.name, "spin", "shout", "--artifacts", "bad.json",
                "--root", str(root), cwd=path.parent)  # fmt: skip
    assert proc.returncode == 2 and "must hold an object of artifact names" in proc.stderr


def test_cli_breakpoint_stops_in_the_step(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    path, root, _ = past
    path.write_text(path.read_text().replace('print("shouting"', 'breakpoint(); print("shouting"'))
    proc = _cli(*aioflow_command(), "spin", path.name, "shout", "--index", "1", "--root",
                str(root), cwd=path.parent, stdin="p self.input * 3\nc\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "'bbb'" in proc.stdout  # pdb evaluated the expression in the step's frame


def test_cli_failure_and_usage_errors(past: tuple[Path, Path, type[FlowSpec]]) -> None:
    path, root, _ = past
    path.write_text(path.read_text().replace("self.all = [", "raise ValueError('boom'); ["))
    proc = _cli(*aioflow_command(), "spin", path.name, "join", "--root", str(root),
                cwd=path.parent)  # fmt: skip
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr and "Step join failed" in proc.stderr
    assert "aioflow/runtime" not in proc.stderr  # the user's frames only
    proc = _cli(*aioflow_command(), "spin", path.name, "shout", "--task", "2", "--index", "1",
                "--root", str(root), cwd=path.parent)  # fmt: skip
    assert proc.returncode == 2 and "Give --task or --index, not both." in proc.stderr
