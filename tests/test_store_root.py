"""Which store is read or written: `root=`, $AIOFLOW_ROOT, `set_root`, and the walk up.

As Metaflow finds `.metaflow`, a store is found in the working folder or a parent, up to the
repository's root (a folder holding `.git`); without one, `./.aioflow` is where the first run
creates it. The client reads another store through `root=` or `aioflow.set_root`.
"""

from __future__ import annotations

import contextvars
import subprocess
from pathlib import Path

import pytest

import aioflow
from aioflow import Flow, FlowSpec, Metaflow, Run, Step, Task, run_flow_sync, step
from aioflow.client import DataArtifact
from aioflow.exceptions import StoreError
from aioflow.store import find_store_above, resolve_root
from tests.helpers import aioflow_command

pytestmark = pytest.mark.timeout(60)


class RootFlow(FlowSpec):
    @step
    def start(self):
        self.where = "stored"
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository folder with a store at its top, and no $AIOFLOW_ROOT."""
    monkeypatch.delenv("AIOFLOW_ROOT", raising=False)
    top = tmp_path / "project"
    (top / ".git").mkdir(parents=True)
    (top / ".aioflow").mkdir()
    (top / "notebooks" / "deep").mkdir(parents=True)
    return top


def test_the_store_is_found_in_a_parent_folder(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(project / "notebooks" / "deep")
    assert resolve_root() == project / ".aioflow"


def test_the_search_stops_at_the_repository_root(project: Path) -> None:
    # A store above the repository belongs to something else.
    (project.parent / ".aioflow").mkdir()
    (project / ".aioflow").rmdir()
    assert find_store_above(project / "notebooks") is None


def test_without_a_store_above_it_is_created_in_the_working_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".aioflow").rmdir()
    work = project / "notebooks"
    monkeypatch.chdir(work)
    assert resolve_root() == work / ".aioflow"
    run_flow_sync(RootFlow, quiet=True)
    assert (work / ".aioflow" / "metadata.db").is_file()


def test_a_run_from_a_subfolder_uses_the_store_above(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "notebooks" / "deep")
    run = run_flow_sync(RootFlow, quiet=True)
    assert not (project / "notebooks" / "deep" / ".aioflow").exists()
    assert run.data.where == "stored"
    assert Run(run.pathspec, root=project / ".aioflow").data.where == "stored"


def test_the_environment_and_an_explicit_root_win(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "notebooks")
    monkeypatch.setenv("AIOFLOW_ROOT", str(tmp_path / "env-store"))
    assert resolve_root() == tmp_path / "env-store"
    assert resolve_root(tmp_path / "given") == tmp_path / "given"


def test_the_cli_finds_the_store_from_a_subfolder(project: Path) -> None:
    run = run_flow_sync(RootFlow, root=project / ".aioflow", quiet=True)
    result = subprocess.run(
        [*aioflow_command(), "runs", "RootFlow"],
        cwd=project / "notebooks" / "deep",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"RootFlow/{run.id}" in result.stdout


# -- reading another store ----------------------------------------------------------------------


@pytest.fixture
def two_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The default store ($AIOFLOW_ROOT) with one run of RootFlow, another folder with two."""
    default, other = tmp_path / "default", tmp_path / "other"
    monkeypatch.setenv("AIOFLOW_ROOT", str(default))
    run_flow_sync(RootFlow, quiet=True)
    for _ in range(2):
        run_flow_sync(RootFlow, root=other, quiet=True)
    return default, other


def test_root_argument_reads_another_store(two_stores: tuple[Path, Path]) -> None:
    _, other = two_stores
    assert len(list(Flow("RootFlow"))) == 1
    assert len(list(Flow("RootFlow", root=other))) == 2
    assert [f.id for f in Metaflow(root=other)] == ["RootFlow"]
    run = Run("RootFlow/2", root=other)
    assert run.data.where == "stored"
    assert Step("RootFlow/2/start", root=str(other)).task.data.where == "stored"
    task = Task(f"RootFlow/2/start/{run['start'].task.id}", root=other)
    assert DataArtifact(f"{task.pathspec}/where", root=other).data == "stored"
    with pytest.raises(StoreError, match="missing"):
        Flow("RootFlow", root=other.parent / "missing")


def test_set_root_switches_the_default_store(two_stores: tuple[Path, Path]) -> None:
    default, other = two_stores

    def read() -> tuple[Path, int, int]:
        chosen = aioflow.set_root(other)
        inside = len(list(Flow("RootFlow")))
        aioflow.set_root(None)
        return chosen, inside, len(list(Flow("RootFlow")))

    # In its own context, as code in another task or thread has: the caller's stays as it was.
    assert contextvars.copy_context().run(read) == (other, 2, 1)
    assert len(list(Flow("RootFlow"))) == 1
    assert Run("RootFlow/1").data.where == "stored"  # the default store's own run 1
    assert default.is_dir()
