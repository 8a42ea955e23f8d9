"""Fault injection: a `metadata.db` that is damaged, or is another program's.

aioflow reports either in one line, and never writes to a database it did not create: the file
is compared byte for byte, and by its modification time, before and after.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from aioflow import FlowSpec, step
from aioflow.api import run_flow_sync
from aioflow.exceptions import MetadataError
from aioflow.store import Store
from aioflow.store.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION
from aioflow.testing import run_in_temp_store
from tests.helpers import invoke


class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the folder: its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(params=["tasks table", "other tables", "marked by another program"])
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    folder = tmp_path / "theirs"
    folder.mkdir()
    conn = sqlite3.connect(folder / "metadata.db")
    with conn:
        if request.param == "tasks table":  # the case of the report: a to-do app's database
            conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT)")
            conn.execute("INSERT INTO tasks VALUES (1, 'water the plants')")
        elif request.param == "other tables":  # aioflow's table names, one missing
            for table in ("meta", "runs", "tasks"):
                conn.execute(f"CREATE TABLE {table} (key TEXT PRIMARY KEY, value TEXT)")
        else:
            conn.execute("PRAGMA application_id = 1234")
            for table in ("meta", "runs", "tasks", "blobs"):
                conn.execute(f"CREATE TABLE {table} (key TEXT PRIMARY KEY, value TEXT)")
    conn.close()
    return folder


def test_a_foreign_database_is_refused_in_one_line_and_never_modified(foreign: Path) -> None:
    before = snapshot(foreign)
    code, _, err = invoke("runs", "--root", str(foreign))
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2, err  # the headline, then one line of message
    assert "is not an aioflow store's database" in lines[1]
    assert str(foreign / "metadata.db") in lines[1]
    assert snapshot(foreign) == before


async def test_a_run_refuses_a_foreign_database_and_leaves_it_alone(foreign: Path) -> None:
    before = snapshot(foreign)
    with pytest.raises(MetadataError, match="not an aioflow store's database"):
        await run_in_temp_store(TinyFlow, foreign)
    with pytest.raises(MetadataError):
        Store(foreign)
    assert snapshot(foreign) == before


def test_an_empty_database_file_is_not_a_store_to_read(tmp_path: Path) -> None:
    (tmp_path / "metadata.db").touch()
    with pytest.raises(MetadataError, match="it is empty"):
        Store(tmp_path, create=False)
    assert (tmp_path / "metadata.db").stat().st_size == 0


async def test_a_new_store_is_marked_as_aioflow_s(tmp_path: Path) -> None:
    await run_in_temp_store(TinyFlow, tmp_path)
    conn = sqlite3.connect(tmp_path / "metadata.db")
    assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    conn.close()


def test_a_store_of_an_aioflow_before_the_mark_is_opened_and_marked(tmp_path: Path) -> None:
    run_flow_sync(TinyFlow, root=tmp_path, quiet=True)
    conn = sqlite3.connect(tmp_path / "metadata.db")
    conn.execute("PRAGMA application_id = 0")  # as every store was before the mark
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    code, out, _ = invoke("runs", "--root", str(tmp_path), "--namespace", "")
    assert code == 0 and "TinyFlow/1" in out
    Store(tmp_path).close()  # opened for writing: marked
    conn = sqlite3.connect(tmp_path / "metadata.db")
    assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    conn.close()


def test_a_store_of_a_newer_aioflow_is_refused_in_one_line_and_never_modified(
    tmp_path: Path,
) -> None:
    Store(tmp_path).close()  # (not a run: the client would keep the store open, unchecked)
    conn = sqlite3.connect(tmp_path / "metadata.db")
    with conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    db = tmp_path / "metadata.db"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    newer = (
        f"The metadata database {db} was written by a newer aioflow (schema "
        f"version {SCHEMA_VERSION + 1}; this aioflow knows up to {SCHEMA_VERSION}): upgrade "
        "aioflow to use it. It was left untouched."
    )
    code, _, err = invoke("runs", "--root", str(tmp_path))
    assert code == 1
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    assert lines[1:] == [newer], err
    for create in (False, True):
        with pytest.raises(MetadataError) as caught:
            Store(tmp_path, create=create)
        assert str(caught.value) == newer and caught.value.path == tmp_path / "metadata.db"
    with pytest.raises(MetadataError, match="newer aioflow"):
        run_flow_sync(TinyFlow, root=tmp_path, quiet=True)
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert (
        not (tmp_path / "metadata.db-wal").exists()
        or not (tmp_path / "metadata.db-wal").stat().st_size
    )


def test_a_garbage_page_is_reported_in_one_line(tmp_path: Path) -> None:
    run_flow_sync(TinyFlow, root=tmp_path, quiet=True)
    db = tmp_path / "metadata.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file, none in the log
    conn.close()
    page = 4096
    assert db.stat().st_size > 2 * page
    with open(db, "r+b") as f:  # every page but the first (the header and the table list)
        f.seek(page)
        f.write(os.urandom(db.stat().st_size - page))
    for args in (["runs"], ["dump", "TinyFlow/1/start"], ["logs", "TinyFlow/1/start"]):
        code, out, err = invoke(*args, "--root", str(tmp_path))
        assert code == 1, (args, out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 2, (args, err)
        assert str(db) in lines[1] and "Traceback" not in err
    with pytest.raises(MetadataError, match=str(db)):
        run_flow_sync(TinyFlow, root=tmp_path, quiet=True)


def test_a_foreign_database_in_wal_mode_keeps_its_log_unapplied(tmp_path: Path) -> None:
    # Closing the last read-write connection of a WAL database checkpoints its log into the
    # file: aioflow must look at another program's database read-only.
    live = tmp_path / "live"
    live.mkdir()
    owner = sqlite3.connect(live / "metadata.db")
    owner.execute("PRAGMA journal_mode=WAL")
    owner.execute("PRAGMA wal_autocheckpoint=0")
    with owner:
        owner.execute("CREATE TABLE notes (body TEXT)")
        owner.execute("INSERT INTO notes VALUES ('only in the log so far')")
    folder = tmp_path / "left"  # the files as the owner left them when it was killed
    folder.mkdir()
    for name in ("metadata.db", "metadata.db-wal"):
        shutil.copy(live / name, folder / name)
    owner.close()
    before = snapshot(folder)
    for create in (False, True):
        with pytest.raises(MetadataError, match="not an aioflow store's database"):
            Store(folder, create=create)
    after = snapshot(folder)
    after.pop("metadata.db-shm", None)  # the index SQLite keeps beside a WAL while it is read
    assert after == before
