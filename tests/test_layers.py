"""The package's layers hold, and `lint-imports` (import-linter) catches an import that breaks them.

The contracts live in pyproject.toml (`[tool.importlinter]`); docs/architecture.md draws the
layers. Each planted violation below is a copy of the package with one line added, checked by
the same command CI runs: it must fail and name the contract that was broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

LAYERS = "Layers: cli > front ends > runtime | client > store > core"
CORE = "The core needs no CLI library, no SQLite and no upper layer"
CLIENT = "The client reads the store and never imports the runtime"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` run on the package and pyproject.toml found in `project`."""
    beside = Path(sys.executable).with_name("lint-imports")
    exe = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert exe is not None, "import-linter is not installed (pip install -e '.[test]')"
    # The copy must shadow the installed package: import-linter finds it by importing it.
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [exe, "--no-cache"], cwd=project, env=env, capture_output=True, text=True, check=False
    )


def verdicts(output: str) -> dict[str, str]:
    """Each contract's name and its verdict, KEPT or BROKEN, from `lint-imports` output."""
    found = {}
    for line in output.splitlines():
        for verdict in ("KEPT", "BROKEN"):
            name, sep, _ = line.partition(f" {verdict}")
            if sep and name in (LAYERS, CORE, CLIENT):
                found[name] = verdict
    return found


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml, to plant violations in."""
    shutil.copytree(REPO / "aioflow", tmp_path / "aioflow", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def plant(project: Path, module: str, line: str) -> None:
    path = project / module
    path.write_text(path.read_text() + f"\n{line}  # planted\n")


def test_the_package_keeps_its_contracts() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == {LAYERS: "KEPT", CORE: "KEPT", CLIENT: "KEPT"}


def test_an_unchanged_copy_keeps_them(copy: Path) -> None:
    # So the failures below come from the planted line, not from the copying.
    result = lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("aioflow/client/base.py", "import aioflow.runtime", {LAYERS, CLIENT}),
        ("aioflow/graph.py", "import click", {CORE}),
        ("aioflow/events.py", "import sqlite3", {CORE}),
        ("aioflow/parameters.py", "import aioflow.api", {LAYERS, CORE}),
        ("aioflow/store/blobs.py", "import aioflow.client", {LAYERS}),
        ("aioflow/runtime/runner.py", "import aioflow.handle", {LAYERS}),
    ],
)
def test_a_planted_violation_fails_naming_its_contract(
    copy: Path, module: str, line: str, broken: set[str]
) -> None:
    plant(copy, module, line)
    result = lint_imports(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert {name for name, v in verdicts(result.stdout).items() if v == "BROKEN"} == broken
    module_name = module.removesuffix(".py").replace("/", ".")
    assert module_name in result.stdout  # the report names the importing module


def test_a_second_upward_edge_from_the_flow_class_fails(copy: Path) -> None:
    # flowspec -> cli is the one allowed upward edge; flowspec -> runtime is not.
    plant(copy, "aioflow/flowspec.py", "import aioflow.runtime.runner")
    result = lint_imports(copy)
    assert result.returncode == 1
    assert verdicts(result.stdout)[LAYERS] == "BROKEN"


def test_a_module_placed_in_no_layer_fails(copy: Path) -> None:
    # The layers contract is exhaustive: a new module of the package must be given a layer.
    (copy / "aioflow" / "unplaced.py").write_text('"""Belongs nowhere yet."""\n')
    result = lint_imports(copy)
    assert result.returncode == 1
    assert verdicts(result.stdout)[LAYERS] == "BROKEN"
    assert "aioflow.unplaced" in result.stdout


def test_the_two_upward_edges_are_the_only_exceptions() -> None:
    # flowspec -> cli (`MyFlow()` runs the command line) and current -> client (`current.run`
    # and `current.task` are client objects, as in Metaflow); see docs/architecture.md.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the backport aioflow reads aioflow.toml with
        import tomli as tomllib
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    ignored = {
        edge for contract in config["contracts"] for edge in contract.get("ignore_imports", [])
    }
    assert ignored == {"aioflow.flowspec -> aioflow.cli", "aioflow.current -> aioflow.client"}
