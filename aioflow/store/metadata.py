"""The metadata database: runs, task attempts, artifact manifests, logs and small blobs, in SQLite.

One file, `metadata.db`, in WAL mode so readers in other processes never block the writer.
Each task attempt is one row holding its artifact manifest (name -> blob key, msgpack), so an
untouched artifact costs a few bytes per task and nothing else. Blobs smaller than `SMALL` live in
the `blobs` table; a row there costs microseconds where a file costs a hundred.

Rows are written in batches (see `writer.py`); every batch is one transaction, so a killed
process leaves the database as of its last committed batch and never a half-written row.

A killed run's row keeps reading `running`. While a run is open its process holds the run's
lock file (`liveness.py`, flagged by `run_lock`), so `process_gone` tells a run in progress
from an abandoned one; runs stored by an aioflow without run locks go by their pid.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import StoreError
from .liveness import LOCK_FOLDER, RunLock, lock_is_held, lock_path
from .serde import pack, unpack

#: Blobs up to this size are kept in the database rather than in files.
SMALL = 256 * 1024

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow TEXT NOT NULL,
    status TEXT NOT NULL,
    user TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    origin_run_id TEXT,
    tags BLOB,
    system_tags BLOB,
    params BLOB,
    graph BLOB,
    pid INTEGER,
    host TEXT,
    error BLOB,
    run_lock INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, run_id);
CREATE TABLE IF NOT EXISTS tasks (
    run_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    frames BLOB,
    parents BLOB,
    manifest BLOB,
    stdout TEXT,
    stderr TEXT,
    exception BLOB,
    origin TEXT,
    transition BLOB,
    PRIMARY KEY (run_id, task_id, attempt)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_by_step ON tasks (run_id, step);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""

TASK_COLUMNS = (
    "run_id, task_id, attempt, step, status, started_at, finished_at, frames, parents, "
    "manifest, stdout, stderr, exception, origin, transition"
)
#: A task row, in TASK_COLUMNS order.
TaskRow = tuple[Any, ...]


def task_row(
    run_id: int,
    task_id: int,
    attempt: int,
    step: str,
    status: str,
    *,
    started_at: float | None,
    finished_at: float | None = None,
    frames: bytes | None = None,
    parents: bytes | None = None,
    manifest: bytes | None = None,
    stdout: str | None = None,
    stderr: str | None = None,
    exception: bytes | None = None,
    origin: str | None = None,
    transition: bytes | None = None,
) -> TaskRow:
    """A task attempt row in TASK_COLUMNS order (msgpack-packed fields given packed).

    `status` is running, succeeded, failed or caught (failed, but @catch let the run go on);
    `origin` is the pathspec of the task a resumed run cloned this one from; `transition` is
    `[targets, foreach variable, key of the blob listing foreach item keys]`.
    """
    return (run_id, task_id, attempt, step, status, started_at, finished_at, frames, parents,
            manifest, stdout, stderr, exception, origin, transition)  # fmt: skip


#: The columns of `runs` the client reads (everything but the graph and the parameters).
RUN_COLUMNS = (
    "run_id, flow, status, user, created_at, finished_at, origin_run_id, tags, system_tags, "
    "pid, host, error, run_lock"
)


#: Bound parameters one statement may have (SQLite's default limit since 3.32, 999 before).
_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def _insert_rows(
    conn: sqlite3.Connection, insert: str, width: int, rows: Sequence[Sequence[Any]]
) -> None:
    """`insert` (up to `VALUES`) many rows per statement, not one statement per row.

    sqlite3 lets go of the GIL around each statement's execution and must take it back after:
    with `executemany`, once per row. While the event loop and task threads keep the GIL busy,
    each take-back waits for a switch interval, so a commit of thousands of rows crawled and
    kept forcing handoffs. One statement per chunk of rows runs SQLite's part of the work
    without the GIL, on another core.
    """
    per = max(1, _MAX_PARAMETERS // width)
    one = "(" + ", ".join("?" * width) + ")"
    for row in rows:
        if len(row) != width:  # flattened, a short row would shift every value after it
            raise sqlite3.ProgrammingError(
                f"{insert}: a row has {len(row)} values, expected {width}: {row!r:.200}"
            )
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        values = ", ".join([one] * len(chunk))
        conn.execute(f"{insert} {values}", [value for row in chunk for value in row])


#: Seconds a connection waits for another one's lock before it reports the database locked.
_BUSY_TIMEOUT = 60.0


def _when_unlocked(action: Callable[[], Any]) -> None:
    """Run `action`, and again while SQLite reports the database locked, for `_BUSY_TIMEOUT`.

    SQLite normally waits for a lock itself (the busy timeout), but where waiting could
    deadlock it reports "database is locked" at once: two connections opening a new store
    together, one switching it to WAL while the other creates the tables, is such a case (two
    runs started at once in a fresh folder, a service's first requests). Backing off and trying
    again resolves it, since the other connection finishes.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT
    delay = 0.001
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a store written by an older aioflow up to date (columns are only ever added)."""
    missing = []
    for table, columns in (("tasks", TASK_COLUMNS), ("runs", RUN_COLUMNS)):
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing += [(table, name) for name in columns.split(", ") if name not in have]
    if not missing:
        return
    with conn:
        for table, name in missing:
            kind = "INTEGER" if name == "run_lock" else "BLOB"  # as in _SCHEMA
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def this_host() -> str:
    """The name of this machine, as runs record it (on POSIX `os.uname().nodename`, as before)."""
    return platform.node()


def _pid_gone(pid: int) -> bool:
    """True when no process has `pid` (for runs stored by an aioflow without run locks).

    A pid is reused once its process is gone, so this may take a dead run for a live one.
    """
    if sys.platform == "win32":
        # os.kill on Windows ends the process (signal 0 is CTRL_C_EVENT). aioflow never ran on
        # Windows without run locks, so a row of this host needing the pid is not from it.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


class MetadataDB:
    """The SQLite database of one store; safe to share between threads (one connection each)."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
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
            conn = self.connection()

            def create_schema() -> None:
                with conn:
                    conn.executescript(_SCHEMA)
                    conn.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )

            _when_unlocked(create_schema)
            _add_missing_columns(conn)
        else:
            # A reader of a store written by an older aioflow needs its columns too.
            try:
                _add_missing_columns(self.connection())
            except sqlite3.DatabaseError as exc:
                raise StoreError(
                    f"Cannot read the metadata database {self.path}: {exc}. Is it an aioflow "
                    "store, and writable (a store from an older aioflow is upgraded on open)?"
                ) from exc

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, check_same_thread=False)
                _when_unlocked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StoreError(f"Cannot open the metadata database {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this object opened; the runs it created read ended.

        A run's process closes its store once the run's end is committed: from then on the
        run no longer holds its lock, and a row still reading `running` reads abandoned.
        """
        with self._lock:
            conns, self._all = self._all, []
            locks, self._run_locks = self._run_locks, {}
        for conn in conns:
            conn.close()
        self._local = threading.local()
        for lock in locks.values():
            lock.release()

    # -- writes -------------------------------------------------------------------------------

    def create_run(
        self,
        flow: str,
        *,
        user: str,
        tags: bytes,
        system_tags: bytes,
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
            with conn:
                cur = conn.execute(
                    "INSERT INTO runs (flow, status, user, created_at, origin_run_id, tags, "
                    "system_tags, graph, params, pid, host, run_lock) "
                    "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    (
                        flow,
                        user,
                        time.time(),
                        origin_run_id,
                        tags,
                        system_tags,
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
        tasks: Iterable[TaskRow],
        blobs: Iterable[tuple[str, bytes]],
        run_updates: Sequence[tuple[int, dict[str, Any]]] = (),
    ) -> None:
        """Commit blobs, task rows and run updates in one transaction."""
        conn = self.connection()
        with conn:
            _insert_rows(conn, "INSERT OR IGNORE INTO blobs VALUES", 2, list(blobs))
            _insert_rows(
                conn, f"INSERT OR REPLACE INTO tasks ({TASK_COLUMNS}) VALUES", 15, list(tasks)
            )
            for run_id, fields in run_updates:
                names = ", ".join(f"{name} = ?" for name in fields)
                conn.execute(
                    f"UPDATE runs SET {names} WHERE run_id = ?", (*fields.values(), run_id)
                )

    # -- reads --------------------------------------------------------------------------------

    def get_blob(self, key: str) -> bytes | None:
        """The bytes of a small blob, or None when it is not in the database."""
        row = self.connection().execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def blob_size(self, key: str) -> int | None:
        """The length of a small blob, or None when it is not in the database."""
        row = (
            self.connection()
            .execute("SELECT length(data) FROM blobs WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else row[0]

    def flows(self) -> list[str]:
        """Names of every flow with at least one run."""
        rows = self.connection().execute("SELECT DISTINCT flow FROM runs ORDER BY flow")
        return [r[0] for r in rows]

    def _named_rows(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        # A row factory on the cursor, not the connection: other threads' connections and
        # other callers on this one keep plain tuples.
        cursor = self.connection().cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(sql, args).fetchall()

    def runs(self, flow: str) -> list[sqlite3.Row]:
        """Every run of a flow, newest first."""
        return self._named_rows("SELECT * FROM runs WHERE flow = ? ORDER BY run_id DESC", (flow,))

    def run(self, flow: str, run_id: int) -> sqlite3.Row | None:
        """One run's row, or None."""
        rows = self._named_rows("SELECT * FROM runs WHERE flow = ? AND run_id = ?", (flow, run_id))
        return rows[0] if rows else None

    def process_gone(self, row: Any) -> bool:
        """True when a run's row reads `running` but no process runs it any more.

        `row` holds the run's run_id, status, pid, host and run_lock. A killed run's row keeps
        reading `running`; readers use this to tell it from a run still in progress. A run of
        another host cannot be probed, and reads as still running.
        """
        if row["status"] != "running" or row["host"] != this_host():
            return False
        if row["run_lock"] is None:  # stored without a lock: only the pid is known
            return row["pid"] is not None and _pid_gone(row["pid"])
        try:
            if lock_is_held(lock_path(self.path.parent, row["run_id"])):
                return False
        except OSError:  # cannot be probed here
            return False
        # The lock is let go once the run's end is committed: the end may have come since
        # `row` was read.
        now = (
            self.connection()
            .execute("SELECT status FROM runs WHERE run_id = ?", (row["run_id"],))
            .fetchone()
        )
        return now is not None and now[0] == "running"

    def run_summary(self, flow: str, run_id: int) -> sqlite3.Row | None:
        """One run's RUN_COLUMNS (no graph, no parameters), or None."""
        rows = self._named_rows(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE flow = ? AND run_id = ?", (flow, run_id)
        )
        return rows[0] if rows else None

    def run_page(
        self, flow: str | None, *, before: int | None = None, limit: int = 100
    ) -> list[sqlite3.Row]:
        """Up to `limit` runs (RUN_COLUMNS) of a flow, or of every flow, newest first.

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
        return self._named_rows(
            f"SELECT {RUN_COLUMNS} FROM runs {clause}ORDER BY run_id DESC LIMIT ?", (*args, limit)
        )

    def run_graph(self, run_id: int) -> bytes | None:
        """The packed graph description stored with a run."""
        row = (
            self.connection()
            .execute("SELECT graph FROM runs WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        return None if row is None else row[0]

    def latest_run_id(self, flow: str, *, resumed: bool | None = None) -> int | None:
        """The newest run id of a flow, or None.

        `resumed=False` counts only runs started afresh (not by resume), `True` only resumes.
        """
        sql = "SELECT max(run_id) FROM runs WHERE flow = ?"
        if resumed is not None:
            sql += " AND origin_run_id IS NOT NULL" if resumed else " AND origin_run_id IS NULL"
        row = self.connection().execute(sql, (flow,)).fetchone()
        return None if row is None else row[0]

    def update_run_tags(
        self, flow: str, run_id: int, mutate: Callable[[list[str], list[str]], list[str]]
    ) -> list[str] | None:
        """Set a run's user tags to `mutate(user_tags, system_tags)`, atomically.

        The read and the write are one immediate transaction, so concurrent mutations (from
        any process) apply one after the other and none is lost. Returns the user tags now
        stored, or None when there is no such run. `mutate` may raise to change nothing.
        """
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT tags, system_tags FROM runs WHERE flow = ? AND run_id = ?",
                (flow, run_id),
            ).fetchone()
            if row is None:
                conn.rollback()
                return None
            user = unpack(row[0]) if row[0] else []
            system = unpack(row[1]) if row[1] else []
            new = mutate(list(user), list(system))
            if new != user:
                conn.execute(
                    "UPDATE runs SET tags = ? WHERE flow = ? AND run_id = ?",
                    (pack(new), flow, run_id),
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return new

    def task_attempts(
        self, run_id: int, step: str | None = None, task_id: int | None = None
    ) -> list[TaskRow]:
        """Task attempt rows of a run (optionally one step or one task), oldest first."""
        sql = f"SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ?"
        args: list[Any] = [run_id]
        if step is not None:
            sql += " AND step = ?"
            args.append(step)
        if task_id is not None:
            sql += " AND task_id = ?"
            args.append(task_id)
        sql += " ORDER BY task_id, attempt"
        return self.connection().execute(sql, args).fetchall()

    def task_attempts_by_id(self, run_id: int, task_ids: Sequence[int]) -> list[TaskRow]:
        """Every attempt row of the given tasks of a run, ordered by task id and attempt."""
        rows: list[TaskRow] = []
        ids = sorted(set(task_ids))
        for i in range(0, len(ids), 500):  # stay well under SQLite's bound-variable limit
            chunk = ids[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            rows.extend(
                self.connection().execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ? AND task_id IN ({marks}) "
                    "ORDER BY task_id, attempt",
                    (run_id, *chunk),
                )
            )
        return rows

    def steps(self, run_id: int) -> list[tuple[str, float]]:
        """(step name, first start time) of every step with a task in the run."""
        rows = self.connection().execute(
            "SELECT step, min(started_at) FROM tasks WHERE run_id = ? GROUP BY step "
            "ORDER BY min(task_id)",
            (run_id,),
        )
        return [(r[0], r[1]) for r in rows]
