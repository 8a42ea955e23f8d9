"""`aioflow ui` serving the store that `--metadata` and `--blobs` name (after `ui`, as the issue
writes it, or before it, as every command takes them): a SQLite file and a blob folder away from
any store folder. A store it cannot open is one error, before anything is served."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from aioflow import run_flow_sync
from tests.helpers import aioflow_command, invoke
from tests.report.flows import ReportFlow
from tests.ui.test_ui_browser import _process

STORE_ENV = ("AIOFLOW_ROOT", "AIOFLOW_METADATA", "AIOFLOW_BLOBS")


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the SQLite file, the blob folder) of a store with one ReportFlow run."""
    base = tmp_path_factory.mktemp("elsewhere")
    (base / "meta").mkdir()
    database, blobs = base / "meta" / "runs.db", base / "artifacts"
    with pytest.MonkeyPatch.context() as env:
        # As `aioflow --metadata URL --blobs URL run` does: the settings, for the whole run.
        env.setenv("AIOFLOW_METADATA", f"sqlite://{database}")
        env.setenv("AIOFLOW_BLOBS", str(blobs))
        run_flow_sync(ReportFlow, root=base / "unused", quiet=True)
    assert not (base / "unused" / "metadata.db").exists()
    return database, blobs


@pytest.fixture
def no_store_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working folder with no store in it, and none named by the environment."""
    for name in STORE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("before", [False, True], ids=["after-ui", "before-ui"])
def test_ui_serves_the_runs_of_the_store_metadata_and_blobs_name(
    elsewhere: tuple[Path, Path], tmp_path: Path, before: bool
) -> None:
    database, blobs = elsewhere
    options = ["--metadata", f"sqlite://{database}", "--blobs", str(blobs)]
    ui = ["ui", "--port", "0"]
    argv = [*aioflow_command(), *(options + ui if before else ui + options)]
    env = {k: v for k, v in os.environ.items() if k not in STORE_ENV}
    # The working folder holds no store: without the options, there is nothing to serve.
    with _process(argv, tmp_path, env) as proc:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith(f"aioflow ui: metadata {database}, blobs {blobs} at http://"), line
        address = line.split(" at ", 1)[1].split()[0]
        with httpx.Client(base_url=address, timeout=30) as http:
            listed = http.get("/")
            assert listed.status_code == 200
            assert 'data-run="ReportFlow/1"' in listed.text
            page = http.get("/runs/ReportFlow/1")
            assert page.status_code == 200 and 'id="dag"' in page.text
            # A card's page is a blob: it comes from the blob folder given.
            found = re.search(r'href="(/cards/ReportFlow/1/square/\d+/0)"', page.text)
            assert found is not None, page.text
            card = http.get(found.group(1))
            assert card.status_code == 200 and "Square of" in card.text
    assert not (tmp_path / ".aioflow").exists()
    assert any(p.is_file() for p in blobs.rglob("*"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--metadata", "bogus://x"], "Unknown metadata URL bogus://x: use one of sqlite://"),
        (["--metadata", "sqlite://"], "The metadata URL sqlite:// names no file"),
        (["--metadata", "sqlite://{tmp}/missing.db"], "missing.db does not exist."),
        (["--blobs", "ftp://x"], "Unknown blob store URL ftp://x: use a folder or one of"),
        ([], "No aioflow store at {tmp}/.aioflow: metadata.db does not exist."),
    ],
    ids=["unknown-metadata-scheme", "no-file", "missing-file", "unknown-blobs-scheme", "none"],
)
def test_a_store_ui_cannot_open_is_one_error_before_serving(
    elsewhere: tuple[Path, Path],
    no_store_settings: Path,
    options: list[str],
    message: str,
) -> None:
    tmp = str(no_store_settings)
    args = [o.replace("{tmp}", tmp) for o in options]
    if "--blobs" in args:  # metadata that opens, so that the blob store is the one refused
        args += ["--metadata", f"sqlite://{elsewhere[0]}"]
    code, out, err = invoke("ui", *args, "--port", "0")
    assert (code, out) == (1, "")
    assert err.startswith("    Store error:\n")
    assert message.replace("{tmp}", tmp) in " ".join(err.split())
    assert "Traceback" not in err and len(err.splitlines()) <= 3
