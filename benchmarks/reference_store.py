"""The persisting half of `benchmarks.reference_orchestrator`: aioflow's store, written by hand.

What aioflow keeps of a run, and so what this writes, the same way (checked by
`benchmarks.floor`, which compares the two stores after every case):

- `metadata.db`, SQLite in WAL mode with `synchronous=NORMAL`, marked with aioflow's
  `application_id`, with aioflow's tables exactly (`SCHEMA`, the same text) and its
  `schema_version` row;
- the run's row, inserted in its own transaction, after the parameters' blobs were committed in
  one before it (a run killed in between must not read as resumable);
- the run's lock file (`running/<run>.lock`, flock'ed while the run is open, removed after its
  end is committed) and its fatal-error report (`faults/<run>.log`, `faulthandler`'s file);
- from a writer thread, at most every `COMMIT_INTERVAL` (10 ms) after the last commit, one
  transaction per batch of task rows (15 columns, `INSERT OR REPLACE`), small blobs
  (`INSERT OR IGNORE`, and when some keys were there already the repairing upsert aioflow runs)
  and run updates, many rows per statement; the rows of tasks still running when a batch is
  taken go with it as `running` rows, as aioflow's writer pulls them;
- blobs over `SMALL` (256 KiB) as files `blobs/<2 hex>/<38 hex>`: a temporary file in
  `blobs/tmp`, renamed into place, skipped when a file of the right size and hash is there.

One way it writes differs from aioflow's, not in what it writes: rows go in statements of a
few fixed sizes (512, 64, 8 and 1 rows), so SQLite parses each statement once per connection
and then reuses it. aioflow's `insert_rows` sends one statement of up to 2,184 rows, whose text
changes with each batch's size, and SQLite compiles a VALUES list row by row: a commit of
1,000-odd finished tasks costs about 18.5 us per task that way and 12.3 us with fixed sizes
(both here, load ~2.5; `micro/test_task_costs.py` measures both). A floor takes the cheaper way;
the difference is aioflow's to take back.

Small blobs stay readable from the writer's cache from the moment they are handed over (tasks
never wait for a commit), and are never evicted: at 10,000 tasks aioflow's cache (64 MiB) does
not evict either. The database's last connection is closed at the end, which checkpoints the
write-ahead log, as aioflow's store close does.
"""

from __future__ import annotations

import faulthandler
import fcntl
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from blake3 import blake3

#: aioflow's tables, verbatim (aioflow/store/sqlite_schema.py); the floor compares the two.
SCHEMA = """
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
APPLICATION_ID = 0x61696F66
TASK_COLUMNS = (
    "run_id, task_id, attempt, step, status, started_at, finished_at, frames, parents, "
    "manifest, stdout, stderr, exception, origin, transition"
)
SMALL = 256 * 1024
COMMIT_INTERVAL = 0.01
_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_CHUNKS = (512, 64, 8, 1)
_REPAIR = "ON CONFLICT (key) DO UPDATE SET data = excluded.data WHERE data != excluded.data"


def insert_rows(
    conn: sqlite3.Connection, head: str, width: int, rows: list[Any], then: str = ""
) -> None:
    """Many rows per statement, in chunks of a few fixed sizes: one statement per row would
    take the GIL back per row, and a statement of another size each commit would be parsed
    again each commit (SQLite caches prepared statements by their text)."""
    start = 0
    for size in _CHUNKS:
        if size * width > _MAX_PARAMETERS:
            continue
        sql = f"{head} {', '.join(['(' + ', '.join('?' * width) + ')'] * size)} {then}"
        while len(rows) - start >= size:
            chunk = rows[start : start + size]
            conn.execute(sql, [v for r in chunk for v in r])
            start += size


class ReferenceStore:
    """One store folder: the database, the large-blob files, the run's lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "metadata.db"
        # bytes and None parameters bound as they are: without an adapter registered for them
        # the sqlite3 module looks for one per parameter, a formatted and discarded
        # AttributeError each (aioflow registers the same two, `sqlite_schema.bind_as_is`).
        for kind, same in ((bytes, bytes), (type(None), {}.get)):
            if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
                sqlite3.register_adapter(kind, same)
        self.conn = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
        (mark,) = self.conn.execute("PRAGMA application_id").fetchone()
        if mark != APPLICATION_ID:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', '1')")
            self.conn.commit()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.blob_root = root / "blobs"
        self._folders: set[str] = set()
        self._lock_fd: int | None = None
        self._lock_path: Path | None = None
        self._fault: Any = None

    def write_batch(
        self, tasks: list[Any], blobs: list[tuple[str, bytes]], runs: list[tuple[int, dict]]
    ) -> None:
        """One transaction: blobs, task rows, run updates (any one thread at a time)."""
        conn = self.conn
        with conn:
            before = conn.total_changes
            insert_rows(conn, "INSERT OR IGNORE INTO blobs VALUES", 2, blobs)
            if conn.total_changes - before < len(blobs):  # some were stored: repair if damaged
                insert_rows(conn, "INSERT INTO blobs VALUES", 2, blobs, _REPAIR)
            insert_rows(conn, f"INSERT OR REPLACE INTO tasks ({TASK_COLUMNS}) VALUES", 15, tasks)
            for run_id, fields in runs:
                names = ", ".join(f"{name} = ?" for name in fields)
                conn.execute(
                    f"UPDATE runs SET {names} WHERE run_id = ?", (*fields.values(), run_id)
                )

    def create_run(self, flow: str, user: str, tags: bytes, system_tags: bytes, graph: bytes,
                   params: bytes, host: str) -> int:  # fmt: skip
        """The run's row, committed with its lock held (a reader never sees it unlocked)."""
        (self.root / "running").mkdir(exist_ok=True)
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (flow, status, user, created_at, origin_run_id, tags, "
                "system_tags, graph, params, pid, host, run_lock) "
                "VALUES (?, 'running', ?, ?, NULL, ?, ?, ?, ?, ?, ?, 1)",
                (flow, user, time.time(), tags, system_tags, graph, params, os.getpid(), host),
            )
            run_id = cur.lastrowid
            assert run_id is not None
            self._lock_path = self.root / "running" / f"{run_id}.lock"
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (self.root / "faults").mkdir(exist_ok=True)
        self._fault = open(self.root / "faults" / f"{run_id}.log", "w")  # noqa: SIM115
        faulthandler.enable(file=self._fault, all_threads=True)
        return run_id

    def put_large(self, key: str, data: bytes) -> None:
        """A blob file, written to a temporary file and renamed; kept when already intact."""
        folder = key[:2]
        target = self.blob_root / folder / key[2:]
        try:
            same_size = target.stat().st_size == len(data)
            if same_size and blake3(target.read_bytes()).hexdigest(length=20) == key:
                os.utime(target)
                return
        except FileNotFoundError:
            pass
        if folder not in self._folders:
            (self.blob_root / "tmp").mkdir(parents=True, exist_ok=True)
            (self.blob_root / folder).mkdir(exist_ok=True)
            self._folders.add(folder)
        tmp = self.blob_root / "tmp" / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    def close(self) -> None:
        """Close the database (checkpointing its log), then let go of the run's lock."""
        self.conn.close()
        if self._lock_fd is not None and self._lock_path is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            os.unlink(self._lock_path)
        if self._fault is not None:
            faulthandler.disable()
            os.unlink(self._fault.name)
            self._fault.close()


class ReferenceWriter:
    """Queues rows and small blobs; a thread commits them, at most every COMMIT_INTERVAL."""

    def __init__(self, store: ReferenceStore, running_rows: Any) -> None:
        self.store = store
        self.running_rows = running_rows  # () -> rows of tasks running and not stored yet
        self.cache: dict[str, bytes] = {}
        # Deques: the loop thread appends while the writer thread pops, both atomic.
        self._tasks: deque[tuple[Any, ...]] = deque()
        self._blobs: deque[tuple[str, bytes]] = deque()
        self._runs: deque[tuple[int, dict]] = deque()
        self._wakeup = threading.Event()
        self._woken = False  # _wakeup is set (a plain flag costs less to check)
        self._closing = False
        self.error: BaseException | None = None
        self.cpu = 0.0  # the thread's CPU seconds, once it has stopped
        self._thread = threading.Thread(target=self._loop, name="reference-writer", daemon=True)
        self._thread.start()

    def put_blob(self, key: str, data: bytes) -> None:
        """A small blob, readable at once and committed with the next batch (once per key)."""
        if key not in self.cache:
            self.cache[key] = data
            self._blobs.append((key, data))

    def put_task(self, row: tuple[Any, ...]) -> None:
        """A task row (a later row of the same attempt replaces it)."""
        self._tasks.append(row)
        if not self._woken:
            self._woken = True
            self._wakeup.set()

    def update_run(self, run_id: int, **fields: Any) -> None:
        """An update of the run's row, committed with the next batch."""
        self._runs.append((run_id, fields))
        self._woken = True
        self._wakeup.set()

    def wake(self) -> None:
        """A commit should follow soon (tasks started: their running rows go with it)."""
        if not self._woken:
            self._woken = True
            self._wakeup.set()

    def _take(self) -> tuple[list[Any], list[tuple[str, bytes]], list[tuple[int, dict]]]:
        running = self.running_rows()  # first: a task finishing now has its row queued next
        tasks: dict[tuple[int, int], tuple[Any, ...]] = {}
        queued = self._tasks
        while queued:
            row = queued.popleft()
            tasks[(row[1], row[2])] = row
        for row in running:  # a finished row queued meanwhile is the newer one
            tasks.setdefault((row[1], row[2]), row)
        blobs = [self._blobs.popleft() for _ in range(len(self._blobs))]
        runs = [self._runs.popleft() for _ in range(len(self._runs))]
        return list(tasks.values()), blobs, runs

    def _loop(self) -> None:
        started = time.thread_time()
        try:
            while True:
                self._wakeup.wait()
                self._wakeup.clear()
                self._woken = False
                closing = self._closing
                tasks, blobs, runs = self._take()
                if tasks or blobs or runs:
                    self.store.write_batch(tasks, blobs, runs)
                if closing:
                    return
                time.sleep(COMMIT_INTERVAL)
        except BaseException as exc:  # reported by close()
            self.error = exc
        finally:
            self.cpu = time.thread_time() - started

    def close(self) -> None:
        """Commit what is queued and stop the thread (raises what a commit raised)."""
        self._closing = True
        self._woken = True
        self._wakeup.set()
        self._thread.join()
        if self.error is not None:
            raise self.error
