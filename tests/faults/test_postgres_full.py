"""A full disk under PostgreSQL metadata, for real: aioflow's tables live in a tablespace on a
16 MB tmpfs this test mounts (as root, as test_disk_full.py does for blob files), and a filler
table takes what is left, so PostgreSQL itself refuses to extend a file (SQLSTATE 53100,
disk_full). The write-ahead log stays on the server's own disk, so the server keeps running,
as it does when a tablespace fills.

What the user sees: a run that cannot store its parameters fails at its start with StoreFull,
one line naming the database without its password; nothing stored before is lost, and once
space returns the same run succeeds. A batch refused in the middle of a run is kept and
committed once space returns, as on a full SQLite file.
"""

from __future__ import annotations

import base64
import os
import pwd
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import psycopg.errors
import pytest

from aioflow import FlowSpec, Parameter, step
from aioflow.client import Flow
from aioflow.exceptions import StoreFull
from aioflow.store import Store
from aioflow.store.postgres import PostgresMetadataStore
from aioflow.store.postgres.connection import redact
from aioflow.testing import run_in_temp_store
from tests.helpers import aioflow_command
from tests.postgres_server import PASSWORD, PostgresServer

pytestmark = pytest.mark.timeout(120)

#: The tablespace's file system: room for aioflow's tables and a few runs.
DISK = "16m"
#: A parameter this long (random, so PostgreSQL cannot compress it) needs new pages.
PAYLOAD_BYTES = 150_000


@dataclass
class SmallDisk:
    """A database whose tables (aioflow's, and the filler's) go to a tablespace on a tmpfs."""

    url: str
    admin: Callable[[], Any]  # a new autocommit connection to the database, as the superuser

    def fill(self) -> int:
        """Take every free byte of the tablespace; the bytes the filler holds."""
        held = 0
        with self.admin() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS filler (b bytea)")
            conn.execute("ALTER TABLE filler ALTER COLUMN b SET STORAGE EXTERNAL")  # as is
            for size in (1 << 20, 1 << 16, 1 << 12):  # big rows first, then what fits
                while True:
                    try:
                        conn.execute("INSERT INTO filler VALUES (%s)", (os.urandom(size),))
                    except psycopg.errors.DiskFull:
                        break
                    held += size
        return held

    def free(self) -> None:
        """Give the filler's space back (PostgreSQL truncates a dropped table's files)."""
        with self.admin() as conn:
            conn.execute("DROP TABLE IF EXISTS filler")


@pytest.fixture
def small_disk(postgres_server: PostgresServer) -> Iterator[SmallDisk]:
    """A fresh database whose default tablespace is on a 16 MB tmpfs (mounting needs root:
    where it cannot be mounted the test fails, saying so)."""
    folder = Path(tempfile.mkdtemp(prefix="aioflow-pg-full-"))
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    ids = f",uid={owner.pw_uid},gid={owner.pw_gid}" if owner is not None else ""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700{ids}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.fail(f"A full disk needs a tmpfs mounted (as root): {mounted.stderr.strip()}")
    url = postgres_server.database()
    name = urlsplit(url).path.lstrip("/")
    space = f"full_{name}"
    try:
        with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {space} LOCATION '{folder}'")
            conn.execute(f"ALTER DATABASE {name} SET default_tablespace = {space}")
        yield SmallDisk(url, lambda: psycopg.connect(url, autocommit=True))
    finally:
        with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP TABLESPACE IF EXISTS {space}")
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=10, check=True)
        folder.rmdir()


#: PayloadFlow as a flow file, for the command line.
PAYLOAD_FLOW = """
import base64
import os

from aioflow import FlowSpec, Parameter, step


class PayloadFlow(FlowSpec):
    # Longer than a command line's argument may be: the default, drawn as the file loads.
    payload = Parameter("payload", default=base64.b64encode(os.urandom(150_000)).decode())

    @step
    def start(self):
        self.size = len(self.payload)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PayloadFlow()
"""


class PayloadFlow(FlowSpec):
    """Its parameters are stored as a run starts: a long payload needs new pages."""

    payload = Parameter("payload", default="short")

    @step
    def start(self):
        self.size = len(self.payload)
        self.data = os.urandom(100_000)  # a small blob: stored in PostgreSQL
        self.next(self.end)

    @step
    def end(self):
        pass


def _payload() -> str:
    return base64.b64encode(os.urandom(PAYLOAD_BYTES)).decode()


@pytest.fixture
def store_folder(small_disk: SmallDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store folder whose metadata is the small disk's database (blobs stay in the folder)."""
    monkeypatch.setenv("AIOFLOW_METADATA", small_disk.url)
    monkeypatch.delenv("AIOFLOW_BLOBS", raising=False)
    return tmp_path / "store"


async def test_a_run_on_a_full_database_fails_with_store_full_and_loses_nothing(
    small_disk: SmallDisk, store_folder: Path
) -> None:
    earlier = await run_in_temp_store(PayloadFlow, store_folder)
    data = earlier["start"].task.data.data
    assert small_disk.fill() > 0

    with pytest.raises(StoreFull) as info:
        await run_in_temp_store(PayloadFlow, store_folder, payload=_payload())
    message = str(info.value)
    location = redact(small_disk.url)
    assert message == (
        f"Cannot store the parameters of a new run of PayloadFlow at {location}: no space left "
        "on the device. Free space on the database server's disk (or its tablespace) and run "
        "or resume the flow again."
    )
    assert PASSWORD not in message and info.value.location == location
    cause = info.value.__cause__
    assert isinstance(cause, StoreFull)
    assert isinstance(cause.__cause__, psycopg.errors.DiskFull)

    # The command line says the same, in one line under its headline, with exit status 1.
    flow_file = store_folder.parent / "payload_flow.py"
    flow_file.write_text(PAYLOAD_FLOW)
    env = {**os.environ, "AIOFLOW_METADATA": small_disk.url}
    ran = subprocess.run(
        [*aioflow_command(), "run", str(flow_file), "--root", str(store_folder), "--quiet"],
        capture_output=True, text=True, timeout=60, env=env, cwd=store_folder.parent,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    assert f"Cannot store the parameters of a new run of PayloadFlow at {location}: no " in (
        ran.stderr
    )
    assert "Traceback" not in ran.stderr and PASSWORD not in ran.stderr

    # Nothing stored before is lost, and the refused starts left no run behind.
    flow = Flow("PayloadFlow", root=store_folder)
    assert [run.id for run in flow.runs()] == [earlier.id]
    run = flow[earlier.id]
    assert run.successful and run["start"].task.data.data == data
    assert run["start"].task.data.size == len("short")

    small_disk.free()  # space returns: the same run starts and ends
    later = await run_in_temp_store(PayloadFlow, store_folder, payload=_payload())
    assert later.successful and later["start"].task.data.size == len(_payload())
    assert Flow("PayloadFlow", root=store_folder)[earlier.id]["start"].task.data.data == data


class Hooks:
    """What FillsMidRunFlow's steps call: set by the test, in this process."""

    fill: Callable[[], int]
    free: Callable[[], None]
    refused = threading.Event()


class FillsMidRunFlow(FlowSpec):
    """`start` fills the disk, then sets an artifact its batch cannot store; `end` frees the
    disk once the writer was refused, and the run goes on to its end."""

    @step
    def start(self):
        Hooks.fill()
        self.blob = os.urandom(200_000)  # a small blob: goes to PostgreSQL with the batch
        self.next(self.end)

    @step
    def end(self):
        assert Hooks.refused.wait(60), "the writer never found the disk full"
        Hooks.free()
        self.seen = len(self.blob)  # read from the writer's cache meanwhile


async def test_a_batch_refused_by_a_full_database_is_committed_once_space_returns(
    small_disk: SmallDisk, store_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(store_folder).close()  # aioflow's tables exist before the disk fills
    refusals: list[StoreFull] = []
    real = PostgresMetadataStore.write_batch

    def write_batch(self: PostgresMetadataStore, *args: Any, **kwargs: Any) -> None:
        try:
            real(self, *args, **kwargs)
        except StoreFull as exc:
            refusals.append(exc)
            Hooks.refused.set()
            raise

    monkeypatch.setattr(PostgresMetadataStore, "write_batch", write_batch)
    monkeypatch.setattr(Hooks, "fill", small_disk.fill, raising=False)
    monkeypatch.setattr(Hooks, "free", small_disk.free, raising=False)
    monkeypatch.setattr(Hooks, "refused", threading.Event())

    run = await run_in_temp_store(FillsMidRunFlow, store_folder)
    assert run.successful and refusals
    assert all(redact(small_disk.url) in str(exc) for exc in refusals)
    assert "Cannot store a batch of task rows at" in str(refusals[0])
    stored = Flow("FillsMidRunFlow", root=store_folder)[run.id]
    assert stored.successful and len(stored["start"].task.data.blob) == 200_000
    assert stored["end"].task.data.seen == 200_000
