"""The documentation site (docs/, mkdocs.yml) is tested as written, as the README is.

Every fenced block of every page runs here, or says why not, with the reader and the Python
runner of tests/test_readme.py. A page's blocks run in order, in a work folder of their own
(with its own store at `$AIOFLOW_ROOT`) and one Python namespace, as a reader would type them.
The comment on the line before a fence says how:

    <!-- test: file=NAME -->       a file written into the work folder before the page runs
    <!-- test: python -->          run statement by statement, top-level `await` allowed; a
                                   statement ending in `# ... -> VALUE` must show that repr
    <!-- test: shell -->           each line run as a subprocess, which must exit 0; a line's
    <!-- test: shell exit=N -->    comment `# -> TEXT` must appear in what it printed
    <!-- test: skip: REASON -->    not run, for the reason given

A block without a language or marked `text` is a diagram or printed output, not code, and
needs no marker.

The build itself (`mkdocs build --strict`) runs in `.ci/run`; here are its hooks' checks: the
CLI reference has a section for every command, the performance page the README's results.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.test_readme import Block, Shell, read_blocks, run_python, shell_lines

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
SHELL_RE = re.compile(r"shell(?: exit=(?P<code>\d+))?")


def page_blocks(page: Path) -> list[Block]:
    return read_blocks(page.read_text(), page)


def test_every_block_is_tested() -> None:
    untested = []
    for page in PAGES:
        for block in page_blocks(page):
            marker = block.marker or ""
            known = (
                block.file is not None
                or block.lang in ("", "text")
                or marker == "python"
                or SHELL_RE.fullmatch(marker)
                or (marker.startswith("skip: ") and len(marker) > len("skip: "))
            )
            if not known:
                untested.append(f"{block.where}: {marker or 'no <!-- test: ... --> marker'}")
    assert not untested, "docs blocks no test runs:\n" + "\n".join(untested)


def test_the_nav_lists_every_page() -> None:
    nav = re.findall(r"^ *- [^:\n]+: (\S+\.md)$", (REPO / "mkdocs.yml").read_text(), re.M)
    assert sorted(nav) == sorted(page.name for page in PAGES)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.setenv("AIOFLOW_ROOT", str(tmp_path / "store"))
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))  # `from hello import HelloFlow`
    yield folder
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def run_shell(block: Block, shell: Shell) -> None:
    match = SHELL_RE.fullmatch(block.marker or "")
    assert match
    expected = int(match.group("code") or 0)
    for line in shell_lines(block):
        done = shell(line.command)
        printed = done.out + done.err
        assert done.code == expected, (
            f"{line.where}: `{line.command}` exited {done.code}:\n{printed}"
        )
        if line.comment.startswith("-> "):
            assert line.comment[3:] in printed, (
                f"{line.where}: {line.comment[3:]!r} not in:\n{printed}"
            )


RUNNABLE = [p for p in PAGES if any(b.marker not in (None, "") for b in page_blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.stem for p in RUNNABLE])
async def test_page(page: Path, work: Path) -> None:
    blocks = page_blocks(page)
    for block in blocks:
        if block.file:
            (work / block.file).write_text(block.code)
            # `from foreach import ...` must find this page's file, not a module of that name
            # another test imported (examples/foreach.py).
            sys.modules.pop(Path(block.file).stem, None)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    shell = Shell(work, env)
    namespace: dict[str, Any] = {}
    for block in blocks:
        if block.marker == "python":
            await run_python(block, namespace)
        elif SHELL_RE.fullmatch(block.marker or ""):
            run_shell(block, shell)


# -- the hooks ------------------------------------------------------------------------------------


def hook(name: str) -> ModuleType:
    """A hook module of docs/hooks/, loaded as MkDocs loads it (by path)."""
    spec = importlib.util.spec_from_file_location(
        f"docs_hook_{name}", DOCS / "hooks" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_has_a_section_for_every_command() -> None:
    cli = hook("cli_reference")
    assert cli.MARKER in (DOCS / "cli.md").read_text()
    page = cli.on_page_markdown((DOCS / "cli.md").read_text(), None, None, None)
    headings = re.findall(r"^### `(.+)`$", page, re.M)
    commands = [path for path, _ in cli.walk(cli.aioflow_command(), "aioflow")]
    flow_commands = [path for path, _ in cli.walk(cli.flow_command(), "python flow.py")]
    assert headings == ["aioflow", *commands, *flow_commands]
    # The tree as a user meets it: every command `aioflow --help` lists, `tag`'s included.
    for name in ["run", "resume", "show", "check", "logs", "dump", "runs", "list", "tag add"]:
        assert f"aioflow {name}" in headings
    assert {"python flow.py run", "python flow.py output-mermaid"} <= set(flow_commands)
    # `aioflow run FLOW_FILE` shows the options of a flow's `run`, not only typer's.
    run = page.split("### `aioflow run`", 1)[1].split("### ", 1)[0]
    assert "aioflow run FLOW_FILE [OPTIONS]" in run
    assert "`--max-workers" in run and "`--tag" in run
    assert "<branch>" not in page  # help text is escaped, not read as HTML


def test_the_performance_page_shows_the_benchmarks_readme_results() -> None:
    results = hook("benchmark_results")
    text = (DOCS / "performance.md").read_text()
    assert results.MARKER in text and f"]({results.PLOT_URI})" in text
    block = results.results_block()
    assert block.startswith("```text\naioflow benchmarks on ") and block.endswith("```")
    assert block in (REPO / "benchmarks" / "README.md").read_text()
    assert results.PLOT.is_file()
    assert block in results.on_page_markdown(text, None, None, None)


def test_the_changelog_page_is_changelog_md() -> None:
    changelog = hook("changelog")
    page = changelog.on_page_markdown((DOCS / "changelog.md").read_text(), None, None, None)
    assert "## [Unreleased]" in page and page.count("# Changelog") == 1


# -- the API reference's docstrings ---------------------------------------------------------------


def _undocumented(name: str, obj: Any) -> Iterator[str]:
    if not (obj.__doc__ or "").strip():
        yield name
    if inspect.isclass(obj):
        for attr, value in vars(obj).items():
            function = getattr(value, "__func__", value)  # classmethod, staticmethod
            if attr.startswith("_") or not (
                inspect.isfunction(function) or isinstance(value, property)
            ):
                continue
            if not (function.__doc__ or "").strip():
                yield f"{name}.{attr}"


def test_every_public_name_has_a_docstring() -> None:
    """The API page renders these from their docstrings: none may be empty."""
    import aioflow.client
    import aioflow.events
    import aioflow.exceptions
    import aioflow.testing

    missing = [
        found
        for name in aioflow.__all__
        if name != "__version__"
        for found in _undocumented(name, getattr(aioflow, name))
    ]
    for module in (aioflow.client, aioflow.testing, aioflow.exceptions, aioflow.events):
        for name, obj in vars(module).items():
            ours = getattr(obj, "__module__", "").startswith("aioflow")
            if (
                not name.startswith("_")
                and ours
                and (inspect.isclass(obj) or inspect.isfunction(obj))
            ):
                missing += _undocumented(f"{module.__name__}.{name}", obj)
    assert not missing, "public names without a docstring: " + ", ".join(sorted(set(missing)))


def api_directives() -> list[tuple[str, list[str] | None]]:
    """The `::: path` directives of docs/api.md, each with its `members: [...]` if it has one."""
    found: list[tuple[str, list[str] | None]] = []
    for line in (DOCS / "api.md").read_text().splitlines():
        if line.startswith("::: "):
            found.append((line[4:].strip(), None))
        elif match := re.match(r"^ +members: \[(.*)\]$", line):
            found[-1] = (found[-1][0], [m.strip() for m in match.group(1).split(",")])
    return found


def _resolve(path: str) -> Any:
    """The object a dotted path names: a module, or an attribute of one."""
    try:
        return importlib.import_module(path)
    except ImportError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


def test_the_api_page_renders_every_public_name() -> None:
    """Each name of `aioflow.__all__` is rendered: named by a directive, listed in its members,
    found in a module the page renders whole, or, for a decorator, the class that builds it
    (whose `name` it has) and for `current` its class."""
    import aioflow

    directives = [(_resolve(path), members) for path, members in api_directives()]
    missing = []
    for name in aioflow.__all__:
        obj = getattr(aioflow, name)
        if name == "__version__":
            continue
        covered = any(
            target is obj
            or type(obj) is target  # `current`: its class
            or (inspect.isclass(target) and getattr(target, "name", None) == name)  # @retry
            or (members is not None and name in members and getattr(target, name) is obj)
            or (
                members is None
                and isinstance(target, ModuleType)
                and getattr(target, name, None) is obj
            )
            for target, members in directives
        )
        if not covered:
            missing.append(name)
    assert not missing, f"docs/api.md renders none of: {', '.join(missing)}"
