"""Help and habits of the command line: every `--help`, `--version`, completion, `show --format`,
and the commands `python flow.py` shares with `aioflow` (logs, dump, tag, output-dot, ...)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aioflow import FlowSpec, step
from aioflow._version import __version__
from aioflow.cli import app
from aioflow.cli.graph_text import graph_text
from aioflow.graph import FlowGraph
from tests.helpers import aioflow_command

pytestmark = pytest.mark.timeout(120)


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the `aioflow` app with the words that reach it, groups included."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


def _flat(text: str) -> str:
    """Help text without rich's box drawing and line wrapping, for comparison."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "aioflow" for p, _ in COMMANDS]
)
def test_every_help_shows_its_options_and_defaults(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    shown = _flat(result.output)
    for param in command.params:
        if param.param_type_name == "option":
            assert param.opts[0] in shown
        if getattr(param, "help", None):
            assert _flat(param.help) in shown, (param.name, shown)
        default = getattr(param, "show_default", None)
        if isinstance(default, str):
            assert f"[default: ({default})]" in shown, (param.name, shown)
    # Rich markup once swallowed every `[default: ...]` written into a help text.
    assert not re.search(r"\w \. ", shown), shown


def test_the_store_folder_default_is_shown() -> None:
    shown = _flat(CliRunner().invoke(app, ["logs", "--help"], env={"COLUMNS": "200"}).output)
    assert "Store folder. [env var: AIOFLOW_ROOT] [default: (./.aioflow or the nearest" in shown
    assert "Show this attempt. [default: (the latest)]" in shown


def aioflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*aioflow_command(), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_run_help_without_a_flow_file_lists_the_run_options() -> None:
    for command in ("run", "resume"):
        result = aioflow(command, "--help")
        assert result.returncode == 0, result.stderr
        assert f"Usage: aioflow {command} [OPTIONS] FLOW_FILE" in result.stdout
        for option in ("--max-workers", "--max-num-splits", "--tag", "--root", "--quiet"):
            assert option in result.stdout
        assert "[default: 16; x>=1]" in _flat(result.stdout)


def test_version_and_shell_completion() -> None:
    assert aioflow("--version").stdout == f"aioflow {__version__}\n"
    assert "--install-completion" in aioflow("--help").stdout
    script = aioflow("--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "_aioflow_completion" in script.stdout


# -- the graph as text, dot and mermaid ---------------------------------------------------------


class ShapesFlow(FlowSpec):
    """Every kind of transition."""

    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.next(self.meet)

    @step
    def b(self):
        self.next(self.meet)

    @step
    def meet(self, inputs):
        self.next(self.decide)

    @step
    def decide(self):
        self.mode = "short"
        self.next({"short": self.end, "long": self.extra}, condition="mode")

    @step
    def extra(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_graph_as_dot() -> None:
    dot = graph_text(FlowGraph(ShapesFlow), "dot")
    assert dot.startswith('digraph "ShapesFlow" {\n')
    assert dot.rstrip().endswith("}")
    for line in [
        '"start" [shape=diamond];',
        '"end";',
        '"start" -> "a";',
        '"start" -> "b";',
        '"a" -> "work" [label="foreach items"];',
        '"decide" -> "end" [label="mode = short"];',
        '"decide" -> "extra" [label="mode = long"];',
        '"gather" -> "meet";',
    ]:
        assert f"  {line}\n" in dot


def test_graph_as_mermaid() -> None:
    mermaid = graph_text(FlowGraph(ShapesFlow), "mermaid")
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart TD"
    # `end` is a Mermaid keyword: ids carry a prefix, labels the step's name.
    assert '    step_end["end"]' in lines
    assert '    step_decide{"decide"}' in lines
    assert '    step_a -->|"foreach items"| step_work' in lines
    assert '    step_decide -->|"mode = long"| step_extra' in lines
    assert "    step_extra --> step_end" in lines


def test_graph_as_text_is_metaflows_show() -> None:
    graph = FlowGraph(ShapesFlow)
    assert graph_text(graph, "text") == graph.describe()
    with pytest.raises(ValueError, match="Unknown graph format 'svg'"):
        graph_text(graph, "svg")


# -- python flow.py <command> -------------------------------------------------------------------

FLOW = '''
from aioflow import FlowSpec, step


class HabitFlow(FlowSpec):
    """Habits of Metaflow users."""

    @step
    def start(self):
        print("hello from start")
        self.x = 42
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HabitFlow()
'''


@pytest.fixture(scope="module")
def habit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder with the flow file and one run of it in its own store; the environment to use."""
    folder = tmp_path_factory.mktemp("habit")
    (folder / "habit_flow.py").write_text(textwrap.dedent(FLOW))
    env = {**os.environ, "AIOFLOW_ROOT": str(folder / "store"), "AIOFLOW_USER": "habits"}
    result = subprocess.run(
        [sys.executable, "habit_flow.py", "run", "--quiet"],
        cwd=folder, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    yield folder, env


def python_flow(habit: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    folder, env = habit
    return subprocess.run(
        [sys.executable, "habit_flow.py", *args],
        cwd=folder, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_python_flow_offers_the_aioflow_commands(habit: tuple[Path, dict[str, str]]) -> None:
    shown = python_flow(habit, "--help").stdout
    for command in ("run", "resume", "show", "check", "logs", "dump", "tag", "output-dot"):
        assert f"  {command} " in shown, shown
    assert "output-mermaid" in shown


def test_python_flow_logs_and_dump_take_pathspecs_without_the_flow(
    habit: tuple[Path, dict[str, str]],
) -> None:
    logs = python_flow(habit, "logs", "1/start", "--stdout")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "hello from start\n"
    assert "Dumping logs of HabitFlow/1/start/1" in logs.stderr
    full = python_flow(habit, "logs", "HabitFlow/1/start", "--stdout")
    assert full.stdout == logs.stdout
    dump = python_flow(habit, "dump", "1/start")
    assert dump.returncode == 0, dump.stderr
    assert "x [size: 2 type: int] = 42" in dump.stdout
    missing = python_flow(habit, "logs", "9/start")
    assert missing.returncode == 1
    assert "Run('HabitFlow/9') does not exist" in missing.stderr
    assert "RunID/StepName" in _flat(python_flow(habit, "logs", "--help").stdout)


def test_python_flow_tag(habit: tuple[Path, dict[str, str]]) -> None:
    added = python_flow(habit, "tag", "add", "1", "reviewed")
    assert added.returncode == 0, added.stderr
    assert "user tags:   reviewed" in added.stdout
    listed = python_flow(habit, "tag", "list", "1")
    assert listed.stdout.startswith("HabitFlow/1\n")
    assert "reviewed" in listed.stdout


def test_python_flow_and_aioflow_print_the_same_graph(habit: tuple[Path, dict[str, str]]) -> None:
    folder, _ = habit
    for fmt, command in (("dot", "output-dot"), ("mermaid", "output-mermaid")):
        from_python = python_flow(habit, command)
        assert from_python.returncode == 0, from_python.stderr
        assert python_flow(habit, "show", "--format", fmt).stdout == from_python.stdout
        shown = aioflow("show", "habit_flow.py", "--format", fmt, cwd=folder)
        assert shown.stdout == from_python.stdout
    assert "step_start --> step_end" in python_flow(habit, "output-mermaid").stdout
    bad = aioflow("show", "habit_flow.py", "--format", "svg", cwd=folder)
    assert bad.returncode == 2
    assert "svg" in bad.stderr
