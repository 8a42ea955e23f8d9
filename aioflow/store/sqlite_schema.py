"""The SQLite file behind SqliteMetadataStore: its schema, opening it, and its rows' shapes.

`metadata.py` holds the queries; this module holds what they stand on. The schema is created
when a store is first opened and only ever grows: a store written by an older aioflow gets the
columns it lacks on open (`ensure_schema`). aioflow's databases carry a mark (`APPLICATION_ID`),
and a database is identified before anything is written to it: one of another program is
refused untouched, never switched to WAL or given columns. Connections run in WAL mode, so
readers in other processes never block the writer, and `when_unlocked` retries what SQLite
refuses at once with "database is locked" instead of waiting. A task attempt and a run row are
TaskRecords and RunRecords here (`task_row`, the row factories), and `insert_rows` writes many
rows per statement.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from ..exceptions import MetadataError
from .protocols import RunRecord, TaskRecord
from .serde import unpack

SCHEMA_VERSION = 1

#: `PRAGMA application_id` of aioflow's databases ("aiof" in ASCII), in the file's header.
APPLICATION_ID = 0x61696F66
#: The tables of a store, as every aioflow has made them. A database with these and no mark is
#: a store of an aioflow from before the mark; it is marked when next opened for writing.
STORE_TABLES = frozenset({"meta", "runs", "tasks", "blobs"})

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

#: The columns of `tasks`, in TaskRecord's order.
TASK_COLUMNS = ", ".join(TaskRecord._fields)
#: A task attempt as the runtime writes it (the older name of TaskRecord).
TaskRow = TaskRecord


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
) -> TaskRecord:
    """A task attempt (packed fields given packed); see TaskRecord for what each field holds."""
    return TaskRecord(run_id, task_id, attempt, step, status, started_at, finished_at, frames,
                      parents, manifest, stdout, stderr, exception, origin, transition)  # fmt: skip


#: The columns of `runs` a RunRecord holds (everything but the graph and the parameters).
RUN_COLUMNS = ", ".join(RunRecord._fields)

_TAGS = RunRecord._fields.index("tags")
_SYSTEM_TAGS = RunRecord._fields.index("system_tags")


def run_record(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> RunRecord:
    """A row of RUN_COLUMNS as a RunRecord, its tags unpacked (a cursor's row factory).

    Tags are msgpack (never pickles); a damaged list raises MetadataError naming the run.
    """
    values = list(row)
    for i in (_TAGS, _SYSTEM_TAGS):
        if not values[i]:
            values[i] = ()
            continue
        try:
            tags = unpack(values[i])
            if not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
                raise ValueError("not a list of strings")
        except (ValueError, TypeError) as exc:
            raise MetadataError(
                f"The tags of run {values[0]} of {values[1]!r} cannot be read ({exc}): the "
                "metadata database is damaged."
            ) from None
        values[i] = tuple(tags)
    return RunRecord._make(values)


def task_record(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> TaskRecord:
    """A row of TASK_COLUMNS as a TaskRecord (a cursor's row factory)."""
    return TaskRecord._make(row)


#: Rows per INSERT statement: a few fixed sizes, largest first, so each statement's text recurs.
#: A compiled statement holds about 1.6 KB per task row in it for as long as its connection
#: lives (sqlite3's statement cache): 413 KB at 256 rows, 817 KB at 512, a tenth of a 10,000-wide
#: foreach's memory for a batch size that commits no faster.
CHUNKS = (256, 32, 4, 1)


def insert_rows(
    conn: sqlite3.Connection,
    insert: str,
    width: int,
    rows: Sequence[Sequence[Any]],
    *,
    max_parameters: int,
    then: str = "",
) -> None:
    """`insert` (up to `VALUES`) many rows per statement, not one statement per row; `then`
    follows the rows (an `ON CONFLICT` clause).

    sqlite3 lets go of the GIL around each statement's execution and must take it back after:
    with `executemany`, once per row. While the event loop and task threads keep the GIL busy,
    each take-back waits for a switch interval, so a commit of thousands of rows crawled and
    kept forcing handoffs. One statement per chunk of rows runs SQLite's part of the work
    without the GIL, on another core. A statement binds at most `max_parameters` values.

    The chunks have the sizes of `CHUNKS`: a batch holds whatever finished since the last
    commit, and a statement for exactly that many rows was new text each time, which SQLite
    compiled anew, row by row (4 of a wide foreach's 12 us per task). Fixed sizes are compiled
    once per connection and then found in sqlite3's statement cache.
    """
    per = max(1, max_parameters // width)
    one = "(" + ", ".join("?" * width) + ")"
    for row in rows:
        if len(row) != width:  # flattened, a short row would shift every value after it
            raise sqlite3.ProgrammingError(
                f"{insert}: a row has {len(row)} values, expected {width}: {row!r:.200}"
            )
    start, count = 0, len(rows)
    for size in sorted({min(size, per) for size in CHUNKS}, reverse=True):
        if count - start < size:
            continue
        sql = f"{insert} {', '.join([one] * size)} {then}"
        while count - start >= size:
            chunk = rows[start : start + size]
            conn.execute(sql, list(chain.from_iterable(chunk)))  # (no Python loop per value)
            start += size


#: Seconds a connection waits for another one's lock before it reports the database locked.
BUSY_TIMEOUT = 60.0

#: Each connection's page cache, in KiB (SQLite's default is 2,000). A run's writes append:
#: task ids grow, so a commit touches the right edge of each B-tree and little else, and a
#: connection of 128 pages misses a few pages per 100,000 tasks. The default cache filled up
#: in every run all the same, and stayed: 2 MB per thread that wrote, 0.2 KB a task of a
#: 10,000-wide foreach.
CACHE_KIB = 512


def when_unlocked(action: Callable[[], Any]) -> None:
    """Run `action`, and again while SQLite reports the database locked, for `BUSY_TIMEOUT`.

    SQLite normally waits for a lock itself (the busy timeout), but where waiting could
    deadlock it reports "database is locked" at once: two connections opening a new store
    together, one switching it to WAL while the other creates the tables, is such a case (two
    runs started at once in a fresh folder, a service's first requests). Backing off and trying
    again resolves it, since the other connection finishes.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
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


#: Identity adapters for the two parameter types of aioflow's rows that the sqlite3 module
#: adapts: bytes (blobs, packed columns) and None (NULL columns). See `bind_as_is`.
_AS_IS: tuple[tuple[type, Any], ...] = ((bytes, bytes), (type(None), {}.get))


def bind_as_is() -> None:
    """Let the sqlite3 module bind bytes and None without trying to adapt them.

    It binds int, float and str directly, but for any other value it looks for an adapter, and
    finding none costs it an AttributeError formatted and discarded: about a microsecond per
    parameter on Python 3.11, close to half of the writer's cost per task row (which has 8 such
    columns). An adapter registered for the exact type is found first; `bytes(b)` returns `b`
    itself and `{}.get(None)` returns None, so the values bound are unchanged. The registry is
    the process's: an adapter someone registered for these types is left as it is.
    """
    for kind, same in _AS_IS:
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, same)


def open_database(path: Path) -> sqlite3.Connection:
    """A connection to the database at `path`, as SQLite opens it: nothing is written yet.

    The first connection of a store goes to `ensure_schema`, which checks the database is
    aioflow's before it writes; `connect` makes the others.
    """
    bind_as_is()
    try:
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT, check_same_thread=False)
    except sqlite3.Error as exc:
        raise MetadataError(f"Cannot open the metadata database {path}: {exc}", path) from exc


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    try:
        when_unlocked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    except sqlite3.Error as exc:
        raise MetadataError(f"Cannot open the metadata database {path}: {exc}", path) from exc


def connect(path: Path) -> sqlite3.Connection:
    """A new connection, in WAL mode, for any thread, to a database `ensure_schema` checked."""
    conn = open_database(path)
    try:
        _configure(conn, path)
    except BaseException:
        conn.close()  # (a damaged file: nobody else will hold this connection to close it)
        raise
    return conn


def identify(conn: sqlite3.Connection) -> str:
    """What the database is: "aioflow" (marked), "unmarked" (a store of an older aioflow),
    "empty", or "foreign" (another program's). Only reads."""
    (mark,) = conn.execute("PRAGMA application_id").fetchone()
    if mark == APPLICATION_ID:
        return "aioflow"
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if mark != 0:
        return "foreign"
    if not tables:
        return "empty"
    if tables == STORE_TABLES:
        versioned = conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone()
        return "unmarked" if versioned else "foreign"
    return "foreign"


def ensure_schema(conn: sqlite3.Connection, path: Path, *, create: bool) -> None:
    """Check that the database at `path` is aioflow's, then give it every table (when `create`),
    every column aioflow uses, and WAL mode.

    `conn` is fresh from `open_database`: nothing is written before the check, so a database of
    another program, or an empty one opened for reading, raises MetadataError untouched. A
    reader (`create=False`) of a store written by an older aioflow needs its columns too. A file
    SQLite cannot use raises MetadataError naming it.
    """

    def create_schema() -> None:
        # One transaction: a concurrent opener sees no table or every table, never a part
        # (which would read as another program's database).
        conn.execute("BEGIN IMMEDIATE")
        try:
            kind = identify(conn)
            if kind == "foreign":
                raise foreign(path, conn)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    try:
        kind = "aioflow" if _marked(path) else _identify_read_only(path, create=create)
        if create and kind != "aioflow":
            if kind == "empty":
                # A new store's database goes to WAL mode before its tables are made: they are
                # then one commit to the log, where a rollback journal's commit costs four
                # fsyncs and a file deleted (tens of milliseconds on a busy disk).
                _configure(conn, path)
            when_unlocked(create_schema)
        _configure(conn, path)
        _add_missing_columns(conn)
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from exc


def _marked(path: Path) -> bool:
    """True when the database carries aioflow's mark (`PRAGMA application_id`): the common case.
    MetadataError, before anything is written, when a newer aioflow's schema version is in it.

    Read through a read-only SQLite connection, never by opening the file: closing any file
    descriptor of the database drops every POSIX lock this process holds on it, SQLite's
    included, and with its locks gone another process (a worker that read blobs) may
    checkpoint and reset the write-ahead log under this process's open connections, which
    then read the database as malformed. SQLite's own connections share their descriptors.
    """
    if not path.exists():  # (a read-only connection cannot create it: nothing to ask)
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error:
        return False
    mark = version = None
    try:
        (mark,) = conn.execute("PRAGMA application_id").fetchone()
        if mark == APPLICATION_ID:
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error:
        pass  # mark unread: not marked (`_identify_read_only` asks); version unread: not newer
    finally:
        conn.close()
    if version is not None and str(version[0]).isdigit() and int(version[0]) > SCHEMA_VERSION:
        raise MetadataError(
            f"The metadata database {path} was written by a newer aioflow (schema version "
            f"{version[0]}; this aioflow knows up to {SCHEMA_VERSION}): upgrade aioflow to use "
            "it. It was left untouched.",
            path,
        )
    return bool(mark == APPLICATION_ID)


def _identify_read_only(path: Path, *, create: bool) -> str:
    """`identify` through a read-only connection; raise MetadataError for a database that is
    not a store: another program's, or an empty one unless `create`.

    Read-only, because closing the last read-write connection of a database in WAL mode
    checkpoints its log into the file: another program's database would be rewritten.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)
    try:
        kind = identify(conn)
        if kind == "foreign" or (kind == "empty" and not create):
            raise foreign(path, conn)
        return kind
    finally:
        conn.close()


def foreign(path: Path, conn: sqlite3.Connection) -> MetadataError:
    """The error for a database that is not an aioflow store's (left as it was found)."""
    tables = sorted(
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    )
    holds = f"it holds the tables {', '.join(tables)}" if tables else "it is empty"
    return MetadataError(
        f"{path} is not an aioflow store's database ({holds}); aioflow leaves it untouched. "
        "Point --root (or AIOFLOW_ROOT) at an aioflow store's folder.",
        path,
    )


def damaged(path: Path, exc: sqlite3.Error) -> MetadataError:
    """The error for a database SQLite cannot use: one line naming the file and what to do."""
    return MetadataError(
        f"Cannot use the metadata database {path}: {exc}. Is it an aioflow store's, undamaged "
        "and writable (a store from an older aioflow is upgraded on open)?",
        path,
    )
