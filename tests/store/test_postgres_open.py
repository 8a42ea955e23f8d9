"""PostgreSQL metadata chosen by URL (`store/open.py`): `$AIOFLOW_METADATA` points a store
folder's metadata at a real server, for the command line, worker processes and the client."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aioflow.exceptions import MetadataConnectionError, StoreError
from aioflow.store.open import open_metadata
from aioflow.store.postgres import PostgresMetadataStore

FLOW = """
    from aioflow import FlowSpec, step

    class UrlFlow(FlowSpec):
        @step
        def start(self):
            self.x = 1
            self.next(self.end)

        @step
        def end(self):
            self.x += 1
"""

READ = (
    "from aioflow import Flow; run = Flow('UrlFlow').latest_run; "
    "print(run.id, run['end'].task.data.x)"
)


def test_the_opener_opens_postgres_urls(postgres_url: str) -> None:
    store = open_metadata(postgres_url)
    try:
        assert isinstance(store, PostgresMetadataStore)
        assert store.location == postgres_url.replace(":aioflow-test-secret", "")
    finally:
        store.close()
    with pytest.raises(MetadataConnectionError, match="password authentication failed"):
        open_metadata(postgres_url.replace("aioflow-test-secret", "nope"))
    empty = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with pytest.raises(StoreError, match="No aioflow store in"):
        open_metadata(empty, create=False)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_runs_of_a_folder_go_to_postgres(postgres_url: str, tmp_path: Path, executor: str) -> None:
    (tmp_path / "url_flow.py").write_text(textwrap.dedent(FLOW))
    env = {**os.environ, "AIOFLOW_METADATA": postgres_url, "AIOFLOW_ROOT": str(tmp_path / "s")}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "aioflow", "run", "url_flow.py", "--quiet",
             "--executor", executor],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    read = subprocess.run(
        [sys.executable, "-c", READ], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert read.stdout.split() == ["2", "2"], read.stderr
    assert not (tmp_path / "s" / "metadata.db").exists()  # the metadata went to PostgreSQL
    runs = subprocess.run(
        [sys.executable, "-m", "aioflow", "runs"], cwd=tmp_path, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert "UrlFlow/2  succeeded" in runs.stdout and "UrlFlow/1  succeeded" in runs.stdout


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path: Path) -> None:
    env = {**os.environ, "AIOFLOW_METADATA": "postgresql://me:hunter2@127.0.0.1:1/aioflow"}
    done = subprocess.run(
        [sys.executable, "-m", "aioflow", "runs"], cwd=tmp_path, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Cannot connect to the metadata database postgresql://me@127.0.0.1:1/aioflow" in (
        done.stderr
    )
    assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr
