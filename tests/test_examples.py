"""Every file in examples/ runs as the documents it comes from say: `python examples/x.py run`.

The test is parametrized over the folder, so a new example without a check here fails. Each
example runs in a subprocess against a fresh store, and what it printed and stored is compared
with what the seed documents (Metaflow's "Creating Flows" and "Flow Artifacts") show.
"""

from __future__ import annotations

import contextvars
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from aioflow import Flow, Run, namespace

pytestmark = pytest.mark.timeout(90)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STAMP_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (.*)$")
TASK_RE = re.compile(r"\[(\d+)/(\w+)/(\d+)\] (.*)")


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def both(self) -> str:
        return self.out + self.err

    def console(self) -> list[str]:
        body = []
        for line in self.out.splitlines():
            match = STAMP_RE.match(line)
            assert match, f"console line without a timestamp: {line!r}"
            body.append(match.group(1))
        return body

    def printed(self, step: str) -> list[str]:
        """What tasks of `step` printed themselves (not aioflow's task lines), in order."""
        ours = {"Task is starting.", "Task finished successfully."}
        lines = []
        for line in self.console():
            match = TASK_RE.fullmatch(line)
            if match and match.group(2) == step:
                text = match.group(4)
                if text not in ours and not text.startswith("Foreach yields "):
                    lines.append(text)
        return lines

    def run_id(self) -> str:
        for line in self.console():
            match = re.fullmatch(r"Workflow starting \(run-id (\d+)\):", line)
            if match:
                return match.group(1)
        raise AssertionError(f"no 'Workflow starting' line in:\n{self.out}")


class Runner:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, script: str, *args: str) -> Result:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / script), *args],
            cwd=self.cwd,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def flow(self, script: str, *args: str) -> Result:
        """`python examples/<script> run <args>`, which must succeed."""
        result = self(script, "run", *args)
        assert result.code == 0, result.both
        console = result.console()
        assert console[-1] == "Done!"
        # Every task's lines, including what it printed, sit between its start and its finish.
        tasks: dict[tuple[str, str], list[str]] = {}
        for line in console:
            match = TASK_RE.fullmatch(line)
            if match:
                tasks.setdefault((match.group(2), match.group(3)), []).append(match.group(4))
        assert tasks
        for lines in tasks.values():
            assert lines[0] == "Task is starting.", lines
            assert lines[-1] == "Task finished successfully.", lines
            assert lines.count("Task is starting.") == 1, lines
        return result


@pytest.fixture
def run_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    monkeypatch.setenv("AIOFLOW_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    work = tmp_path / "work"
    work.mkdir()
    return Runner(work)


def stored_run(flow_name: str, run_id: str) -> Run:
    """The run, read with the client in the global namespace (without leaking that setting)."""

    def read() -> Run:
        namespace(None)
        runs = list(Flow(flow_name))
        assert [r.id for r in runs] == [run_id]
        return runs[0]

    return contextvars.copy_context().run(read)


def artifacts(run: Run, step: str) -> dict[str, object]:
    task = run[step].task
    return {a.id: a.data for a in task.artifacts}


def step_names(run: Run) -> set[str]:
    return {s.id for s in run}


# -- one check per example ----------------------------------------------------------------------


def check_linear(run_example: Runner) -> None:
    result = run_example.flow("linear.py")
    assert result.printed("a") == ["the data artifact is: hello world"]
    assert result.printed("end") == ["the data artifact is still: hello world"]
    run = stored_run("LinearFlow", result.run_id())
    assert run.successful
    assert step_names(run) == {"start", "a", "end"}
    for step in ("start", "a", "end"):
        assert run[step].task.data.my_var == "hello world"
    assert artifacts(run, "end") == {"my_var": "hello world", "name": "LinearFlow"}


def check_branch(run_example: Runner) -> None:
    result = run_example.flow("branch.py")
    assert result.printed("join") == ["a is 1", "b is 2", "total is 3"]
    run = stored_run("BranchFlow", result.run_id())
    assert run.successful
    assert run["a"].task.data.x == 1
    assert run["b"].task.data.x == 2
    # The join neither assigns nor merges x, so (as in Metaflow) it stops there.
    assert "x" not in run["join"].task
    assert "x" not in run["end"].task


def check_foreach(run_example: Runner) -> None:
    result = run_example.flow("foreach.py")
    titles = ["Stranger Things", "House of Cards", "Narcos"]
    assert result.printed("end") == [f"{t} processed" for t in titles]
    run_id = result.run_id()
    assert f"[{run_id}/start/1] Foreach yields 3 child steps." in result.console()
    run = stored_run("ForeachFlow", run_id)
    assert run.successful
    tasks = sorted(run["a"], key=lambda t: t.index)
    assert [t.index for t in tasks] == [0, 1, 2]
    assert [t.data.title for t in tasks] == [f"{t} processed" for t in titles]
    assert run["join"].task.data.results == [f"{t} processed" for t in titles]
    assert run["start"].task.data.titles == titles
    # The join assigns only `results`: nothing else from the branches reaches end.
    assert artifacts(run, "end") == {
        "name": "ForeachFlow",
        "results": run["join"].task.data.results,
    }
    assert run["start"].task.index is None


def check_parameter_flow(run_example: Runner) -> None:
    result = run_example.flow("parameter_flow.py")
    assert result.printed("start") == ["alpha is 0.010000"]
    assert result.printed("end") == ["alpha is still 0.010000"]
    run = stored_run("ParameterFlow", result.run_id())
    assert run["start"].task.data.alpha == 0.01
    assert run["end"].task.data.alpha == 0.01


def check_json_parameter_flow(run_example: Runner) -> None:
    result = run_example.flow("json_parameter_flow.py")
    assert result.printed("start") == ["The GDP of US is $1939B"]
    run = stored_run("JSONParameterFlow", result.run_id())
    data = run["end"].task.data
    assert data.gdp == {"US": 1939}
    assert data.country == "US"


def check_merge_artifacts(run_example: Runner) -> None:
    result = run_example.flow("merge_artifacts.py")
    assert result.printed("join") == ["x is 1", "pass_down is a", "common is 5", "from_a is 6"]
    assert result.printed("join2") == ["Only pass_down and common exist here"]
    run = stored_run("MergeArtifactsFlow", result.run_id())
    assert run.successful
    # join: x set by hand; pass_down, common and from_a merged; y excluded.
    assert artifacts(run, "join") == {
        "name": "MergeArtifactsFlow",
        "x": 1,
        "pass_down": "a",
        "common": 5,
        "from_a": 6,
    }
    assert run["d"].task.data.conflicting == 7
    assert run["e"].task.data.conflicting == 8
    # join2 merges only what `include` names: the rest (x, from_a, conflicting) is dropped.
    expected = {"name": "MergeArtifactsFlow", "pass_down": "a", "common": 5}
    assert artifacts(run, "join2") == expected
    assert artifacts(run, "end") == expected


def check_artifact_flow(run_example: Runner) -> Run:
    result = run_example.flow("artifact_flow.py")
    transformed = [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    assert result.printed("end") == [
        f"Artifact is in state `transformed` with values {transformed}"
    ]
    run_id = result.run_id()
    console = result.console()
    for task_id, step in enumerate(["start", "create_artifact", "transform_artifact", "end"], 1):
        prefix = f"[{run_id}/{step}/{task_id}]"
        assert f"{prefix} Task is starting." in console
        assert f"{prefix} Task finished successfully." in console
    run = stored_run("ArtifactFlow", run_id)
    assert "dataset" not in run["start"].task
    assert artifacts(run, "create_artifact") == {
        "name": "ArtifactFlow",
        "dataset": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
        "metadata_description": "created",
    }
    assert run["transform_artifact"].task.data.metadata_description == "transformed"
    assert run["end"].task.data.dataset == transformed
    assert run.data is not None and run.data.dataset == transformed
    return run


def check_read_runs(run_example: Runner) -> None:
    run = check_artifact_flow(run_example)
    result = run_example("read_runs.py")
    assert result.code == 0, result.both
    lines = result.out.splitlines()
    assert lines[0] == f"Run('ArtifactFlow/{run.id}') successful=True"
    assert "  create_artifact: ['dataset', 'metadata_description', 'name']" in lines
    assert "  start: ['name']" in lines
    assert lines[-1] == "[[10, 20, 30], [40, 50, 60], [70, 80, 90]]"


def check_async_steps(run_example: Runner) -> None:
    delay = 0.5
    result = run_example.flow("async_steps.py", "--delay", str(delay))
    fetched = result.printed("fetch")
    assert sorted(fetched) == sorted(
        f"fetched https://example.invalid/item/{i} in task {i + 2}" for i in range(10)
    )
    (summary,) = result.printed("end")
    assert re.fullmatch(r"10 fetches, 300 bytes, in \d+\.\d\d s", summary)
    run = stored_run("AsyncStepsFlow", result.run_id())
    data = run["end"].task.data
    assert (data.count, data.total) == (10, 300)
    assert data.elapsed >= delay
    # Ten awaits of `delay` overlap: every fetch started before any of them finished (told
    # from the stored task times, not from a wall-clock bound that a loaded machine breaks).
    fetches = list(run["fetch"])
    assert len(fetches) == 10
    assert max(t.created_at for t in fetches) < min(t.finished_at for t in fetches)
    urls = run["start"].task.data.urls
    assert sorted((t.index, t.data.size) for t in run["fetch"]) == [
        (i, len(url)) for i, url in enumerate(urls)
    ]


def check_card_flow(run_example: Runner) -> None:
    from aioflow.cards import get_cards

    result = run_example.flow("card_flow.py")
    assert result.printed("end") == ["Final loss 0.2"]
    run = stored_run("CardFlow", result.run_id())
    (guess,) = get_cards(run["start"].task)
    assert guess.type == "blank"
    assert "<h1>Guess my number</h1>" in guess.html
    assert "My number is <strong>larger</strong>" in guess.html
    progress, default = get_cards(run["train"].task)
    assert (progress.id, default.type) == ("progress", "default")
    assert "5 / 5 epochs" in progress.html and "<th>loss</th>" in progress.html
    assert "<td>losses</td><td><pre>[1.0, 0.5, 0.333, 0.25, 0.2]</pre>" in default.html
    assert 'data-step="train"' in default.html and "<td>number</td>" in default.html
    # Metaflow's command line: the card of a step of the latest run, written to a file.
    view = run_example("card_flow.py", "card", "view", "start", "--output", "guess.html")
    assert view.code == 0, view.both
    assert (run_example.cwd / "guess.html").read_text() == guess.html


CHECKS: dict[str, Callable[[Runner], object]] = {
    "linear.py": check_linear,
    "branch.py": check_branch,
    "foreach.py": check_foreach,
    "parameter_flow.py": check_parameter_flow,
    "json_parameter_flow.py": check_json_parameter_flow,
    "merge_artifacts.py": check_merge_artifacts,
    "artifact_flow.py": check_artifact_flow,
    "read_runs.py": check_read_runs,
    "async_steps.py": check_async_steps,
    "card_flow.py": check_card_flow,
}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example(example: str, run_example: Runner) -> None:
    check = CHECKS.get(example)
    assert check is not None, f"examples/{example} has no check: add one to CHECKS"
    check(run_example)


def test_every_check_has_its_example() -> None:
    assert set(CHECKS) == {p.name for p in EXAMPLES.glob("*.py")}


#: Examples that are not flow scripts, and the test that runs each one instead.
ELSEWHERE = {
    # executed cell by cell through a real Jupyter kernel
    "notebook.ipynb": "test_notebook.py",
    # a FastAPI app, driven through an ASGI client with concurrent requests
    "service": "test_service.py",
    # a flow run on a Dask cluster of separate processes, by --dask-address
    "dask": "test_dask_cluster.py",
}


def test_every_other_example_has_its_own_test() -> None:
    others = {p.name for p in EXAMPLES.iterdir() if p.suffix != ".py" and p.name[0] not in "._"}
    assert others == set(ELSEWHERE), "add the example to ELSEWHERE with the test that runs it"
    for test_file in ELSEWHERE.values():
        assert (Path(__file__).parent / test_file).is_file(), test_file


# -- the documents' other command lines ----------------------------------------------------------


def test_parameter_flow_with_alpha(run_example: Runner) -> None:
    result = run_example.flow("parameter_flow.py", "--alpha", "0.6")
    assert result.printed("start") == ["alpha is 0.600000"]
    assert result.printed("end") == ["alpha is still 0.600000"]
    run = stored_run("ParameterFlow", result.run_id())
    assert run["end"].task.data.alpha == 0.6


def test_parameter_flow_help_lists_alpha(run_example: Runner) -> None:
    result = run_example("parameter_flow.py", "run", "--help")
    assert result.code == 0, result.both
    assert re.search(r"--alpha FLOAT\s+Learning rate\s+\[default: 0\.01\]", result.out)


def test_json_parameter_flow_with_gdp(run_example: Runner) -> None:
    result = run_example.flow("json_parameter_flow.py", "--gdp", '{"US": 1}')
    assert result.printed("start") == ["The GDP of US is $1B"]
    run = stored_run("JSONParameterFlow", result.run_id())
    assert run["start"].task.data.gdp == {"US": 1}


def test_json_parameter_flow_rejects_bad_json(run_example: Runner) -> None:
    result = run_example("json_parameter_flow.py", "run", "--gdp", "{not json")
    assert result.code == 2, result.both
    assert "--gdp" in result.err
    assert "Workflow starting" not in result.out


def test_show_describes_the_branch(run_example: Runner) -> None:
    result = run_example("branch.py", "show")
    assert result.code == 0, result.both
    assert "Step start\n    ?\n    => a, b\n" in result.out
    assert "Step join\n    ?\n    => end\n" in result.out
