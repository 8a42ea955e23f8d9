"""`aioflow --blobs URL run`, `aioflow store info` and `aioflow store copy`, run as commands
against a real S3 server (moto on 127.0.0.1) and store folders."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from aioflow.client import Flow
from aioflow.store import Store
from aioflow.store.objects import ObjectBlobStore
from aioflow.store.serde import unpack
from tests.helpers import aioflow_command

FLOW = """
    from aioflow import FlowSpec, step


    class SharedFlow(FlowSpec):
        @step
        def start(self):
            self.big = bytes(range(256)) * 2048  # 512 KB: a blob for the blob store
            self.small = "tiny"
            self.items = [1, 2, 3]
            self.next(self.square, foreach="items")

        @step
        def square(self):
            self.sq = self.input * self.input
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.sq for i in inputs)
            self.big = inputs[0].big
            self.next(self.end)

        @step
        def end(self):
            print("total", self.total)


    if __name__ == "__main__":
        SharedFlow()
"""


def aioflow(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("AIOFLOW_BLOBS", "AIOFLOW_METADATA")}
    full.update(env)
    return subprocess.run(
        [*aioflow_command(), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / ".git").mkdir()  # a repository: no configuration above it is read
    (folder / "shared_flow.py").write_text(textwrap.dedent(FLOW))
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    monkeypatch.delenv("AIOFLOW_ROOT", raising=False)
    monkeypatch.delenv("AIOFLOW_BLOBS", raising=False)
    return folder


def test_run_with_blobs_in_s3_then_info_and_reading_back(work: Path, s3_url: str) -> None:
    ran = aioflow(work, "--blobs", s3_url, "run", "shared_flow.py")
    assert ran.returncode == 0, ran.stderr
    info = aioflow(work, "store", "info", AIOFLOW_BLOBS=s3_url)
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines() == [
        f"metadata: {work / '.aioflow' / 'metadata.db'} (default)",
        f"blobs:    {s3_url} (from $AIOFLOW_BLOBS)",
        "metadata reachable: 1 flow(s) stored",
        f"blobs reachable: {s3_url} (reachable)",
    ]
    big_key = _big_key(work / ".aioflow", s3_url)
    assert big_key in set(ObjectBlobStore(s3_url).keys())
    assert not (work / ".aioflow" / "blobs").exists()  # nothing went to the folder


def test_the_configuration_file_names_the_blob_store(work: Path, s3_url: str) -> None:
    (work / "aioflow.toml").write_text(f'blobs = "{s3_url}"\n')
    sub = work / "sub"
    sub.mkdir()
    (sub / "shared_flow.py").write_text(textwrap.dedent(FLOW))
    ran = aioflow(sub, "run", "shared_flow.py", "--root", str(work / ".aioflow"))
    assert ran.returncode == 0, ran.stderr
    info = aioflow(sub, "store", "info", "--root", str(work / ".aioflow"))
    assert f"blobs:    {s3_url} (from {work / 'aioflow.toml'})" in info.stdout
    assert _big_key(work / ".aioflow", s3_url) in set(ObjectBlobStore(s3_url).keys())


def test_info_says_which_side_cannot_be_reached(work: Path, s3_url: str) -> None:
    info = aioflow(work, "store", "info", AIOFLOW_BLOBS="s3://no-such-bucket/x")
    assert info.returncode == 1
    assert info.stderr.strip().splitlines() == [
        f"metadata NOT reachable: No aioflow store at {work / '.aioflow'}: metadata.db does "
        "not exist. Run a flow there first, or point AIOFLOW_ROOT (or --root) at an existing "
        "store.",
        "blobs NOT reachable: The blob store s3://no-such-bucket/x cannot be reached: the "
        "bucket does not exist",
    ]


def test_copy_publishes_a_local_run_to_s3_and_skips_it_the_second_time(
    work: Path, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert aioflow(work, "run", "shared_flow.py").returncode == 0
    team = tmp_path / "team"
    copied = aioflow(
        work, "store", "copy", "--from", ".aioflow", "--to", str(team), "--to-blobs", s3_url
    )
    assert copied.returncode == 0, copied.stderr
    lines = copied.stdout.splitlines()
    assert lines[0] == "SharedFlow/1 -> SharedFlow/1"
    assert lines[1].startswith("Copied 1 run(s), ")
    again = aioflow(
        work, "store", "copy", "SharedFlow", "--from", ".aioflow", "--to", str(team),
        "--to-blobs", s3_url,
    )  # fmt: skip
    assert again.stdout.splitlines() == [
        "SharedFlow/1 skipped: copied before",
        "Copied 0 run(s), 0 blob(s), 0 bytes sent.",
    ]
    # Read back from the team store (its blobs in S3 only), through the client.
    assert not (team / "blobs").exists()
    monkeypatch.setenv("AIOFLOW_BLOBS", s3_url)
    run = Flow("SharedFlow", root=team).latest_run
    assert run is not None and run.successful
    assert run["end"].task.data.total == 14
    assert run["join"].task.data.big == bytes(range(256)) * 2048
    assert "copied_from:SharedFlow/1@" + str(work / ".aioflow") in run.system_tags
    assert sorted(t.data.sq for t in run["square"].tasks()) == [1, 4, 9]
    assert run["end"].task.stdout.strip() == "total 14"


def test_copy_usage_errors(work: Path) -> None:
    nothing = aioflow(work, "store", "copy")
    assert nothing.returncode == 2 and "give --from, --to or both" in words(nothing.stderr)
    bad = aioflow(work, "store", "copy", "F/x", "--to", "elsewhere")
    assert bad.returncode == 2 and "'F/x' is not FLOW or FLOW/RUN" in words(bad.stderr)
    url = aioflow(work, "store", "copy", "--to", "postgresql://h/db")
    assert url.returncode == 2
    assert "give its blob store with --to-blobs URL" in words(url.stderr)


def words(text: str) -> str:
    """The text of an error as typer boxes it, on one line."""
    return " ".join(text.replace("│", " ").split())


def _big_key(root: Path, s3_url: str) -> str:
    store = Store(root, create=False)
    try:
        attempts = store.metadata.task_attempts(1, "start")
        assert attempts and attempts[0].manifest is not None
        return str(unpack(attempts[0].manifest)["big"])
    finally:
        store.close()
