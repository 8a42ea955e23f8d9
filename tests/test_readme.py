"""README.md is tested as written: every fenced block in it runs here, or says why it does not.

An HTML comment on the line before a fence (invisible on GitHub) says how its block is tested:

    <!-- test: file=hello.py -->    a file the other blocks use, written into the work folder
    <!-- test: run=SCENE -->        run by the test of that scene below (a name in SCENES)
    <!-- test: ci-setup -->         a set-up command `.ci/run` runs literally (pip): only the two
                                    under "## Set up"
    <!-- test: skip: REASON -->     not run, for the reason given

A block without a marker, or naming a scene no test runs, fails `test_every_block_is_tested`,
so a new snippet cannot go untested.

Python blocks run statement by statement in a namespace holding what the README says they build
on (`HelloFlow`, loaded from the `file=hello.py` block; a FastAPI `app` for the service
fragment), top-level `await` allowed as in a notebook cell. An expression statement ending in
`# ... -> VALUE` shows its output: its value's repr must be VALUE. Shell blocks run line by line
as subprocesses in a work folder holding the README's files, with `$AIOFLOW_ROOT` set; each
line needs a check in its scene's table (a literal line is run exactly as written, an `or:`
alternative in its comment too; a synopsis with `[optional]` parts runs without them and with
all of them, see `expand`), and a line without one fails the scene.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from aioflow import Run, Task, run_flow, run_flow_sync
from aioflow.flowspec import FlowSpec
from aioflow.loader import load_flow

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
HI = ["HI A", "HI B", "HI C"]

#: The scenes; `test_<scene>` below (dashes as underscores) runs each one.
SCENES = {
    "cli",
    "service",
    "notebook",
    "events",
    "testing",
    "reading",
    "client-cli",
    "resume-cli",
    "resume",
    "runner",
    "step-decorators",
    "benchmarks",
    "daily-cli",
    "run-step",
    "cards",
    "cards-cli",
    "see-a-run",
    "see-a-run-cli",
    "dask",
    "shared-store-cli",
    "shared-store-config",
}

# -- reading the README ---------------------------------------------------------------------------

FENCE_RE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\s*$")
MARKER_RE = re.compile(r"^ *<!-- test: (?P<body>.+?) -->\s*$")
HEADING_RE = re.compile(r"^#+ (.+)$")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README, dedented, with the marker before it."""

    lang: str
    code: str
    line: int  # the README line of the block's first code line (1-based)
    heading: str
    marker: str | None
    path: Path = README  # the Markdown file it is in (tests/test_docs.py reads docs/ too)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line} (under {self.heading!r})"

    def _marked(self, key: str) -> str | None:
        prefix = f"{key}="
        marker = self.marker or ""
        return marker[len(prefix) :] if marker.startswith(prefix) else None

    @property
    def scene(self) -> str | None:
        """The scene of a `run=SCENE` block."""
        return self._marked("run")

    @property
    def file(self) -> str | None:
        """The file name of a `file=NAME` block."""
        return self._marked("file")


def read_blocks(text: str, path: Path = README) -> list[Block]:
    """Every fenced block of a Markdown text (the file at `path`), in order."""
    lines = text.splitlines()
    blocks = []
    heading = "(top)"
    i = 0
    while i < len(lines):
        if match := HEADING_RE.match(lines[i]):
            heading = match.group(1)
        fence = FENCE_RE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent = fence.group("indent")
        end = next(j for j in range(i + 1, len(lines)) if lines[j] == f"{indent}```")
        body = [line[len(indent) :] for line in lines[i + 1 : end]]
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER_RE.match(before)
        blocks.append(
            Block(
                lang=fence.group("lang"),
                code="\n".join(body) + "\n",
                line=i + 2,
                heading=heading,
                marker=marker.group("body") if marker else None,
                path=path,
            )
        )
        i = end + 1
    return blocks


BLOCKS = read_blocks(README.read_text())


def blocks(scene: str) -> list[Block]:
    """The blocks a scene runs, in README order."""
    assert scene in SCENES, scene
    found = [b for b in BLOCKS if b.scene == scene]
    assert found, f"no README block is marked <!-- test: run={scene} -->"
    return found


def test_every_block_is_tested() -> None:
    untested = []
    for block in BLOCKS:
        marker = block.marker or ""
        known = (
            marker == "ci-setup"
            or block.file is not None
            or (marker.startswith("skip: ") and len(marker) > len("skip: "))
            or block.scene in SCENES
        )
        if not known:
            untested.append(f"{block.where}: {marker or 'no <!-- test: ... --> marker'}")
    assert not untested, "README blocks no test runs:\n" + "\n".join(untested)
    assert {b.scene for b in BLOCKS if b.scene} == SCENES
    for scene in SCENES:
        assert callable(globals().get(f"test_{scene.replace('-', '_')}")), scene


def test_the_ci_set_up_commands_are_the_two_under_set_up() -> None:
    """`.ci/run` runs the `pip install` lines under "## Set up" literally; nothing here runs pip."""
    setup = [b for b in BLOCKS if b.marker == "ci-setup"]
    assert [b.heading for b in setup] == ["Set up", "Set up"]
    assert [b.code for b in setup] == [
        "pip install -e . && aioflow run examples/foreach.py\n",
        "pip install -e '.[test]' && python -m pytest\n",
    ]
    assert (REPO / "examples" / "foreach.py").is_file()
    section = README.read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert [line for line in section.splitlines() if line.startswith("pip install")] == [
        b.code.strip() for b in setup
    ]
    for block in BLOCKS:
        if "pip install" in block.code and block.marker != "ci-setup":
            assert (block.marker or "").startswith("skip: "), f"{block.where} runs pip"


def test_read_blocks_sees_indented_fences_and_markers() -> None:
    text = (
        "# T\n\n- item:\n\n  <!-- test: run=x -->\n  ```python\n  a = 1\n  ```\n\n"
        "```bash\nls\n```\n"
    )
    first, second = read_blocks(text)
    assert (first.lang, first.code, first.line, first.marker) == ("python", "a = 1\n", 7, "run=x")
    assert (second.lang, second.code, second.heading, second.marker) == ("bash", "ls\n", "T", None)


# -- the work folder ------------------------------------------------------------------------------


@dataclass
class Done:
    """A finished command line."""

    command: str
    code: int
    out: str
    err: str

    def ok(self) -> Done:
        assert self.code == 0, f"`{self.command}` exited {self.code}:\n{self.out}{self.err}"
        return self


@dataclass
class Shell:
    """Runs command lines as subprocesses in one folder and environment, and records them."""

    cwd: Path
    env: dict[str, str]
    ran: list[str] = field(default_factory=list)
    #: README commands run otherwise than as written (or not at all), and why.
    instead: dict[str, str] = field(default_factory=dict)

    def __call__(self, command: str) -> Done:
        argv = shlex.split(command)
        # `python` is this interpreter; `aioflow` is found on PATH, which starts with its folder.
        if argv[0] == "python":
            argv[0] = sys.executable
        done = subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=90
        )
        self.ran.append(command)
        return Done(command, done.returncode, done.stdout, done.stderr)


@dataclass
class Work:
    """A folder holding the README's files, with its own store at `$AIOFLOW_ROOT`."""

    path: Path
    shell: Shell

    def hello_flow(self) -> type[FlowSpec]:
        return load_flow(self.path / "hello.py")

    def three_runs(self) -> None:
        """The store the README's `HelloFlow/3` examples read: three runs of `hello.py`."""
        flow = self.hello_flow()
        for _ in range(3):
            run_flow_sync(flow, greeting="hi", quiet=True)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    folder = tmp_path / "work"
    folder.mkdir()
    for block in BLOCKS:
        if block.file:
            (folder / block.file).write_text(block.code)
    monkeypatch.setenv("AIOFLOW_ROOT", str(tmp_path / "store"))
    # The README's `--namespace user:alice` is the namespace of the runs made here.
    monkeypatch.setenv("AIOFLOW_USER", "alice")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.chdir(folder)
    # The loader puts the flow file's folder on sys.path: monkeypatch takes it off again.
    monkeypatch.syspath_prepend(str(folder))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    yield Work(folder, Shell(folder, env))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


# -- running Python blocks ------------------------------------------------------------------------

SHOWN_RE = re.compile(r"#.*-> (?P<value>.+)$")
TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


async def run_python(block: Block, namespace: dict[str, Any]) -> None:
    """Run a Python block statement by statement in `namespace`, checking the values it shows.

    Runs in a task of its own, so context variables it sets (`namespace(None)`) stay there.
    """
    await asyncio.create_task(_run_statements(block, namespace))


async def _run_statements(block: Block, namespace: dict[str, Any]) -> None:
    tree = ast.parse(block.code, filename=str(block.path))
    ast.increment_lineno(tree, block.line - 1)  # tracebacks name the Markdown file's lines
    lines = block.code.splitlines()
    for statement in tree.body:
        shown = SHOWN_RE.search(lines[(statement.end_lineno or statement.lineno) - block.line])
        if shown is None:
            code = compile(ast.Module([statement], []), str(block.path), "exec", TOP_LEVEL_AWAIT)
            await _evaluate(code, namespace)
            continue
        where = f"{block.path.name}:{statement.lineno}"
        assert isinstance(statement, ast.Expr), f"{where}: `->` on a statement"
        code = compile(ast.Expression(statement.value), str(block.path), "eval", TOP_LEVEL_AWAIT)
        value = await _evaluate(code, namespace)
        assert repr(value) == shown.group("value"), where


async def _evaluate(code: Any, namespace: dict[str, Any]) -> Any:
    result = eval(code, namespace)
    if code.co_flags & inspect.CO_COROUTINE:
        result = await result
    return result


def test_run_python_checks_shown_values() -> None:
    block = Block("python", "x = 1\nx + 1  # -> 3\n", line=1, heading="", marker=None)
    with pytest.raises(AssertionError):
        asyncio.run(_run_statements(block, {}))


# -- running shell blocks -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShellLine:
    command: str
    comment: str
    where: str

    @property
    def alternative(self) -> str | None:
        """The command after `or:` in the comment (`# or: aioflow list`), if any."""
        match = re.match(r"or: (.+)", self.comment)
        return match.group(1).strip() if match else None


def shell_lines(block: Block) -> list[ShellLine]:
    lines = []
    for offset, text in enumerate(block.code.splitlines()):
        if text.strip():
            command, _, comment = text.partition(" #")
            lines.append(
                ShellLine(
                    command.strip(), comment.strip(), f"{block.path.name}:{block.line + offset}"
                )
            )
    return lines


def expand(synopsis: str, **values: str) -> list[str]:
    """The command lines a synopsis stands for: without its `[optional]` parts, then with all of
    them, once per alternative of an `[a|b]` part; upper-case metavariables (N, STEP) take
    `values`."""
    parts = re.findall(r"\[[^\]]*\]|\S+", synopsis)
    groups = [p[1:-1].split("|") if p.startswith("[") else None for p in parts]
    widest = max((len(g) for g in groups if g), default=0)
    variants = [[p for p, g in zip(parts, groups, strict=True) if g is None]]
    for i in range(widest):
        variants.append(
            [p if g is None else g[min(i, len(g) - 1)] for p, g in zip(parts, groups, strict=True)]
        )

    def fill(word: str) -> str:
        if re.fullmatch(r"[A-Z]+", word):
            assert word in values, f"{synopsis!r}: no value for {word}"
            return values[word]
        return word

    return [" ".join(fill(w) for w in " ".join(v).split()) for v in variants]


def test_expand() -> None:
    assert expand("a logs F/1 [--stdout|--stderr] [--attempt N]", N="0") == [
        "a logs F/1",
        "a logs F/1 --stdout --attempt 0",
        "a logs F/1 --stderr --attempt 0",
    ]
    assert expand("aioflow check hello.py") == ["aioflow check hello.py"]


Handler = Callable[[Shell, ShellLine], None]


def run_shell_scene(scene: str, shell: Shell, handlers: dict[str, Handler]) -> None:
    """Run a scene's shell lines in README order through their handlers."""
    lines = [line for block in blocks(scene) for line in shell_lines(block)]
    missing = [f"{line.where}: {line.command}" for line in lines if line.command not in handlers]
    assert not missing, f"shell lines of scene {scene!r} without a check:\n" + "\n".join(missing)
    stale = set(handlers) - {line.command for line in lines}
    assert not stale, f"checks of scene {scene!r} for lines the README no longer has: {stale}"
    for line in lines:
        before = len(shell.ran)
        handlers[line.command](shell, line)
        ran = shell.ran[before:]
        if "[" not in line.command and line.command not in shell.instead:
            assert line.command in ran, f"{line.where}: not run as written, and no reason why"
        if line.alternative and not line.alternative.endswith("..."):
            assert line.alternative in ran, f"{line.where}: the `or:` command was not run"


# -- the scenes -----------------------------------------------------------------------------------

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"


def task_line(step: str, text: str) -> str:
    """A console line of a task of `step` saying `text`, as a regular expression."""
    return rf"^{STAMP} \[\d+/{step}/\d+\] {re.escape(text)}$"


def _printed_hi(done: Done) -> None:
    """A `run` of hello.py: the end step printed the shouts, and the run finished."""
    done.ok()
    assert re.search(task_line("end", repr(HI)), done.out, re.M), done.out
    assert done.out.splitlines()[-1].endswith(" Done!")


def _run_hello(sh: Shell, line: ShellLine) -> None:
    _printed_hi(sh(line.command))
    assert line.alternative
    _printed_hi(sh(line.alternative))


def _help(sh: Shell, line: ShellLine) -> None:
    out = sh(line.command).ok().out
    assert out.startswith("Usage: aioflow run hello.py [OPTIONS]")
    assert re.search(r"--greeting TEXT\s+What to say\s+\[default: hello\]", out)


def _show(sh: Shell, line: ShellLine) -> None:
    out = sh(line.command).ok().out
    assert out.startswith("Upper-case some words, in parallel.\n")
    assert re.findall(r"^Step (\w+)$", out, re.M) == ["start", "shout", "join", "end"]
    assert "Step start\n    ?\n    => shout (foreach over words)\n" in out


def _mermaid(sh: Shell, line: ShellLine) -> None:
    out = sh(line.command).ok().out
    assert out.startswith("flowchart TD\n")
    assert '    step_start -->|"foreach words"| step_shout\n' in out
    assert line.alternative
    assert sh(line.alternative).ok().out == out


def _version(sh: Shell, line: ShellLine) -> None:
    assert re.fullmatch(r"aioflow \d+\.\d+\.\d+\S*\n", sh(line.command).ok().out)


def _check(sh: Shell, line: ShellLine) -> None:
    done = sh(line.command).ok()
    assert "The graph looks good!" in done.err
    assert "Workflow starting" not in done.out


def test_cli(work: Work) -> None:
    run_shell_scene(
        "cli",
        work.shell,
        {
            "aioflow run hello.py --greeting hi": _run_hello,
            "aioflow run hello.py --help": _help,
            "aioflow show hello.py": _show,
            "aioflow show hello.py --format mermaid": _mermaid,
            "aioflow check hello.py": _check,
            "aioflow --version": _version,
        },
    )
    # Only the two runs were stored: --help, show and check store nothing.
    listed = work.shell("aioflow runs").ok().out
    assert re.findall(r"^(HelloFlow/\d+) ", listed, re.M) == ["HelloFlow/2", "HelloFlow/1"]


async def test_service(work: Work) -> None:
    """The route fragment, on an app of its own, called as a client would call it."""
    app = FastAPI()
    (block,) = blocks("service")
    await run_python(block, {"app": app, "HelloFlow": work.hello_flow()})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/hello", params={"greeting": "hi"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"run": "HelloFlow/1", "all": HI}
    assert "api" in Run(body["run"]).user_tags


async def test_notebook(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = blocks("notebook")
    await run_python(block, {"HelloFlow": work.hello_flow()})
    out = capsys.readouterr().out
    assert "Workflow starting (run-id 1):" in out and out.rstrip().endswith("Done!")


async def test_events(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"HelloFlow": work.hello_flow()}
    (block,) = blocks("events")
    await run_python(block, namespace)
    run = namespace["run"]
    assert run.successful
    printed = capsys.readouterr().out.splitlines()
    assert printed == [run.id, f"{run['end'].task.pathspec} {HI!r}"]


def test_testing(work: Work, tmp_path: Path) -> None:
    """The snippet's files (split at their `# name` lines) next to hello.py, run by pytest."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.py").write_text((work.path / "hello.py").read_text())
    written = []
    for block in blocks("testing"):
        for name, body in re.findall(
            r"^# (\S+\.\w+)\n(.*?)(?=^# \S+\.\w+\n|\Z)", block.code, re.M | re.S
        ):
            (project / name).write_text(body)
            written.append(name)
    assert written == ["conftest.py", "test_hello.py", "pyproject.toml"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AIOFLOW_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b2 passed\b", done.stdout), done.stdout


async def test_reading(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    await asyncio.to_thread(work.three_runs)
    namespace: dict[str, Any] = {}
    (block,) = blocks("reading")
    await run_python(block, namespace)
    run, task = namespace["run"], namespace["task"]
    assert run.pathspec == "HelloFlow/3"
    # The loop printed every task, newest step first.
    out = capsys.readouterr().out
    printed = re.findall(r"^(HelloFlow/\S+) ", out, re.M)
    assert printed[0] == "HelloFlow/3/end/6"
    assert sorted(printed) == sorted(t.pathspec for s in run for t in s)
    # The task named in the comment is the one the line reads.
    (other,) = re.findall(r'# or (Task\("[^"]+"\))', block.code)
    assert eval(other, {"Task": Task}).pathspec == task.pathspec == "HelloFlow/3/end/6"


def _runs(sh: Shell, line: ShellLine) -> None:
    listings = [sh(command).ok().out for command in expand(line.command)]
    assert line.alternative
    listings.append(sh(line.alternative).ok().out)
    for out in listings:
        rows = re.findall(r"^(HelloFlow/\d+) +(\w+) .* alice ", out, re.M)
        assert rows == [(f"HelloFlow/{i}", "succeeded") for i in (3, 2, 1)], out
    assert len(set(listings)) == 1


def _logs(sh: Shell, line: ShellLine) -> None:
    plain, stdout, stderr = (sh(c).ok().out for c in expand(line.command, N="0"))
    assert plain == f"{HI!r}\n"
    assert re.fullmatch(rf"\S+ \S+ {re.escape(repr(HI))}\n", stdout), stdout
    assert stderr == ""


def _dump(sh: Shell, line: ShellLine) -> None:
    everything, chosen = (sh(c).ok().out for c in expand(line.command, N="8"))
    assert re.search(r"^words \[size: \d+ type: list\] = \['a', 'b', 'c'\]$", everything, re.M)
    assert re.search(r"^greeting \[size: \d+ type: str\] = 'hi'$", everything, re.M)
    names = re.findall(r"^(\w+) \[", chosen, re.M)
    assert names == ["greeting", "words"]
    assert "['a', 'b', 'c']" not in chosen  # cut at 8 characters


def _user_tags(out: str) -> str:
    (tags,) = re.findall(r"^ +user tags: +(.*)$", out, re.M)
    return tags


def _tag_add(sh: Shell, line: ShellLine) -> None:
    assert _user_tags(sh(line.command).ok().out) == "nightly, reviewed"
    # `# also: remove, replace --remove A --add B`
    assert _user_tags(sh("aioflow tag remove HelloFlow/3 reviewed").ok().out) == "nightly"
    (replace,) = expand("aioflow tag replace HelloFlow/3 --remove A --add B", A="nightly", B="ok")
    assert _user_tags(sh(replace).ok().out) == "ok"


def _tag_list(sh: Shell, line: ShellLine) -> None:
    every, grouped = (sh(c).ok().out for c in expand(line.command))
    assert re.findall(r"^(HelloFlow/\d+)$", every, re.M) == [
        "HelloFlow/3",
        "HelloFlow/2",
        "HelloFlow/1",
    ]
    assert "system tags: " in every and "user:alice" in every
    assert grouped.split() == ["ok", "HelloFlow/3"]


def test_client_cli(work: Work) -> None:
    work.three_runs()
    run_shell_scene(
        "client-cli",
        work.shell,
        {
            "aioflow runs [HelloFlow] [-n 20] [--namespace user:alice]": _runs,
            "aioflow logs HelloFlow/3/end [--stdout|--stderr] [--timestamps] [--attempt N]": _logs,
            "aioflow dump HelloFlow/3/start/1 [--private] [--include words,greeting] "
            "[--max-value-size N]": _dump,
            "aioflow tag add HelloFlow/3 reviewed nightly": _tag_add,
            "aioflow tag list HelloFlow [--hide-system-tags] [--group-by-tag]": _tag_list,
        },
    )


def _resume(sh: Shell, line: ShellLine) -> None:
    commands = expand(line.command, STEP="join")
    # `# or: python hello.py resume ...`: the same arguments after `python hello.py resume`.
    assert line.alternative == "python hello.py resume ..."
    commands += [c.replace("aioflow resume hello.py", "python hello.py resume") for c in commands]
    for command in commands:
        done = sh(command).ok()
        from_join = "join" in command
        # Without --origin-run-id: the latest run started by `run`, so never a resumed one.
        assert "Resuming HelloFlow/3" + (" from step join" if from_join else "") in done.err
        cloned = re.findall(r"\[\d+/(\w+)/\d+\] Cloning results", done.out)
        assert cloned == (
            ["start", "shout", "shout", "shout"]
            if from_join
            else ["start", "shout", "shout", "shout", "join", "end"]
        )
        if from_join:
            _printed_hi(done)


def test_resume_cli(work: Work) -> None:
    work.three_runs()
    run_shell_scene(
        "resume-cli",
        work.shell,
        {"aioflow resume hello.py [STEP] [--origin-run-id 3]": _resume},
    )


async def test_resume(work: Work) -> None:
    await asyncio.to_thread(work.three_runs)
    namespace: dict[str, Any] = {"HelloFlow": work.hello_flow()}
    (block,) = blocks("resume")
    await run_python(block, namespace)
    run = namespace["run"]
    assert run.successful and run.id == "4"
    assert run["start"].task.origin_pathspec == "HelloFlow/3/start/1"
    assert run["join"].task.origin_pathspec is None  # run again, from the named step
    assert run["end"].task.data.all == HI


async def test_runner(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"HelloFlow": work.hello_flow()}
    (block,) = blocks("runner")
    await run_python(block, namespace)
    assert namespace["running"].run.data.all == HI
    assert namespace["executing"].status == "successful"
    out = capsys.readouterr().out
    assert "Run('HelloFlow/1') 0 " in out and "Done!" in out
    assert re.search(task_line("end", repr(["HELLO A", "HELLO B", "HELLO C"])), out, re.M), out


#: What the step fragments call, so each runs as written; each result says that it ran where and
#: how its decorator promises.
FRAGMENT_HELPERS = '''
import os

from aioflow import FlowSpec, catch, current, environment, resources, retry, step, timeout


def download(url):
    """Fails on the first attempt, so @retry has something to do."""
    if current.retry_count == 0:
        raise ConnectionError(f"{url} did not answer")
    return f"<html>{url}</html>"


def parse_rows(page):
    """Always fails, so @catch has something to do."""
    raise ValueError(f"no rows in {page}")


def run_simulation(params):
    return {"params": params, "pid": os.getpid()}


def fit(data):
    return {"mean": sum(data) / len(data), "pid": os.getpid()}


def compute(matrix):
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid()}
'''

FRAGMENT_FLOW = """

class {name}(FlowSpec):
    @step
    def start(self):
        self.url, self.params, self.data, self.matrix = "https://a.invalid", [1, 2], [1, 3], [[1]]
        self.next(self.{first})

{steps}
    @step
    def end(self):
        pass
"""


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"no {pattern!r} in:\n{text}"
    return match.group(1)


def fragment_flows(fragments: list[str], folder: Path) -> list[type[FlowSpec]]:
    """Flows start -> fragment -> ... -> end, one per chain of fragments naming each other."""
    steps = {_found(r"def (\w+)\(self", fragment): fragment for fragment in fragments}
    after = {name: _found(r"self\.next\(self\.(\w+)\)", code) for name, code in steps.items()}
    flows = []
    for first in [name for name in steps if name not in after.values()]:
        chain = [first]
        while after[chain[-1]] != "end":
            chain.append(after[chain[-1]])
        name = f"{first.title()}Flow"
        body = "\n".join(textwrap.indent(steps[s], "    ") for s in chain)
        path = folder / f"{first}_flow.py"
        path.write_text(FRAGMENT_HELPERS + FRAGMENT_FLOW.format(name=name, first=first, steps=body))
        flows.append(load_flow(path))
    return flows


async def test_step_decorators(work: Work) -> None:
    fragments = [b.code for b in blocks("step-decorators")]
    flows = {flow.__name__: flow for flow in fragment_flows(fragments, work.path)}
    assert set(flows) == {"FetchFlow", "SimulateFlow", "TrainFlow", "CrunchFlow"}
    runs = {name: await run_flow(flow, quiet=True) for name, flow in flows.items()}
    assert all(run.successful for run in runs.values())

    fetch = runs["FetchFlow"]["fetch"].task
    assert fetch.metadata_dict["attempt"] == "1"  # retried once, then succeeded
    assert fetch.data.page == "<html>https://a.invalid</html>"
    parse = runs["FetchFlow"]["parse"].task
    assert not parse.successful  # caught: the run went on
    assert parse.data.parse_error.type == "builtins.ValueError"

    for name, step, artifact in [
        ("SimulateFlow", "simulate", "result"),
        ("TrainFlow", "train", "model"),
        ("CrunchFlow", "crunch", "stats"),
    ]:
        value = getattr(runs[name][step].task.data, artifact)
        assert value["pid"] != os.getpid(), f"{step} did not run in a worker process"
    assert runs["CrunchFlow"]["crunch"].task.data.stats["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in os.environ


def _benchmark(*expected: str) -> Handler:
    """Run the module in its `--quick` mode (the README's sizes take minutes)."""

    def check(sh: Shell, line: ShellLine) -> None:
        sh.instead[line.command] = "--quick: the same code on small sizes, seconds, not minutes"
        out = sh(f"{line.command} --quick").ok().out
        assert re.match(r"benchmark +figure +target\n", out), out
        for text in expected:
            assert text in out, f"{text!r} not in:\n{out}"

    return check


def _peers(sh: Shell, line: ShellLine) -> None:
    """Not run: it installs Metaflow and Prefect from PyPI and runs for minutes. The runner is
    run by tests/benchmarks/test_runner_smoke.py; here, only that the option exists."""
    sh.instead[line.command] = "installs Metaflow and Prefect from PyPI, then runs for minutes"
    out = sh("python -m benchmarks --help").ok().out
    assert "--peers" in out


async def test_dask(work: Work) -> None:
    """The three ways to point a run at a Dask cluster, each run for real (local clusters)."""
    namespace: dict[str, Any] = {"HelloFlow": work.hello_flow()}
    (block,) = blocks("dask")
    await run_python(block, namespace)
    run = namespace["run"]
    assert run.successful and run.data.all == ["HELLO A", "HELLO B", "HELLO C"]
    assert namespace["client"].status == "closed"  # the block's own client, closed by it


def _spin(sh: Shell, line: ShellLine) -> None:
    commands = expand(line.command)
    assert line.alternative == "python hello.py spin shout ..."
    commands += [c.replace("aioflow spin hello.py", "python hello.py spin") for c in commands]
    for command in commands:
        done = sh(command).ok()
        task = "HelloFlow/3/shout/3" if "--index 1" in command else "HelloFlow/3/shout/2"
        assert "Step shout succeeded" in done.err and f"spun from {task}" in done.err
        loud = "HI B" if "--index 1" in command else "HI A"
        assert f"    loud = '{loud}'\n    next: join\n" in done.err, done.err


def _runs_delete(sh: Shell, line: ShellLine) -> None:
    out = sh(line.command).ok().out
    assert "Deleted 1 runs: HelloFlow/1." in out and re.search(r"Store .* -> ", out), out
    assert sh(line.command).code == 1  # gone


def _gc(sh: Shell, line: ShellLine) -> None:
    deleting, dry = expand(line.command)
    assert "Deleted 1 runs: HelloFlow/2." in sh(deleting).ok().out
    assert "Would delete 0 runs." in sh(dry).ok().out
    assert "HelloFlow/3 " in sh("aioflow runs").ok().out


def test_daily_cli(work: Work) -> None:
    work.three_runs()
    run_shell_scene(
        "daily-cli",
        work.shell,
        {
            "aioflow spin hello.py shout [--run-id 3] [--index 1]": _spin,
            "aioflow runs delete HelloFlow/1": _runs_delete,
            "aioflow gc --keep-last 1 [--older-than 30d] [--dry-run]": _gc,
        },
    )


async def test_run_step(work: Work, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"HelloFlow": work.hello_flow()}
    (block,) = blocks("run-step")
    await run_python(block, namespace)
    assert "conflicting values:\n[model]." in capsys.readouterr().out


async def test_cards(work: Work) -> None:
    namespace: dict[str, Any] = {"ReportFlow": load_flow(work.path / "report.py")}
    (block,) = blocks("cards")
    await run_python(block, namespace)
    task = namespace["run"]["start"].task
    assert "<td>scores</td>" in namespace["cards"][1].html
    assert "3 / 3" in namespace["cards"][0].html and task.successful
    # The chart's spec, and the libraries that draw it: in the card with the chart only.
    assert '"mark":"line"' in namespace["cards"][0].html
    assert "vegaEmbed(" in namespace["cards"][0].html
    assert "vegaEmbed(" not in namespace["cards"][1].html


def _card_list(sh: Shell, line: ShellLine) -> None:
    out = sh(line.command).ok().out
    assert [row.split("\t")[:3] for row in out.splitlines()] == [
        ["ReportFlow/1/start/1", "blank", "report"],
        ["ReportFlow/1/start/1", "default", "-"],
    ]


def _card_get(sh: Shell, line: ShellLine) -> None:
    sh(line.command).ok()
    assert "<h1>Scores</h1>" in (sh.cwd / "report.html").read_text()


def _card_view(sh: Shell, line: ShellLine) -> None:
    # BROWSER=true: the browser webbrowser starts is `true URL`, which opens nothing.
    quiet = Shell(sh.cwd, {**sh.env, "BROWSER": "true"}, sh.ran)
    for command in (line.command, "python report.py card view start --type default"):
        opened = quiet(command).ok().out
        page = Path(opened.removeprefix("Card opened from ").strip())
        assert 'data-card-type="default"' in page.read_text()
        page.unlink()


def test_cards_cli(work: Work) -> None:
    run_flow_sync(load_flow(work.path / "report.py"), quiet=True)
    run_shell_scene(
        "cards-cli",
        work.shell,
        {
            "aioflow card list ReportFlow/1": _card_list,
            "aioflow card get ReportFlow/1/start/1 report.html --id report": _card_get,
            "aioflow card view ReportFlow/1/start --type default": _card_view,
        },
    )


async def test_see_a_run(work: Work) -> None:
    namespace: dict[str, Any] = {"HelloFlow": work.hello_flow()}
    (block,) = blocks("see-a-run")
    await run_python(block, namespace)
    page = (work.path / "hello.html").read_text()
    assert f"<title>{namespace['run'].pathspec} · aioflow report</title>" in page
    assert "&#215;3</text>" in page  # the foreach's fan-out, on the DAG


def _run_with_report(sh: Shell, line: ShellLine) -> None:
    done = sh(line.command).ok()
    assert "Wrote the report of HelloFlow/1 to run.html" in done.err
    assert 'data-step="shout"' in (sh.cwd / "run.html").read_text()


def _report(sh: Shell, line: ShellLine) -> None:
    sh(line.command).ok()
    assert '<svg id="timeline"' in (sh.cwd / "report.html").read_text()


def _ui(sh: Shell, line: ShellLine) -> None:
    # On a free port: 8420 may be taken on a shared machine. The first line names the address.
    sh.instead[line.command] = "served on a free port (--port 0), then stopped with Ctrl-C"
    argv = shlex.split(line.command.replace("--port 8420", "--port 0"))
    ui = subprocess.Popen(argv, cwd=sh.cwd, env=sh.env, text=True, stderr=subprocess.PIPE)
    try:
        assert ui.stderr is not None
        announced = ui.stderr.readline()
        address = announced.split(" at ", 1)[1].split()[0]
        assert address.startswith("http://127.0.0.1:"), announced
        runs = httpx.get(address, timeout=30).text
        assert 'data-run="HelloFlow/1"' in runs
        assert 'id="dag"' in httpx.get(f"{address}runs/HelloFlow/1", timeout=30).text
    finally:
        ui.send_signal(signal.SIGINT)
        ui.communicate(timeout=30)


def test_see_a_run_cli(work: Work) -> None:
    run_shell_scene(
        "see-a-run-cli",
        work.shell,
        {
            "aioflow run hello.py --report run.html": _run_with_report,
            "aioflow report HelloFlow/1 -o report.html": _report,
            "aioflow ui --port 8420": _ui,
        },
    )


def test_benchmarks(work: Work) -> None:
    shell = Shell(REPO, work.shell.env)  # `benchmarks` is imported from the repository
    run_shell_scene(
        "benchmarks",
        shell,
        {
            "python -m benchmarks --peers": _peers,
            "python -m benchmarks.core": _benchmark("foreach of", "aioflow run examples/linear.py"),
            "python -m benchmarks.executors": _benchmark("process executor", "round trip"),
            "python -m benchmarks.client": _benchmark("Flow(name).latest_run", "resume"),
            "python -m benchmarks.embedding": _benchmark("await run_flow", "event-loop lag"),
            "python -m benchmarks.daily_loop": _benchmark("aioflow spin", "aioflow gc"),
        },
    )


# -- shared stores (README: "Artifacts in object storage, and one store for a team") ------------

TEAM_BLOBS = "s3://team-bucket/runs"


def test_shared_store_cli(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    from aioflow.client import Flow
    from tests.s3_server import S3Server

    work.three_runs()
    server = S3Server()  # a real S3 server on 127.0.0.1 holding the README's bucket
    try:
        server.bucket("team-bucket")
        shell = Shell(work.path, {**work.shell.env, **server.env()})

        def info(sh: Shell, line: ShellLine) -> None:
            out = sh(line.command).ok().out
            assert f"blobs:    {TEAM_BLOBS} (from $AIOFLOW_BLOBS)" in out  # --blobs exports it
            assert f"blobs reachable: {TEAM_BLOBS} (reachable)" in out
            assert "metadata reachable: 1 flow(s) stored" in out

        def copy(sh: Shell, line: ShellLine) -> None:
            out = sh(line.command).ok().out
            assert out.splitlines()[0] == "HelloFlow/3 -> HelloFlow/1"
            for name, value in server.env().items():
                monkeypatch.setenv(name, value)
            monkeypatch.setenv("AIOFLOW_BLOBS", TEAM_BLOBS)
            run = Flow("HelloFlow", root=work.path / "team-store").latest_run
            assert run is not None and run["end"].task.data.all == HI

        run_shell_scene(
            "shared-store-cli",
            shell,
            {
                f"aioflow --blobs {TEAM_BLOBS} run hello.py": lambda sh, line: _done(
                    sh(line.command)
                ),
                f"aioflow --blobs {TEAM_BLOBS} store info": info,
                f"aioflow store copy HelloFlow/3 --to team-store --to-blobs {TEAM_BLOBS}": copy,
            },
        )
    finally:
        server.stop()


def _done(done: Done) -> None:
    assert done.ok().out.splitlines()[-1].endswith("Done!")


def test_shared_store_config(work: Work) -> None:
    from aioflow.store.settings import store_settings

    (block,) = blocks("shared-store-config")
    (work.path / ".git").mkdir()
    (work.path / "aioflow.toml").write_text(block.code)
    nested = work.path / "notebooks"
    nested.mkdir()
    settings = store_settings(cwd=nested)  # found walking up from a folder below
    assert settings.metadata == "postgresql://aioflow@db.internal/aioflow"
    assert settings.blobs == TEAM_BLOBS
    assert settings.sources == {
        "metadata": str(work.path / "aioflow.toml"),
        "blobs": str(work.path / "aioflow.toml"),
    }
