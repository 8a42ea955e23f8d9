"""Tests of aioflow.store.metadata: the SQLite database of runs, task attempts and small blobs."""

from __future__ import annotations

import errno
import gc
import os
import sqlite3
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from aioflow.exceptions import StoreError
from aioflow.store import liveness
from aioflow.store.metadata import SCHEMA_VERSION, TASK_COLUMNS, MetadataDB, this_host
from aioflow.store.serde import pack, unpack
from aioflow.store.sqlite_schema import CACHE_KIB, CHUNKS

COLUMNS = [c.strip() for c in TASK_COLUMNS.split(",")]


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = MetadataDB(tmp_path / "store" / "metadata.db")
    yield database
    database.close()


def new_run(db: MetadataDB, flow: str = "F", **kw: Any) -> int:
    args: dict[str, Any] = {
        "user": "tester",
        "tags": ["t1"],
        "system_tags": ["user:tester"],
        "graph": pack({"steps": {}}),
        "origin_run_id": None,
    }
    args.update(kw)
    return db.create_run(flow, **args)


def task_row(run_id: int, task_id: int, attempt: int = 0, step: str = "start", **kw: Any) -> tuple:
    row: dict[str, Any] = {
        "run_id": run_id,
        "task_id": task_id,
        "attempt": attempt,
        "step": step,
        "status": "succeeded",
        "started_at": 1.0 + task_id,
        "finished_at": 2.0 + task_id,
        "frames": None,
        "parents": None,
        "manifest": pack({"x": "k" * 40}),
        "stdout": None,
        "stderr": None,
        "exception": None,
    }
    row.update(kw)
    return tuple(row.get(column) for column in COLUMNS)  # columns not named here: NULL


def raw(db: MetadataDB, sql: str, *args: Any) -> list[tuple]:
    conn = sqlite3.connect(db.path)
    try:
        with conn:
            return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_schema(db: MetadataDB) -> None:
    tables = {r[0] for r in raw(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "runs", "tasks", "blobs"} <= tables
    assert raw(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    columns = [r[1] for r in raw(db, "PRAGMA table_info(tasks)")]
    assert ", ".join(columns) == TASK_COLUMNS
    pk = [r[1] for r in sorted(raw(db, "PRAGMA table_info(tasks)"), key=lambda r: r[5]) if r[5]]
    assert pk == ["run_id", "task_id", "attempt"]
    assert raw(db, "PRAGMA journal_mode") == [("wal",)]
    run_columns = {r[1] for r in raw(db, "PRAGMA table_info(runs)")}
    assert {"run_id", "flow", "status", "user", "created_at", "finished_at", "tags"} <= run_columns


def test_every_connection_has_a_small_page_cache(db: MetadataDB) -> None:
    # The writer's commits run in worker threads, each with its own connection: each of them,
    # and the first one (which made the schema), keeps CACHE_KIB, not SQLite's 2,000 KiB.
    found = []
    other = threading.Thread(
        target=lambda: found.append(db.connection().execute("PRAGMA cache_size").fetchone())
    )
    other.start()
    other.join()
    assert found == [(-CACHE_KIB,)]
    assert db.connection().execute("PRAGMA cache_size").fetchone() == (-CACHE_KIB,)


def test_reopening_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    first = MetadataDB(path)
    run_id = new_run(first)
    first.close()
    second = MetadataDB(path)
    assert second.latest_run_id("F") == run_id
    assert raw(second, "SELECT count(*) FROM meta") == [(1,)]
    read_only = MetadataDB(path, create=False)
    assert read_only.latest_run_id("F") == run_id
    second.close()
    read_only.close()


def test_missing_store_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "no-store-here"
    with pytest.raises(StoreError) as info:
        MetadataDB(folder / "metadata.db", create=False)
    message = str(info.value)
    assert f"No aioflow store at {folder}:" in message
    assert "metadata.db does not exist" in message
    assert "AIOFLOW_ROOT" in message
    assert not folder.exists()


def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "metadata.db").mkdir()  # a folder where the file should be
    with pytest.raises(StoreError, match="Cannot open the metadata database"):
        MetadataDB(tmp_path / "metadata.db")


def _open_at_once(path: Path, count: int) -> list[BaseException]:
    """Open `path` as a MetadataDB from `count` threads released together; their errors."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []
    opened: list[MetadataDB] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(MetadataDB(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for database in opened:
        database.close()
    return errors


def test_threads_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # SQLite answers "database is locked" at once (no busy wait) when one connection switches a
    # new database to WAL while another creates its tables: two runs started together in a
    # fresh folder hit it. Many rounds, because each round hits it only sometimes.
    for round_no in range(40):
        errors = _open_at_once(tmp_path / str(round_no) / "metadata.db", 6)
        assert errors == [], f"round {round_no}: {errors[0]!r}"


def test_create_run_records_the_run(db: MetadataDB) -> None:
    run_id = new_run(db, "MyFlow", origin_run_id="7")
    row = db.run("MyFlow", run_id)
    assert row is not None
    assert row.status == "running"
    assert row.flow == "MyFlow" and row.user == "tester"
    assert row.origin_run_id == "7"
    assert row.tags == ("t1",) and row.system_tags == ("user:tester",)
    assert row.created_at > 0 and row.finished_at is None
    assert row.pid == os.getpid() and row.host == this_host()
    if hasattr(os, "uname"):  # what runs of earlier versions recorded, read the same
        assert this_host() == os.uname().nodename
    assert db.run("OtherFlow", run_id) is None


def test_run_ids_are_unique_and_increasing(db: MetadataDB) -> None:
    ids = [new_run(db, flow) for flow in ("A", "B", "A", "C", "A")]
    assert ids == sorted(ids) and len(set(ids)) == 5
    ids_from_threads: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        for _ in range(10):
            run_id = new_run(db, "T")
            with lock:
                ids_from_threads.append(run_id)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids_from_threads)) == 40
    assert min(ids_from_threads) > max(ids)


def test_run_ids_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    db = MetadataDB(path)
    first = new_run(db)
    last = new_run(db)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM runs")
    conn.close()
    assert db.latest_run_id("F") is None
    after_delete = new_run(db)
    assert after_delete > last > first
    db.close()
    reopened = MetadataDB(path)
    assert new_run(reopened) > after_delete
    reopened.close()


def test_write_batch_and_reads(db: MetadataDB) -> None:
    run_id = new_run(db)
    db.write_batch(
        [
            task_row(run_id, 1, step="start"),
            task_row(run_id, 3, step="a"),
            task_row(run_id, 2, step="a", attempt=0, status="failed"),
            task_row(run_id, 2, step="a", attempt=1),
        ],
        [("k1", b"Mdata"), ("k2", b"M" + b"x" * 100)],
        [(run_id, {"status": "succeeded", "finished_at": 99.0})],
    )
    assert db.get_blob("k1") == b"Mdata"
    assert db.blob_size("k2") == 101
    assert db.get_blob("nope") is None and db.blob_size("nope") is None
    rows = db.task_attempts(run_id)
    assert [(r[1], r[2]) for r in rows] == [(1, 0), (2, 0), (2, 1), (3, 0)]
    assert [(r[1], r[2]) for r in db.task_attempts(run_id, "a")] == [(2, 0), (2, 1), (3, 0)]
    assert [r[4] for r in db.task_attempts(run_id, "a", 2)] == ["failed", "succeeded"]
    assert unpack(rows[0][9]) == {"x": "k" * 40}
    assert db.steps(run_id) == [("start", 2.0), ("a", 3.0)]
    row = db.run("F", run_id)
    assert row is not None and row.status == "succeeded" and row.finished_at == 99.0


def test_write_batch_writes_more_rows_than_one_statement_takes(
    db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflow.store import metadata

    monkeypatch.setattr(metadata, "_MAX_PARAMETERS", 40)  # 2 task rows, 20 blobs a statement
    run_id = new_run(db)
    tasks = [task_row(run_id, i, step="s" if i % 2 else "t") for i in range(1, 8)]
    blobs = [(f"k{i}", b"M" + bytes([i])) for i in range(45)]
    db.write_batch(tasks, blobs)
    assert [(r[1], r[3]) for r in db.task_attempts(run_id)] == [(r[1], r[3]) for r in tasks]
    assert all(db.get_blob(key) == data for key, data in blobs)
    assert raw(db, "SELECT count(*) FROM blobs") == [(45,)]


@pytest.mark.parametrize("sizes", [(1, 7, 9, 600), (257, 33, 1100)])
def test_batches_of_any_size_reuse_a_few_statements(db: MetadataDB, sizes: tuple[int, ...]) -> None:
    # A batch holds whatever finished since the last commit; a statement for exactly that many
    # rows was new text for SQLite to compile each time. A few fixed sizes are compiled once.
    run_id = new_run(db)
    rows_per_insert: set[int] = set()

    def trace(sql: str) -> None:
        if sql.startswith("INSERT"):
            rows_per_insert.add(sql.split("VALUES", 1)[1].count("), (") + 1)

    conn = db.connection()
    conn.set_trace_callback(trace)
    next_id = 1
    try:
        for size in sizes:
            tasks = [task_row(run_id, next_id + i) for i in range(size)]
            blobs = [(f"k{next_id + i}", b"M" + bytes([i % 256])) for i in range(size)]
            db.write_batch(tasks, blobs)
            next_id += size
    finally:
        conn.set_trace_callback(None)
    assert rows_per_insert <= set(CHUNKS)
    assert raw(db, "SELECT count(*) FROM tasks WHERE run_id = ?", run_id) == [(sum(sizes),)]
    assert raw(db, "SELECT count(*) FROM blobs") == [(sum(sizes),)]
    assert db.get_blob(f"k{sum(sizes)}") == b"M" + bytes([(sizes[-1] - 1) % 256])


def test_a_row_of_the_wrong_width_is_refused_not_shifted(db: MetadataDB) -> None:
    run_id = new_run(db)
    short, long = task_row(run_id, 1)[:-1], (*task_row(run_id, 2), None)
    with pytest.raises(sqlite3.ProgrammingError, match="a row has 14 values, expected 15"):
        db.write_batch([short, long], [])
    assert db.task_attempts(run_id) == []


def test_task_rows_are_replaced_and_blobs_rewritten_only_when_they_differ(db: MetadataDB) -> None:
    run_id = new_run(db)
    db.write_batch([task_row(run_id, 1, status="running", finished_at=None)], [("k", b"first")])
    db.write_batch([task_row(run_id, 1, status="succeeded")], [("k", b"second")])
    rows = db.task_attempts(run_id)
    assert len(rows) == 1 and rows[0][4] == "succeeded"
    # The key is the hash of the bytes written: other bytes under it can only be damage.
    assert db.get_blob("k") == b"second"
    conn = db.connection()
    changes = conn.total_changes
    db.write_batch([], [("k", b"second"), ("k", b"second")])
    assert conn.total_changes == changes  # the same bytes: no row written


@pytest.mark.parametrize("bad", ["task", "run"])
def test_write_batch_is_atomic(db: MetadataDB, bad: str) -> None:
    run_id = new_run(db)
    tasks = [task_row(run_id, 1)]
    runs: list[tuple[int, dict[str, Any]]] = [(run_id, {"status": "succeeded"})]
    if bad == "task":
        tasks.append(task_row(run_id, 2)[:-1])  # one column short
    else:
        runs.append((run_id, {"no_such_column": 1}))  # refused before anything is written
    with pytest.raises(sqlite3.Error if bad == "task" else ValueError):
        db.write_batch(tasks, [("blob-key", b"Mx")], runs)
    assert db.task_attempts(run_id) == []
    assert db.get_blob("blob-key") is None
    row = db.run("F", run_id)
    assert row is not None and row.status == "running"
    db.write_batch([task_row(run_id, 1)], [("blob-key", b"Mx")])  # the connection still works
    assert len(db.task_attempts(run_id)) == 1


def test_flows_and_runs_listing(db: MetadataDB) -> None:
    a1 = new_run(db, "Beta")
    a2 = new_run(db, "Alpha")
    a3 = new_run(db, "Beta")
    assert db.flows() == ["Alpha", "Beta"]
    assert [r.run_id for r in db.run_page("Beta")] == [a3, a1]
    assert [r.run_id for r in db.run_page("Alpha")] == [a2]
    assert db.run_page("Gamma") == []
    assert db.latest_run_id("Beta") == a3
    assert db.latest_run_id("Gamma") is None
    # records come from a row factory of the cursor only: the connection keeps tuples
    assert isinstance(db.task_attempts(a1), list)
    assert db.connection().row_factory is None


def test_one_connection_per_thread_and_close(db: MetadataDB) -> None:
    main = db.connection()
    assert db.connection() is main
    other: list[sqlite3.Connection] = []
    t = threading.Thread(target=lambda: other.append(db.connection()))
    t.start()
    t.join()
    assert other[0] is not main
    run_id = new_run(db)
    assert other[0].execute("SELECT count(*) FROM runs WHERE run_id = ?", (run_id,)).fetchone() == (
        1,
    )
    db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        main.execute("SELECT 1")
    with pytest.raises(sqlite3.ProgrammingError):
        other[0].execute("SELECT 1")
    assert db.connection() is not main  # usable again after close
    assert db.latest_run_id("F") == run_id


def test_a_store_dropped_unclosed_closes_its_connections_and_ends_its_runs(tmp_path: Path) -> None:
    # The client's cache of stores lets go of them unclosed: their connections must not wait
    # for the sqlite3 module, which warns of each one from Python 3.13 on (pytest reports a
    # warning raised while an object is collected as a failure), and their runs read ended.
    path = tmp_path / "store" / "metadata.db"
    store = MetadataDB(path)
    run_id = new_run(store)
    conns = [store.connection()]
    thread = threading.Thread(target=lambda s: conns.append(s.connection()), args=(store,))
    thread.start()
    thread.join()
    lock = tmp_path / "store" / "running" / f"{run_id}.lock"
    assert lock.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del store
        gc.collect()
    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert not lock.exists()


# -- whether a run's process still runs it -----------------------------------------------------
# Runs opened and killed in other processes, and Windows' locks: test_liveness.py.


def test_a_run_holds_its_lock_until_its_database_closes(tmp_path: Path) -> None:
    path = tmp_path / "store" / "metadata.db"
    writer, reader = MetadataDB(path), MetadataDB(path)
    run_id = new_run(writer)
    row = reader.run("F", run_id)
    assert row is not None and row.run_lock == 1 and row.host == this_host()
    assert (tmp_path / "store" / "running" / f"{run_id}.lock").exists()
    assert not reader.process_gone(row)  # the run is open in this very process
    writer.close()  # without recording an end: as if the process had stopped running it
    assert not (tmp_path / "store" / "running" / f"{run_id}.lock").exists()
    assert reader.process_gone(row)
    reader.close()


def test_a_run_that_ended_since_its_row_was_read_is_not_abandoned(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    writer, reader = MetadataDB(path), MetadataDB(path)
    run_id = new_run(writer)
    stale = reader.run("F", run_id)
    writer.write_batch([], [], [(run_id, {"status": "succeeded", "finished_at": 2.0})])
    writer.close()  # lets go of the lock once the end is committed
    assert stale is not None and stale.status == "running"
    assert not reader.process_gone(stale)  # it ended; it was not abandoned
    reader.close()


def test_ended_runs_and_runs_of_other_hosts_are_never_abandoned(db: MetadataDB) -> None:
    ended = new_run(db)
    db.write_batch([], [], [(ended, {"status": "failed"})])
    elsewhere = new_run(db)
    raw(db, "UPDATE runs SET host = 'another-machine' WHERE run_id = ?", elsewhere)
    rows = {row.run_id: row for row in db.run_page("F")}
    db.close()  # both runs' locks are let go
    assert not db.process_gone(rows[ended])
    assert not db.process_gone(rows[elsewhere])  # cannot be probed from here


def test_a_file_system_without_locks_falls_back_to_the_pid(
    db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(fd: int, *, exclusive: bool) -> bool:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(liveness, "_try_lock", no_locks)
    run_id = new_run(db)
    row = db.run("F", run_id)
    assert row is not None and row.run_lock is None and row.pid == os.getpid()
    assert not (db.path.parent / "running" / f"{run_id}.lock").exists()
    assert not db.process_gone(row)  # this process is alive


# A store of an aioflow from before run locks (and before the database's mark): its four tables.
OLD_RUNS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL,
    status TEXT NOT NULL, user TEXT, created_at REAL NOT NULL, finished_at REAL,
    origin_run_id TEXT, tags BLOB, system_tags BLOB, params BLOB, graph BLOB, pid INTEGER,
    host TEXT, error BLOB);
CREATE TABLE tasks (run_id INTEGER NOT NULL, task_id INTEGER NOT NULL, attempt INTEGER NOT NULL,
    step TEXT NOT NULL, status TEXT NOT NULL, started_at REAL, finished_at REAL, frames BLOB,
    parents BLOB, manifest BLOB, stdout TEXT, stderr TEXT, exception BLOB, origin TEXT,
    PRIMARY KEY (run_id, task_id, attempt)) WITHOUT ROWID;
CREATE TABLE blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""


def dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_of_an_older_aioflow_go_by_their_pid(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_RUNS)
    with conn:
        for pid, host in [(os.getpid(), this_host()), (dead_pid(), this_host()), (1, "other")]:
            conn.execute(
                "INSERT INTO runs (flow, status, created_at, pid, host) "
                "VALUES ('Old', 'running', 1.0, ?, ?)",
                (pid, host),
            )
    conn.close()
    db = MetadataDB(path)
    assert "run_lock" in {r[1] for r in raw(db, "PRAGMA table_info(runs)")}  # added on open
    live, dead, elsewhere = sorted(db.run_page("Old"), key=lambda row: row.run_id)
    assert live.run_lock is None
    assert not db.process_gone(live)
    assert db.process_gone(dead)
    assert not db.process_gone(elsewhere)
    db.close()


def test_windows_never_signals_the_pid_of_an_older_run(
    db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.kill on Windows ends the process whatever the signal: a probe must never send one.
    run_id = new_run(db)
    raw(db, "UPDATE runs SET run_lock = NULL, pid = ? WHERE run_id = ?", dead_pid(), run_id)
    row = db.run("F", run_id)

    def kill(pid: int, signum: int) -> None:
        raise AssertionError(f"os.kill({pid}, {signum}) on Windows")

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(sys, "platform", "win32")
    assert not db.process_gone(row)  # cannot be told without the pid: reads running


_BYTES = (bytes, sqlite3.PrepareProtocol)
_NONE = (type(None), sqlite3.PrepareProtocol)


def test_bytes_and_none_are_bound_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without an adapter for them, the sqlite3 module formats and discards an AttributeError
    # for every bytes or None parameter (half the cost of a task row); the identity adapters
    # opening a database registers leave the stored values as they were.
    monkeypatch.delitem(sqlite3.adapters, _BYTES, raising=False)
    monkeypatch.delitem(sqlite3.adapters, _NONE, raising=False)
    database = MetadataDB(tmp_path / "store" / "metadata.db")
    try:
        blob = b"\x00\xc4blob"
        assert sqlite3.adapters[_BYTES](blob) is blob
        assert sqlite3.adapters[_NONE](None) is None
        conn = sqlite3.connect(":memory:")
        row = conn.execute("SELECT ?, typeof(?), ?, typeof(?)", (blob, blob, None, None))
        assert row.fetchone() == (blob, "blob", None, "null")
        conn.close()
    finally:
        database.close()


def test_an_adapter_registered_by_someone_else_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def theirs(value: bytes) -> bytes:
        return value

    monkeypatch.setitem(sqlite3.adapters, _BYTES, theirs)
    database = MetadataDB(tmp_path / "store" / "metadata.db")
    database.close()
    assert sqlite3.adapters[_BYTES] is theirs
