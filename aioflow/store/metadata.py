"""The metadata database in SQLite: the queries of runs, task attempts and small blobs.

`SqliteMetadataStore` is the default MetadataStore (`protocols.py`); readers get RunRecords and
TaskRecords. SQL stays here and in `sqlite_schema.py` (the tables, opening them, rows' shapes).

One file, `metadata.db`. Each task attempt is one row holding its artifact manifest (name -> blob
key, msgpack), so an untouched artifact costs a few bytes per task and nothing else. Blobs smaller
than `SMALL` live in the `blobs` table; a row there costs microseconds where a file costs a hundred.

Rows are written in batches (see `writer.py`); every batch is one transaction, so a killed
process leaves the database as of its last committed batch and never a half-written row.

A killed run's row keeps reading `running`. While a run is open its process holds the run's
lock file (`liveness.py`, flagged by `run_lock`), so `process_gone` tells a run in progress
from an abandoned one; runs stored by an aioflow without run locks go by their pid.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..exceptions import StoreError
from .keys import identity_blob
from .liveness import LOCK_FOLDER, RunLock, lock_is_held, lock_path, pid_gone, this_host
from .protocols import RUN_UPDATE_FIELDS, CardRecord, RunRecord, TaskRecord
from .serde import pack, unpack
from .sqlite_cards import put_card, read_cards
from .sqlite_schema import (
    RUN_COLUMNS,
    SCHEMA_VERSION,
    TASK_COLUMNS,
    TaskRow,
    connect,
    damaged,
    ensure_schema,
    insert_rows,
    open_database,
    run_record,
    task_record,
    task_row,
    when_unlocked,
)

__all__ = [
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "SMALL",
    "TASK_COLUMNS",
    "MetadataDB",
    "SqliteMetadataStore",
    "TaskRow",
    "task_row",
    "this_host",
]

#: Blobs up to this size are kept in the database rather than in files.
SMALL = 256 * 1024

#: Bound parameters one statement may have (SQLite's default limit since 3.32, 999 before).
_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999

_R = TypeVar("_R")

#: How a blob written again under a key already stored lands: the row is left alone when it
#: holds the same bytes (no page is rewritten) and replaced when they differ, which only a
#: damaged row can (the key is the hash of the bytes being written), so the next run that
#: stores the same value repairs it. Comparing costs a memcmp of a row the conflict check has
#: just found, but the upsert costs about 4 us more per new row than INSERT OR IGNORE: it is
#: run only for a batch some of whose keys were stored before (`write_batch`).
_REPAIR_DAMAGED = "ON CONFLICT (key) DO UPDATE SET data = excluded.data WHERE data != excluded.data"


class SqliteMetadataStore:
    """The MetadataStore in SQLite (`metadata.db`); safe to share between threads (one
    connection each).

    A file SQLite cannot read as a database (damaged, or not aioflow's) raises MetadataError
    naming it, when opened and when read.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        if not create and not self.path.exists():
            raise StoreError(
                f"No aioflow store at {self.path.parent}: {self.path.name} does not exist. "
                "Run a flow there first, or point AIOFLOW_ROOT (or --root) at an existing store."
            )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._run_locks: dict[int, RunLock] = {}
        self._lock_folder_made = False
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = open_database(self.path)
        try:
            ensure_schema(conn, self.path, create=create)
        except BaseException:
            conn.close()
            raise
        self._local.conn = conn
        self._all.append(conn)
        # A store dropped without close() (the client's cache of stores lets go of them that
        # way, a service may forget one) closes its connections when collected, or at the
        # interpreter's exit, rather than leaving them to the sqlite3 module, which warns
        # from Python 3.13 on. The finalizer holds the parts, never the store itself.
        weakref.finalize(self, _close, self._all, self._run_locks, self._lock, os.getpid())

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def idle_connection(self) -> sqlite3.Connection:
        """A new connection that has read the database once, for a caller to hold open.

        SQLite checkpoints the write-ahead log (an fsync, 10-20 ms) when the last connection
        to a database closes; one held open keeps every run's close from paying for it.
        """
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            with self._naming_damage():
                conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # attach to the WAL index
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close every connection this object opened; the runs it created read ended.

        A run's process closes its store once the run's end is committed: from then on the
        run no longer holds its lock, and a row still reading `running` reads abandoned.
        """
        _close(self._all, self._run_locks, self._lock, os.getpid())
        self._local = threading.local()

    def end_run(self, run_id: int) -> None:
        """Let go of one run's lock (its end is committed) and keep the connections open: for a
        store that several runs of this process share."""
        with self._lock:
            lock = self._run_locks.pop(run_id, None)
        if lock is not None:
            lock.release()

    # -- writes -------------------------------------------------------------------------------

    def create_run(
        self,
        flow: str,
        *,
        user: str,
        tags: Sequence[str],
        system_tags: Sequence[str],
        graph: bytes,
        origin_run_id: str | None,
        params: bytes | None = None,
    ) -> int:
        """Insert a new running run and return its id (never reused, even after deletes).

        `params` is the packed manifest of the artifacts every task starts from (name,
        parameters, constants), which a resumed run reuses. The run holds its lock
        (`liveness.py`) until this object is closed.
        """
        if not self._lock_folder_made:
            (self.path.parent / LOCK_FOLDER).mkdir(exist_ok=True)
            self._lock_folder_made = True
        conn = self.connection()
        lock: RunLock | None = None
        try:
            with self._naming_damage(), conn:
                cur = conn.execute(
                    "INSERT INTO runs (flow, status, user, created_at, origin_run_id, tags, "
                    "system_tags, graph, params, pid, host, run_lock) "
                    "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    (
                        flow,
                        user,
                        time.time(),
                        origin_run_id,
                        pack(list(tags)),
                        pack(list(system_tags)),
                        graph,
                        params,
                        os.getpid(),
                        this_host(),
                    ),
                )
                run_id = cur.lastrowid
                assert run_id is not None
                # Locked before the row is committed: no reader ever sees the run unlocked.
                lock = RunLock.acquire(lock_path(self.path.parent, run_id))
                if lock is None:  # a file system without locks: readers go by the pid
                    conn.execute("UPDATE runs SET run_lock = NULL WHERE run_id = ?", (run_id,))
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if lock is not None:
            with self._lock:
                self._run_locks[run_id] = lock
        return run_id

    def write_batch(
        self,
        tasks: Iterable[TaskRecord],
        blobs: Iterable[tuple[str, bytes]],
        run_updates: Sequence[tuple[int, Mapping[str, Any]]] = (),
    ) -> None:
        """Commit blobs, task rows and run updates in one transaction."""
        for _, fields in run_updates:  # their names become SQL: only known ones
            unknown = set(fields) - RUN_UPDATE_FIELDS
            if unknown:
                raise ValueError(f"Cannot update the run fields {sorted(unknown)}.")
        conn = self.connection()
        insert = functools.partial(insert_rows, conn, max_parameters=_MAX_PARAMETERS)
        blob_rows = list(blobs)
        with self._naming_damage(), conn:
            stored = conn.total_changes
            insert("INSERT OR IGNORE INTO blobs VALUES", 2, blob_rows)
            if conn.total_changes - stored < len(blob_rows):  # some keys were there already
                insert("INSERT INTO blobs VALUES", 2, blob_rows, then=_REPAIR_DAMAGED)
            insert(f"INSERT OR REPLACE INTO tasks ({TASK_COLUMNS}) VALUES", 15, list(tasks))
            for run_id, fields in run_updates:
                names = ", ".join(f"{name} = ?" for name in fields)
                conn.execute(
                    f"UPDATE runs SET {names} WHERE run_id = ?", (*fields.values(), run_id)
                )

    # -- deleting (gc.py) ---------------------------------------------------------------------

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Delete these runs' rows and task attempts in one transaction; how many runs went."""
        conn = self.connection()
        ids = sorted(set(run_ids))
        deleted = 0
        with self._naming_damage(), conn:
            for i in range(0, len(ids), 500):  # well under SQLite's bound-variable limit
                chunk = ids[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                conn.execute(f"DELETE FROM tasks WHERE run_id IN ({marks})", chunk)
                cur = conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", chunk)
                deleted += cur.rowcount
        return deleted

    def sweep_blobs(self, referenced: Callable[[], AbstractSet[str]]) -> tuple[int, int]:
        """Delete the small blobs not in `referenced()`, read in the same write transaction."""
        with self._immediate() as conn:  # writers wait (busy timeout) until the commit
            keep = referenced()  # reads through this thread's connection: inside the transaction
            gone = [
                (key, size)
                for key, size in conn.execute("SELECT key, length(data) FROM blobs")
                if key not in keep
            ]
            for i in range(0, len(gone), 500):
                chunk = [key for key, _ in gone[i : i + 500]]
                conn.execute(
                    f"DELETE FROM blobs WHERE key IN ({', '.join('?' * len(chunk))})", chunk
                )
        return len(gone), sum(size for _, size in gone)

    def compact(self) -> None:
        """VACUUM the file (its size shrinks by the deleted rows), then truncate the WAL."""
        conn = self.connection()
        with self._naming_damage():
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reads --------------------------------------------------------------------------------

    def _read(self, read: Callable[[sqlite3.Connection], _R]) -> _R:
        """`read(connection)`, a damaged database reported as MetadataError naming it."""
        with self._naming_damage():
            return read(self.connection())

    @contextmanager
    def _naming_damage(self) -> Iterator[None]:
        """Turn SQLite's report of a damaged file ("database disk image is malformed", "file is
        not a database") into MetadataError naming the file; other errors pass unchanged."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # locked, full, a bug: not the file's
                raise
            raise damaged(self.path, exc) from exc

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in a write transaction begun at once (BEGIN IMMEDIATE:
        other writers wait until it ends), committed at the end of the block, rolled back if
        the block raises; a damaged file is MetadataError naming it."""
        conn = self.connection()
        with self._naming_damage():
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.commit()
        except BaseException as exc:
            conn.rollback()
            if type(exc) is sqlite3.DatabaseError:
                raise damaged(self.path, exc) from exc
            raise

    def _one(self, sql: str, args: Sequence[Any]) -> Any:
        """The first column of the first row of `sql`, or None when there is no row."""
        row = self._read(lambda conn: conn.execute(sql, args).fetchone())
        return None if row is None else row[0]

    def _runs(self, where: str, args: Sequence[Any]) -> list[RunRecord]:
        def read(conn: sqlite3.Connection) -> list[RunRecord]:
            # A row factory on the cursor, not the connection: other callers keep tuples.
            cursor = conn.cursor()
            cursor.row_factory = run_record
            return cursor.execute(f"SELECT {RUN_COLUMNS} FROM runs {where}", args).fetchall()

        return self._read(read)

    def _tasks(self, where: str, args: Sequence[Any]) -> list[TaskRecord]:
        def read(conn: sqlite3.Connection) -> list[TaskRecord]:
            cursor = conn.cursor()
            cursor.row_factory = task_record
            sql = f"SELECT {TASK_COLUMNS} FROM tasks {where} ORDER BY task_id, attempt"
            return cursor.execute(sql, args).fetchall()

        return self._read(read)

    def get_blob(self, key: str) -> bytes | None:
        """The bytes of a small blob, or None when it is not in the database.
        An identity key's blob is its key's (it is never in the database)."""
        blob = identity_blob(key)
        if blob is not None:
            return blob
        data: bytes | None = self._one("SELECT data FROM blobs WHERE key = ?", (key,))
        return data

    def blob_size(self, key: str) -> int | None:
        """The length of a small blob, or None when it is not in the database."""
        blob = identity_blob(key)  # (its key holds it)
        if blob is not None:
            return len(blob)
        size: int | None = self._one("SELECT length(data) FROM blobs WHERE key = ?", (key,))
        return size

    def flows(self) -> list[str]:
        """Names of every flow with at least one run."""
        rows = self._read(
            lambda conn: conn.execute("SELECT DISTINCT flow FROM runs ORDER BY flow").fetchall()
        )
        return [r[0] for r in rows]

    def run(self, flow: str, run_id: int) -> RunRecord | None:
        """One run of a flow, or None."""
        rows = self._runs("WHERE flow = ? AND run_id = ?", (flow, run_id))
        return rows[0] if rows else None

    def run_page(
        self, flow: str | None, *, before: int | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Up to `limit` runs of a flow, or of every flow, newest first.

        `before` pages on: only runs with a smaller id. Each page is read whole, so no read
        transaction stays open between pages (it would hide later writes of other processes).
        """
        where: list[str] = []
        args: list[Any] = []
        if flow is not None:
            where.append("flow = ?")
            args.append(flow)
        if before is not None:
            where.append("run_id < ?")
            args.append(before)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self._runs(f"{clause}ORDER BY run_id DESC LIMIT ?", (*args, limit))

    def latest_run_id(self, flow: str, *, resumed: bool | None = None) -> int | None:
        """The newest run id of a flow, or None.

        `resumed=False` counts only runs started afresh (not by resume), `True` only resumes.
        """
        sql = "SELECT max(run_id) FROM runs WHERE flow = ?"
        if resumed is not None:
            sql += " AND origin_run_id IS NOT NULL" if resumed else " AND origin_run_id IS NULL"
        run_id: int | None = self._one(sql, (flow,))
        return run_id

    def first_run_time(self, flow: str) -> float | None:
        """When the flow's first stored run started, or None."""
        sql = "SELECT min(created_at) FROM runs WHERE flow = ?"
        created: float | None = self._one(sql, (flow,))
        return created

    def run_graph(self, run_id: int) -> bytes | None:
        """The packed graph description stored with a run."""
        graph: bytes | None = self._one("SELECT graph FROM runs WHERE run_id = ?", (run_id,))
        return graph

    def run_params(self, run_id: int) -> bytes | None:
        """The packed manifest every task of the run starts from."""
        params: bytes | None = self._one("SELECT params FROM runs WHERE run_id = ?", (run_id,))
        return params

    def process_gone(self, run: RunRecord) -> bool:
        """True when a run reads `running` but no process runs it any more.

        A killed run's row keeps reading `running`; readers use this to tell it from a run
        still in progress. A run of another host cannot be probed, and reads as still running.
        """
        if run.status != "running" or run.host != this_host():
            return False
        if run.run_lock is None:  # stored without a lock: only the pid is known
            return run.pid is not None and pid_gone(run.pid)
        try:
            if lock_is_held(lock_path(self.path.parent, run.run_id)):
                return False
        except OSError:  # cannot be probed here
            return False
        # The lock is let go once the run's end is committed: the end may have come since
        # `run` was read.
        now = self._one("SELECT status FROM runs WHERE run_id = ?", (run.run_id,))
        return now == "running"

    def update_run_tags(
        self, flow: str, run_id: int, mutate: Callable[[list[str], list[str]], list[str]]
    ) -> list[str] | None:
        """Set a run's user tags to `mutate(user_tags, system_tags)`, atomically.

        The read and the write are one immediate transaction, so concurrent mutations (from
        any process) apply one after the other and none is lost. Returns the user tags now
        stored, or None when there is no such run. `mutate` may raise to change nothing.
        """
        with self._immediate() as conn:
            row = conn.execute(
                "SELECT tags, system_tags FROM runs WHERE flow = ? AND run_id = ?",
                (flow, run_id),
            ).fetchone()
            if row is None:
                return None  # commits nothing: nothing was written
            user = unpack(row[0]) if row[0] else []
            system = unpack(row[1]) if row[1] else []
            new = mutate(list(user), list(system))
            if new != user:
                conn.execute(
                    "UPDATE runs SET tags = ? WHERE flow = ? AND run_id = ?",
                    (pack(new), flow, run_id),
                )
        return new

    def task_attempts(
        self, run_id: int, step: str | None = None, task_id: int | None = None
    ) -> list[TaskRecord]:
        """Task attempts of a run (optionally one step or one task), oldest first."""
        where = "WHERE run_id = ?"
        args: list[Any] = [run_id]
        if step is not None:
            where += " AND step = ?"
            args.append(step)
        if task_id is not None:
            where += " AND task_id = ?"
            args.append(task_id)
        return self._tasks(where, args)

    def task_attempts_by_id(self, run_id: int, task_ids: Sequence[int]) -> list[TaskRecord]:
        """Every attempt of the given tasks of a run, ordered by task id and attempt."""
        records: list[TaskRecord] = []
        ids = sorted(set(task_ids))
        for i in range(0, len(ids), 500):  # stay well under SQLite's bound-variable limit
            chunk = ids[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            records += self._tasks(f"WHERE run_id = ? AND task_id IN ({marks})", (run_id, *chunk))
        return records

    def steps(self, run_id: int) -> list[tuple[str, float | None]]:
        """(step name, first start time) of every step with a task in the run."""
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT step, min(started_at) FROM tasks WHERE run_id = ? GROUP BY step "
                "ORDER BY min(task_id)",
                (run_id,),
            ).fetchall()
        )
        return [(r[0], r[1]) for r in rows]

    # -- cards (`sqlite_cards.py`) --------------------------------------------------------------

    def put_card(self, card: CardRecord) -> None:
        """Store a card's row in its own transaction (the table is made on first use)."""
        conn = self.connection()
        with self._naming_damage():
            when_unlocked(lambda: put_card(conn, card))

    def cards(self, run_id: int, task_id: int | None = None) -> list[CardRecord]:
        """The cards of a run (of one task), by task id, attempt and position."""
        return self._read(lambda conn: read_cards(conn, run_id, task_id))


def _close(
    conns: list[sqlite3.Connection], locks: dict[int, RunLock], guard: threading.Lock, pid: int
) -> None:
    """Close a store's connections and let go of its runs' locks, emptying the containers in
    place (the store keeps using them)."""
    if os.getpid() != pid:
        # A forked child's copies: closing a connection the parent uses may checkpoint the
        # write-ahead log under it, and the locks are the parent's.
        return
    with guard:
        closing, held = conns[:], list(locks.values())
        conns.clear()
        locks.clear()
    for conn in closing:
        conn.close()
    for lock in held:
        lock.release()


#: The older name of SqliteMetadataStore.
MetadataDB = SqliteMetadataStore
