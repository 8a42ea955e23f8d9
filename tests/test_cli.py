"""Tests of the command line, run as real processes: `aioflow run flow.py`, `python flow.py run`.

Every test starts a few subprocesses (about 0.3 s each), so the file stays at a few dozen of them.
Each runs in its own folder with `AIOFLOW_ROOT` pointing at a fresh store, which the tests read
back with the client.
"""

from __future__ import annotations

import contextvars
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aioflow
from aioflow import Flow, Run, namespace
from aioflow.exceptions import MetaflowNotFound
from aioflow.graph import FlowGraph
from tests.helpers import aioflow_command, invoke

pytestmark = pytest.mark.timeout(90)

STAMP_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (.*)$")
USER = "tester"

# -- flows used below ----------------------------------------------------------------------------

CLI_FLOW = '''
from aioflow import FlowSpec, Parameter, step


class CliFlow(FlowSpec):
    """A flow for command-line tests."""

    alpha = Parameter("alpha", default=0.01, help="Learning rate")
    flag = Parameter("flag", default=False, help="A switch")
    count = Parameter("count", default=3, help="How many items")

    @step
    def start(self):
        """Fan out over the items."""
        print("  alpha is %s   " % self.alpha)
        self.items = list(range(self.count))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.doubled = self.input * 2
        print("working on %d" % self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [i.doubled for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("results %s flag %s" % (self.results, self.flag))


if __name__ == "__main__":
    CliFlow()
'''

REQ_FLOW = """
from aioflow import FlowSpec, Parameter, step


class ReqFlow(FlowSpec):
    req = Parameter("req", type=int, required=True, help="A required number")
    flag = Parameter("flag", default=False, help="A switch")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ReqFlow()
"""

FAIL_FLOW = """
from aioflow import FlowSpec, step


class FailFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.seen = self.input
        print("working on %d" % self.input)
        if self.input == 2:
            raise ValueError("boom %d" % self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailFlow()
"""

LINT_FLOW = """
from aioflow import FlowSpec, step


class LintFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.nowhere)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LintFlow()
"""

SLOW_FOREACH_FLOW = """
import time

import anyio

from aioflow import FlowSpec, step


class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        self.began = time.time()
        await anyio.sleep(0.2)
        self.ended = time.time()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.spans = [(i.began, i.ended) for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""

BLOCKING_SYNC_FLOW = """
import os
import time
from pathlib import Path

from aioflow import FlowSpec, step


class BlockFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.wait)

    @step
    def wait(self):
        Path(os.environ["AIOFLOW_TEST_MARKER"]).write_text("waiting")
        release = Path(os.environ["AIOFLOW_TEST_RELEASE"])
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

BLOCKING_ASYNC_FLOW = """
import os
from pathlib import Path

import anyio

from aioflow import FlowSpec, step


class BlockFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.wait)

    @step
    async def wait(self):
        Path(os.environ["AIOFLOW_TEST_MARKER"]).write_text("waiting")
        await anyio.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


# -- harness ---------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err

    def console(self) -> list[str]:
        """stdout lines without their timestamps (each line must have one)."""
        body = []
        for line in self.out.splitlines():
            match = STAMP_RE.match(line)
            assert match, f"console line without a timestamp: {line!r}"
            body.append(match.group(1))
        return body

    def run_id(self) -> str:
        for line in self.console():
            match = re.fullmatch(r"Workflow starting \(run-id (\d+)\):", line)
            if match:
                return match.group(1)
        raise AssertionError(f"no 'Workflow starting' line in:\n{self.out}")


def task_lines(console: list[str], run_id: str, step: str) -> dict[str, list[str]]:
    """Per task id of `step`, the text of its console lines, in order."""
    tasks: dict[str, list[str]] = {}
    pattern = re.compile(rf"\[{run_id}/{step}/(\d+)\] (.*)")
    for line in console:
        match = pattern.fullmatch(line)
        if match:
            tasks.setdefault(match.group(1), []).append(match.group(2))
    return tasks


def client_runs(flow_name: str) -> list[Run]:
    """Every stored run of a flow (newest first), whatever the namespace; [] if none."""

    def read() -> list[Run]:
        namespace(None)  # only inside this copied context: other tests keep their namespace
        root = Path(os.environ["AIOFLOW_ROOT"])
        if not (root / "metadata.db").exists():
            return []
        try:
            return list(Flow(flow_name))
        except MetaflowNotFound:
            return []

    return contextvars.copy_context().run(read)


def only_run(flow_name: str) -> Run:
    runs = client_runs(flow_name)
    assert len(runs) == 1, runs
    return runs[0]


class Cli:
    """Runs `aioflow ...` and `python flow.py ...` in one temp folder against one store."""

    def __init__(self, cwd: Path, root: Path) -> None:
        self.cwd = cwd
        self.root = root
        self.exe = aioflow_command()[0]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(extra)
        return env

    def write(self, name: str, source: str) -> Path:
        path = self.cwd / name
        path.write_text(textwrap.dedent(source))
        return path

    def _call(self, argv: list[str], env: dict[str, str] | None) -> Result:
        proc = subprocess.run(
            argv,
            cwd=self.cwd,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def aioflow(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self._call([self.exe, *args], env)

    def python(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self._call([sys.executable, *args], env)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    root = tmp_path / "store"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("AIOFLOW_ROOT", str(root))
    monkeypatch.setenv("AIOFLOW_USER", USER)
    return Cli(work, root)


def assert_nothing_stored(cli: Cli, flow_name: str) -> None:
    assert client_runs(flow_name) == []


# -- a successful run ---------------------------------------------------------------------------


def test_aioflow_run_prints_progress_and_stores_the_run(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    result = cli.aioflow("run", "cli_flow.py")

    assert result.code == 0, result.both
    assert result.err.splitlines()[:3] == [
        f"aioflow {aioflow.__version__} executing CliFlow for user:{USER}",
        "Validating your flow...",
        "    The graph looks good!",
    ]
    console = result.console()
    run_id = result.run_id()
    assert console[0] == f"Workflow starting (run-id {run_id}):"
    assert console[-1] == "Done!"
    # start prints its line rstripped (indentation kept), then announces its 3 splits.
    assert console[1:5] == [
        f"[{run_id}/start/1] Task is starting.",
        f"[{run_id}/start/1]   alpha is 0.01",
        f"[{run_id}/start/1] Foreach yields 3 child steps.",
        f"[{run_id}/start/1] Task finished successfully.",
    ]
    work = task_lines(console, run_id, "work")
    assert len(work) == 3
    printed = set()
    for lines in work.values():
        assert lines[0] == "Task is starting."
        assert lines[-1] == "Task finished successfully."
        assert len(lines) == 3
        printed.add(lines[1])
    assert printed == {"working on 0", "working on 1", "working on 2"}
    (end,) = task_lines(console, run_id, "end").values()
    assert end == [
        "Task is starting.",
        "results [0, 2, 4] flag False",
        "Task finished successfully.",
    ]
    assert len(task_lines(console, run_id, "join")) == 1

    run = only_run("CliFlow")
    assert run.id == run_id
    assert run.successful
    assert run["end"].task.data.results == [0, 2, 4]
    assert run["start"].task.data.alpha == 0.01
    assert run["start"].task.stdout == "  alpha is 0.01   \n"


def test_python_flow_file_run_with_parameters(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    result = cli.python("cli_flow.py", "run", "--alpha", "0.5", "--flag", "yes", "--count", "2")

    assert result.code == 0, result.both
    run_id = result.run_id()
    assert task_lines(result.console(), run_id, "start")["1"][1] == "  alpha is 0.5"
    run = only_run("CliFlow")
    assert run.id == run_id and run.successful
    data = run["end"].task.data
    assert (data.alpha, data.flag, data.count, data.results) == (0.5, True, 2, [0, 2])
    assert len(list(run["work"])) == 2


def test_the_command_line_closes_its_store_before_the_process_exits(cli: Cli) -> None:
    # The exit skips the interpreter's last garbage collections (issue 19's start-up cost):
    # whatever held the store open must be closed by then, or SQLite's log would be left
    # uncheckpointed beside the database.
    cli.write("cli_flow.py", CLI_FLOW)
    report = cli.cwd / "report.html"
    for result in (
        cli.aioflow("run", "cli_flow.py", "--quiet", "--report", str(report)),
        cli.python("cli_flow.py", "resume", "--quiet"),
    ):
        assert result.code == 0, result.both
        assert sorted(p.name for p in cli.root.iterdir()) == ["faults", "metadata.db", "running"]
    assert report.exists()
    assert [run.successful for run in client_runs("CliFlow")] == [True, True]


def test_run_help_lists_the_flow_parameters(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    result = cli.aioflow("run", "cli_flow.py", "--help")

    assert result.code == 0, result.both
    assert result.out.startswith("Usage: aioflow run cli_flow.py [OPTIONS]")
    assert re.search(r"--alpha FLOAT\s+Learning rate\s+\[default: 0\.01\]", result.out)
    assert re.search(r"--flag BOOLEAN\s+A switch\s+\[default: False\]", result.out)
    assert re.search(r"--count INTEGER\s+How many items\s+\[default: 3\]", result.out)
    for option in ("--tag", "--run-id-file", "--max-workers", "--max-num-splits", "--quiet"):
        assert option in result.out
    assert not cli.root.exists()


def test_python_flow_file_run_help_marks_required_parameters(cli: Cli) -> None:
    cli.write("req_flow.py", REQ_FLOW)

    result = cli.python("req_flow.py", "run", "--help")

    assert result.code == 0, result.both
    assert result.out.startswith("Usage: req_flow.py run [OPTIONS]")
    assert re.search(r"--req INTEGER\s+A required number\s+\[required\]", result.out)
    assert not cli.root.exists()


# -- show and check ------------------------------------------------------------------------------


def test_show_lists_steps_and_transitions(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    via_aioflow = cli.aioflow("show", "cli_flow.py")
    via_python = cli.python("cli_flow.py", "show")

    assert via_aioflow.code == via_python.code == 0, via_aioflow.both + via_python.both
    assert via_aioflow.out == via_python.out
    out = via_aioflow.out
    assert "A flow for command-line tests." in out
    for name in ("start", "work", "join", "end"):
        assert f"\nStep {name}\n" in out
    assert "Step start\n    Fan out over the items.\n    => work" in out
    assert "Step work\n    ?\n    => join" in out
    assert "Step join\n    ?\n    => end" in out
    assert not cli.root.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["aioflow", "check", "cli_flow.py"],
        ["python", "cli_flow.py", "check"],
        ["python", "cli_flow.py"],
    ],
    ids=["aioflow-check", "python-check", "python-no-command"],
)
def test_check_validates_without_running(cli: Cli, argv: list[str]) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    result = cli.aioflow(*argv[1:]) if argv[0] == "aioflow" else cli.python(*argv[1:])

    assert result.code == 0, result.both
    assert f"executing CliFlow for user:{USER}" in result.err
    assert "Validating your flow...\n    The graph looks good!" in result.err
    assert "Workflow starting" not in result.both
    assert not cli.root.exists()


@pytest.mark.parametrize("how", ["aioflow-run", "aioflow-check", "python-run"])
def test_lint_error_names_file_line_and_problem(cli: Cli, how: str) -> None:
    path = cli.write("lint_flow.py", LINT_FLOW)
    line = path.read_text().splitlines().index("        self.next(self.nowhere)") + 1

    if how == "aioflow-run":
        result = cli.aioflow("run", "lint_flow.py")
    elif how == "aioflow-check":
        result = cli.aioflow("check", "lint_flow.py")
    else:
        result = cli.python("lint_flow.py", "run")

    assert result.code == 1, result.both
    expected = (
        "Validating your flow...\n"
        f"    Validity checker found an issue in file {path.resolve()} on line {line}:\n"
        "    Step start specifies a self.next() transition to an unknown step, nowhere.\n"
    )
    assert expected in result.err
    assert "Workflow starting" not in result.out
    assert_nothing_stored(cli, "LintFlow")


# -- usage errors: exit 2, nothing stored ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        ([], "--req", "Error: Missing option '--req'."),
        (["--req", "x"], "--req", "Error: Invalid value for '--req': 'x' is not a valid integer."),
        (["--req", "1", "--flag"], "--flag", "Error: Option '--flag' requires an argument."),
        (["--req", "1", "--flag", "maybe"], "--flag", "'maybe' is not a valid boolean"),
        (["--req", "1", "--max-workers", "0"], "--max-workers", "0 is not in the range x>=1"),
        (["--req", "1", "--tag", ""], "--tag", "Error: Invalid value for '--tag': Invalid tag ''"),
        (["--req", "1", "--nope", "3"], "--nope", "Error: No such option"),
    ],
    ids=["missing", "bad-int", "bool-without-value", "bad-bool", "max-workers-0", "empty-tag",
         "unknown-option"],
)  # fmt: skip
def test_usage_errors_exit_2_and_store_nothing(
    cli: Cli, args: list[str], option: str, message: str
) -> None:
    cli.write("req_flow.py", REQ_FLOW)

    result = cli.aioflow("run", "req_flow.py", *args)

    assert result.code == 2, result.both
    assert message in result.err
    assert option in result.err
    assert "Workflow starting" not in result.out
    assert "Traceback" not in result.both
    assert_nothing_stored(cli, "ReqFlow")


def test_usage_error_from_python_flow_file_matches_metaflow(cli: Cli) -> None:
    cli.write("req_flow.py", REQ_FLOW)

    result = cli.python("req_flow.py", "run", "--flag", "true")

    assert result.code == 2, result.both
    assert (
        "Usage: req_flow.py run [OPTIONS]\n"
        "Try 'req_flow.py run --help' for help.\n"
        "\n"
        "Error: Missing option '--req'.\n"
    ) in result.err
    assert_nothing_stored(cli, "ReqFlow")


def test_usage_line_of_aioflow_run_names_the_flow_file(cli: Cli) -> None:
    cli.write("req_flow.py", REQ_FLOW)

    result = cli.aioflow("run", "req_flow.py", "--req", "notanumber")

    assert result.code == 2
    assert "Usage: aioflow run req_flow.py [OPTIONS]\n" in result.err
    assert "Try 'aioflow run req_flow.py --help' for help." in result.err


def test_reserved_parameter_name_is_a_flow_error(cli: Cli) -> None:
    cli.write(
        "reserved.py",
        """
        from aioflow import FlowSpec, Parameter, step


        class ReservedFlow(FlowSpec):
            tags = Parameter("tag", default="x")

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )

    result = cli.aioflow("run", "reserved.py")

    assert result.code == 1, result.both
    assert "'tag' is a reserved word" in result.err
    assert "Traceback" not in result.both
    assert_nothing_stored(cli, "ReservedFlow")


# -- a failing step ----------------------------------------------------------------------------


def test_failing_step_prints_traceback_and_exits_1(cli: Cli) -> None:
    path = cli.write("fail_flow.py", FAIL_FLOW)
    raise_line = path.read_text().splitlines().index(
        '            raise ValueError("boom %d" % self.input)'
    ) + 1  # fmt: skip

    result = cli.aioflow("run", "fail_flow.py", "--max-workers", "1")

    assert result.code == 1, result.both
    console = result.console()
    run_id = result.run_id()
    work = task_lines(console, run_id, "work")
    # One worker: item 1 (task 2) succeeds, item 2 (task 3) fails, item 3 never starts.
    assert sorted(work) == ["2", "3"]
    failed = work["3"]
    assert failed[:3] == ["Task is starting.", "working on 2", "Traceback (most recent call last):"]
    assert f'  File "{path.resolve()}", line {raise_line}, in work' in failed
    assert '    raise ValueError("boom %d" % self.input)' in failed
    assert failed[-2:] == ["ValueError: boom 2", "Task failed."]
    assert not any("aioflow/runtime" in line for line in failed)
    tail = console[console.index(f"[{run_id}/work/3] Task failed.") + 1 :]
    assert tail[0] == "Workflow failed."
    assert "Done!" not in console
    assert result.err.endswith("    Step failure:\n    Step work (task-id 3) failed.\n\n")

    run = only_run("FailFlow")
    assert run.id == run_id
    assert not run.successful
    assert run.status == "failed"
    assert "end" not in run
    work_tasks = {t.id: t for t in run["work"]}
    assert sorted(work_tasks) == ["2", "3"]
    task = work_tasks["3"]
    assert not task.successful
    assert task.exception is not None
    assert task.exception.type.rsplit(".", 1)[-1] == "ValueError"
    assert task.exception.message == "boom 2"
    assert task.data.seen == 2  # artifacts set before the raise are kept
    assert work_tasks["2"].successful


def test_max_num_splits_fails_the_splitting_step_naming_the_option(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    result = cli.aioflow("run", "cli_flow.py", "--max-num-splits", "2")

    assert result.code == 1, result.both
    assert "yielded 3 child steps which is more than the current maximum of 2" in result.out
    # The option the user typed, and not the Python API's keyword argument.
    assert "You can raise the maximum with --max-num-splits." in result.out
    assert "max_num_splits=" not in result.both
    run = only_run("CliFlow")
    assert not run.successful
    assert "work" not in run


# -- run options ---------------------------------------------------------------------------------


def test_tags_and_run_id_file(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    result = cli.aioflow(
        "run", "cli_flow.py", "--tag", "exp-1", "--tag", "two words", "--run-id-file", "run.txt"
    )

    assert result.code == 0, result.both
    run_id = (cli.cwd / "run.txt").read_text()
    assert run_id == result.run_id()
    run = only_run("CliFlow")
    assert run.id == run_id
    assert run.user_tags == {"exp-1", "two words"}
    assert {"exp-1", "two words", f"user:{USER}"} <= run.tags
    assert f"user:{USER}" in run.system_tags
    assert "exp-1" not in run.system_tags


def test_quiet_prints_no_progress_and_splits_may_reach_the_maximum(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)

    result = cli.aioflow("run", "cli_flow.py", "--quiet", "--count", "2", "--max-num-splits", "2")

    assert result.code == 0, result.both
    assert result.out == ""
    assert "Workflow starting" not in result.err
    run = only_run("CliFlow")
    assert run.successful
    assert run["end"].task.data.results == [0, 2]
    assert run["end"].task.stdout == "results [0, 2] flag False\n"


@pytest.mark.parametrize("workers", [1, 3])
def test_max_workers_bounds_how_many_tasks_run_at_once(cli: Cli, workers: int) -> None:
    cli.write("slow_flow.py", SLOW_FOREACH_FLOW)

    result = cli.aioflow("run", "slow_flow.py", "--max-workers", str(workers))

    assert result.code == 0, result.both
    run = only_run("SlowFlow")
    spans = sorted(run["join"].task.data.spans)
    overlapping = max(sum(1 for b, e in spans if b <= t < e) for t, _ in spans)
    assert overlapping == workers  # 1: one after the other; 3: all at once
    console = result.console()
    run_id = result.run_id()
    work = rf"\[{run_id}/work/\d+\]"
    starts = [i for i, line in enumerate(console) if re.match(rf"{work} Task is", line)]
    ends = [i for i, line in enumerate(console) if re.match(rf"{work} Task finished", line)]
    if workers == 1:
        assert all(s > e for s, e in zip(starts[1:], ends, strict=False))
    else:
        assert max(starts) < min(ends)


def test_root_option_overrides_aioflow_root(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.write("cli_flow.py", CLI_FLOW)
    other = cli.cwd.parent / "other-store"

    result = cli.aioflow("run", "cli_flow.py", "--root", str(other), "--count", "1")

    assert result.code == 0, result.both
    assert not cli.root.exists()
    monkeypatch.setenv("AIOFLOW_ROOT", str(other))
    run = only_run("CliFlow")
    assert run.id == result.run_id() and run.successful


def test_default_root_is_dot_aioflow_in_the_working_directory(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("cli_flow.py", CLI_FLOW)
    env = cli.env()
    del env["AIOFLOW_ROOT"]

    result = cli.python("cli_flow.py", "run", "--count", "1", env=env)

    assert result.code == 0, result.both
    assert (cli.cwd / ".aioflow" / "metadata.db").is_file()
    assert not cli.root.exists()
    monkeypatch.setenv("AIOFLOW_ROOT", str(cli.cwd / ".aioflow"))
    assert only_run("CliFlow").successful


def test_store_that_cannot_be_opened_is_reported_plainly(cli: Cli) -> None:
    cli.write("cli_flow.py", CLI_FLOW)
    not_a_folder = cli.cwd / "a-file"
    not_a_folder.write_text("")

    result = cli.aioflow("run", "cli_flow.py", "--root", str(not_a_folder))

    assert result.code == 1, result.both
    assert str(not_a_folder) in result.err
    assert "ExceptionGroup" not in result.err
    assert "Workflow starting" not in result.out


# -- flow files that cannot be used --------------------------------------------------------------

TWO_FLOWS = """
from aioflow import FlowSpec, step


class OneFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class TwoFlow(OneFlow):
    pass
"""


@pytest.mark.parametrize(
    ("command", "source", "message"),
    [
        ("run", None, "Flow file 'flow.py' does not exist."),
        ("show", None, "Flow file 'flow.py' does not exist."),
        ("run", "x = 1\n", "defines no flow: add a class that subclasses aioflow.FlowSpec"),
        ("check", TWO_FLOWS, "defines several flows (OneFlow, TwoFlow): keep one flow per file."),
        ("run", "import aioflow_missing_dep_xyz\n",
         "\n    ModuleNotFoundError: No module named 'aioflow_missing_dep_xyz'\n"),
        ("run", "def broken(:\n", "\n    SyntaxError: "),
    ],
    ids=["missing-run", "missing-show", "no-flow", "two-flows", "import-error", "syntax-error"],
)  # fmt: skip
def test_unusable_flow_file(cli: Cli, command: str, source: str | None, message: str) -> None:
    if source is not None:
        cli.write("flow.py", source)

    result = cli.aioflow(command, "flow.py")

    assert result.code == 1, result.both
    assert result.err.startswith("    Flow definition error:\n")
    assert message in result.err
    # The user's frames only: neither the CLI's nor the import machinery's.
    assert "typer" not in result.both
    assert "loader.py" not in result.both
    assert "importlib" not in result.both
    assert not cli.root.exists()


# -- Ctrl-C --------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], proc: subprocess.Popen[str], timeout: float) -> None:
    """Poll until `condition()` holds; fail early if the process ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended early ({proc.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


@pytest.mark.parametrize("source", [BLOCKING_SYNC_FLOW, BLOCKING_ASYNC_FLOW], ids=["sync", "async"])
def test_ctrl_c_cancels_the_run_and_says_how_to_resume_it(cli: Cli, source: str) -> None:
    cli.write("block_flow.py", source)
    marker = cli.cwd / "marker"
    release = cli.cwd / "release"
    env = cli.env(AIOFLOW_TEST_MARKER=str(marker), AIOFLOW_TEST_RELEASE=str(release))
    proc = subprocess.Popen(
        [cli.exe, "run", "block_flow.py", "--run-id-file", "run.txt"],
        cwd=cli.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(marker.exists, proc, timeout=30)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        release.write_text("go")  # lets a still-blocked sync step end
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 130, out + err
    assert took < 20  # not the step's 60 s
    run_id = (cli.cwd / "run.txt").read_text()
    assert "Cancelling the run" in err
    # The stored status in the word used everywhere else, and the command to type.
    assert f"Run BlockFlow/{run_id} was cancelled. Resume it with:\n" in err
    assert f"\n    aioflow resume block_flow.py --origin-run-id {run_id}\n" in err
    assert "marked as failed" not in out + err
    result = Result(proc.returncode, out, err)
    assert "Workflow cancelled." in result.console()
    run = only_run("BlockFlow")
    assert run.id == run_id
    assert run.status == "cancelled"
    assert not run.successful
    assert not run.finished  # Metaflow's: a run is finished when its end task is
    assert run["start"].task.successful
    wait_task = run["wait"].task
    assert not wait_task.successful
    assert not wait_task.finished
    assert wait_task.exception is not None
    assert "end" not in run


def test_a_run_builds_its_flow_graph_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The command line's validation and the run share one linted graph (parsing every step's
    # source is milliseconds of each `aioflow run`).
    built = []
    init = FlowGraph.__init__

    def counting_init(self: FlowGraph, flow_cls: Any) -> None:
        built.append(flow_cls.__name__)
        init(self, flow_cls)

    monkeypatch.setattr(FlowGraph, "__init__", counting_init)
    flow = tmp_path / "once_flow.py"
    flow.write_text(CLI_FLOW.replace("CliFlow", "OnceFlow"))
    code, out, err = invoke("run", str(flow), "--quiet", "--root", str(tmp_path / "store"))
    assert code == 0, out + err
    assert built == ["OnceFlow"]
