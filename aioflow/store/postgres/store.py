"""The MetadataStore in PostgreSQL: runs, task attempts and small blobs, shared by every process
and machine that opens the same database.

The queries mirror `SqliteMetadataStore`'s (`metadata.py`), so the client reads the same
records with the same semantics; the schema and its migrations are in `schema.py`. Small blobs
live in the `blobs` table (bytea), so a tiny task costs no object-store round trip.

Whether a run is alive is an advisory lock held by the session of the object that created it
(`locks.py`); batches are written through that session, so a lost connection is noticed, and
the locks taken again, at the next commit.

Other reads and tag changes borrow a connection from a small pool of idle ones (one per thread
that uses the store at once), since a psycopg connection runs one statement at a time.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from typing import Any, cast

from ...exceptions import MetadataConnectionError, StoreError
from ..keys import identity_blob
from ..liveness import pid_gone, this_host
from ..protocols import RUN_UPDATE_FIELDS, CardRecord, RunRecord, TaskRecord
from ..serde import pack, unpack
from ..sqlite_schema import run_record
from .cards import cards_query, put_card
from .connection import check_url, connect, naming, redact
from .locks import HELD, RunLocks, run_key
from .schema import SCHEMA, ensure_schema, lock_class

#: The columns of a RunRecord (`user` is a reserved word in PostgreSQL: quoted).
_RUN_COLUMNS = ", ".join('"user"' if f == "user" else f for f in RunRecord._fields)
_TASK_COLUMNS = ", ".join(TaskRecord._fields)
_KEY = ("run_id", "task_id", "attempt")
_UPSERT_TASK = (
    f"INSERT INTO {SCHEMA}.tasks ({_TASK_COLUMNS}) VALUES "
    f"({', '.join(['%s'] * len(TaskRecord._fields))}) ON CONFLICT ({', '.join(_KEY)}) DO UPDATE "
    f"SET {', '.join(f'{c} = excluded.{c}' for c in TaskRecord._fields if c not in _KEY)}"
)
#: A blob stored again is left alone when its bytes are the same, and replaced when they
#: differ, which only a damaged row can (the key is the hash of the bytes), as in SQLite.
_UPSERT_BLOB = (
    f"INSERT INTO {SCHEMA}.blobs (key, data) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
    f"SET data = excluded.data WHERE {SCHEMA}.blobs.data <> excluded.data"
)
#: Times a batch is tried again after PostgreSQL broke a deadlock by aborting it.
_DEADLOCK_RETRIES = 5


class PostgresMetadataStore:
    """The MetadataStore in a PostgreSQL database; safe to share between threads.

    Opening checks (and creates or migrates, unless `create` is False) the `aioflow` schema;
    every error is a one-line StoreError naming the URL without its password.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        check_url(url)
        self._url = url
        self.location = redact(url)
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        conn = connect(url)
        try:
            ensure_schema(conn, url, create=create)
            #: The session holding the locks of the runs this object creates (and writing its
            #: batches).
            self._locks = RunLocks(url, self.location, lock_class(conn, url))
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)
        # A store dropped without close() (the client's cache of stores lets go of them that
        # way) closes its connections when collected, as SQLite's do, instead of leaving
        # psycopg to warn. The finalizer holds the parts, never the store itself.
        weakref.finalize(self, _close, self._idle, self._lock, self._locks, os.getpid())

    # -- connections --------------------------------------------------------------------------

    @contextmanager
    def _borrowed(self, doing: str) -> Iterator[Any]:
        """An idle connection for the block (a new one when none is idle), given back after."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        with naming(self._url, doing):
            if conn is None:
                conn = connect(self._url)
            try:
                yield conn
            finally:
                if conn.closed or conn.broken:
                    conn.close()
                else:
                    with self._lock:
                        self._idle.append(conn)

    def close(self) -> None:
        """Close every connection; the runs this object created read ended (their locks go
        with the session). It reconnects when used again."""
        _close(self._idle, self._lock, self._locks, os.getpid())

    def end_run(self, run_id: int) -> None:
        """Let go of one run's lock (its end is committed) and keep the connections open."""
        self._locks.release(run_id)

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
        """Insert a new running run, its id from the database's identity column (unique across
        every writer, never reused), locked by this object's session until its end."""
        for first in (True, False):
            with self._locks.session() as session:
                if first:
                    # A session idle for long may have been lost (a server restart): found by
                    # a ping, which is safe to retry, where a lost INSERT's commit is not.
                    try:
                        with naming(self._url, f"storing a new run of {flow}"):
                            session.execute("SELECT 1")
                    except MetadataConnectionError:
                        continue
                with naming(self._url, f"storing a new run of {flow}"):
                    return self._insert_run(session, flow, user, tags, system_tags, graph,
                                            origin_run_id, params)  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert_run(
        self,
        session: Any,
        flow: str,
        user: str,
        tags: Sequence[str],
        system_tags: Sequence[str],
        graph: bytes,
        origin_run_id: str | None,
        params: bytes | None,
    ) -> int:
        run_id: int | None = None
        try:
            with session.transaction():
                row = session.execute(
                    f'INSERT INTO {SCHEMA}.runs (flow, status, "user", created_at, '
                    "origin_run_id, tags, system_tags, graph, params, pid, host, run_lock) "
                    "VALUES (%s, 'running', %s, %s, %s, %s, %s, %s, %s, %s, %s, 1) "
                    "RETURNING run_id",
                    (flow, user, time.time(), origin_run_id, pack(list(tags)),
                     pack(list(system_tags)), graph, params, os.getpid(), this_host()),
                ).fetchone()  # fmt: skip
                run_id = int(row[0])
                # Locked before the row is committed: no reader ever sees the run unlocked.
                self._locks.take(session, run_id)
        except BaseException:
            if run_id is not None:  # a session lock outlives the rolled-back row: let it go
                self._locks.untake(session, run_id)
            raise
        return run_id

    def write_batch(
        self,
        tasks: Iterable[TaskRecord],
        blobs: Iterable[tuple[str, bytes]],
        run_updates: Sequence[tuple[int, Mapping[str, Any]]] = (),
    ) -> None:
        """Commit blobs, task rows and run updates in one transaction.

        Blobs go in by key order: two schedulers storing the same values (a flow's `name`)
        then wait for each other instead of deadlocking. A batch PostgreSQL aborts to break a
        deadlock anyway is tried again (it is all or nothing).
        """
        for _, fields in run_updates:  # their names become SQL: only known ones
            unknown = set(fields) - RUN_UPDATE_FIELDS
            if unknown:
                raise ValueError(f"Cannot update the run fields {sorted(unknown)}.")
        task_rows = [tuple(row) for row in tasks]
        for row in task_rows:
            if len(row) != len(TaskRecord._fields):
                raise ValueError(f"A task row has {len(row)} values, expected 15: {row!r:.200}")
        blob_rows = sorted((key, bytes(data)) for key, data in blobs)
        reconnected = False
        for attempt in range(_DEADLOCK_RETRIES + 1):
            with self._locks.session() as session:
                try:
                    with naming(self._url, "writing a batch of task rows"):
                        self._write(session, task_rows, blob_rows, run_updates)
                    return
                except MetadataConnectionError:
                    # The session was lost (found only now, by using it): once more on a new
                    # one, which takes the open runs' locks again. Writing a batch twice is
                    # harmless (every row is an upsert) if the lost one was in fact committed.
                    if reconnected:
                        raise
                    reconnected = True
                except StoreError as exc:
                    sqlstate = getattr(exc.__cause__, "sqlstate", None)
                    if sqlstate != "40P01" or attempt == _DEADLOCK_RETRIES:
                        raise

    @staticmethod
    def _write(
        session: Any,
        task_rows: list[tuple[Any, ...]],
        blob_rows: list[tuple[str, bytes]],
        run_updates: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        with session.transaction(), session.cursor() as cur:
            if blob_rows:
                cur.executemany(_UPSERT_BLOB, blob_rows)
            if task_rows:
                cur.executemany(_UPSERT_TASK, task_rows)
            for run_id, fields in run_updates:
                names = ", ".join(f"{name} = %s" for name in fields)
                cur.execute(
                    f"UPDATE {SCHEMA}.runs SET {names} WHERE run_id = %s",
                    (*fields.values(), run_id),
                )

    def update_run_tags(
        self, flow: str, run_id: int, mutate: Callable[[list[str], list[str]], list[str]]
    ) -> list[str] | None:
        """Set a run's user tags to `mutate(user_tags, system_tags)`, atomically: the row is
        locked (FOR UPDATE) from the read to the write, so concurrent changes from any machine
        apply one after the other and none is lost. `mutate` may raise to change nothing."""
        with self._borrowed(f"changing the tags of run {run_id}") as conn, conn.transaction():
            row = conn.execute(
                f"SELECT tags, system_tags FROM {SCHEMA}.runs WHERE flow = %s AND "
                "run_id = %s FOR UPDATE",
                (flow, run_id),
            ).fetchone()
            if row is None:
                return None
            user = unpack(row[0]) if row[0] else []
            system = unpack(row[1]) if row[1] else []
            new = mutate(list(user), list(system))
            if new != user:
                conn.execute(
                    f"UPDATE {SCHEMA}.runs SET tags = %s WHERE flow = %s AND run_id = %s",
                    (pack(new), flow, run_id),
                )
        return new

    # -- deleting (`aioflow runs delete`, `aioflow gc`: see `store/gc.py`) ---------------------

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Delete these runs' rows and task attempts in one transaction; how many runs went."""
        ids = sorted(set(run_ids))
        with self._borrowed("deleting runs") as conn, conn.transaction():
            conn.execute(f"DELETE FROM {SCHEMA}.cards WHERE run_id = ANY(%s)", (ids,))
            conn.execute(f"DELETE FROM {SCHEMA}.tasks WHERE run_id = ANY(%s)", (ids,))
            cur = conn.execute(f"DELETE FROM {SCHEMA}.runs WHERE run_id = ANY(%s)", (ids,))
            return int(cur.rowcount)

    def sweep_blobs(self, referenced: Callable[[], AbstractSet[str]]) -> tuple[int, int]:
        """Delete the small blobs not in `referenced()`, writers held off until the commit.

        The sweep's transaction locks the three tables against writes (SHARE ROW EXCLUSIVE,
        in the order batches write them, so no batch deadlocks with it); `referenced` reads
        through other connections of this object, which plain reads never block, and sees
        every batch committed before the lock, while every later one waits for the sweep.
        """
        with self._borrowed("sweeping blobs") as conn, conn.transaction():
            conn.execute(
                f"LOCK TABLE {SCHEMA}.blobs, {SCHEMA}.tasks, {SCHEMA}.runs "
                "IN SHARE ROW EXCLUSIVE MODE"
            )
            keep = referenced()
            rows = conn.execute(f"SELECT key, octet_length(data) FROM {SCHEMA}.blobs").fetchall()
            gone = [(key, size) for key, size in rows if key not in keep]
            conn.execute(
                f"DELETE FROM {SCHEMA}.blobs WHERE key = ANY(%s)", ([key for key, _ in gone],)
            )
        return len(gone), sum(size for _, size in gone)

    def compact(self) -> None:
        """VACUUM the tables: the space of deleted rows is reused by the next writes
        (autovacuum would do it too, later); PostgreSQL gives the files back no smaller."""
        with self._borrowed("vacuuming the store") as conn:
            for table in ("runs", "tasks", "blobs"):
                conn.execute(f"VACUUM {SCHEMA}.{table}")

    # -- reads --------------------------------------------------------------------------------

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._borrowed("reading the store") as conn:
                return cast(list[tuple[Any, ...]], conn.execute(sql, args).fetchall())
        except MetadataConnectionError:
            # An idle connection may have died meanwhile (a server restart): once more on a
            # new one, which fails for good if the server is really gone.
            with self._borrowed("reading the store") as conn:
                return cast(list[tuple[Any, ...]], conn.execute(sql, args).fetchall())

    def _one(self, sql: str, args: Sequence[Any]) -> Any:
        rows = self._rows(sql, args)
        return rows[0][0] if rows else None

    def _runs(self, where: str, args: Sequence[Any]) -> list[RunRecord]:
        rows = self._rows(f"SELECT {_RUN_COLUMNS} FROM {SCHEMA}.runs {where}", args)
        # run_record unpacks and checks the tags; its cursor argument is unused.
        return [run_record(cast(Any, None), row) for row in rows]

    def _tasks(self, where: str, args: Sequence[Any]) -> list[TaskRecord]:
        sql = f"SELECT {_TASK_COLUMNS} FROM {SCHEMA}.tasks {where} ORDER BY task_id, attempt"
        return [TaskRecord._make(row) for row in self._rows(sql, args)]

    def get_blob(self, key: str) -> bytes | None:
        """A small blob's bytes, or None when it is not in the database.
        An identity key's blob is its key's (it is never in the database)."""
        blob = identity_blob(key)
        if blob is not None:
            return blob
        data = self._one(f"SELECT data FROM {SCHEMA}.blobs WHERE key = %s", (key,))
        return None if data is None else bytes(data)

    def blob_size(self, key: str) -> int | None:
        """A small blob's length, or None when it is not in the database."""
        blob = identity_blob(key)  # (its key holds it)
        if blob is not None:
            return len(blob)
        size: int | None = self._one(
            f"SELECT octet_length(data) FROM {SCHEMA}.blobs WHERE key = %s", (key,)
        )
        return size

    def flows(self) -> list[str]:
        """Names of every flow with at least one run, sorted."""
        # By code point, as SQLite and Python sort: the database's collation may fold case.
        sql = f'SELECT DISTINCT flow COLLATE "C" FROM {SCHEMA}.runs ORDER BY 1'
        return [r[0] for r in self._rows(sql)]

    def run(self, flow: str, run_id: int) -> RunRecord | None:
        """One run of a flow, or None."""
        rows = self._runs("WHERE flow = %s AND run_id = %s", (flow, run_id))
        return rows[0] if rows else None

    def run_page(
        self, flow: str | None, *, before: int | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Up to `limit` runs of a flow (of every flow when None), newest first; `before`
        pages on to smaller ids."""
        where: list[str] = []
        args: list[Any] = []
        if flow is not None:
            where.append("flow = %s")
            args.append(flow)
        if before is not None:
            where.append("run_id < %s")
            args.append(before)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self._runs(f"{clause}ORDER BY run_id DESC LIMIT %s", (*args, limit))

    def latest_run_id(self, flow: str, *, resumed: bool | None = None) -> int | None:
        """The newest run id of a flow (only resumes, or none of them, if asked), or None."""
        sql = f"SELECT max(run_id) FROM {SCHEMA}.runs WHERE flow = %s"
        if resumed is not None:
            sql += " AND origin_run_id IS NOT NULL" if resumed else " AND origin_run_id IS NULL"
        run_id: int | None = self._one(sql, (flow,))
        return run_id

    def first_run_time(self, flow: str) -> float | None:
        """When the flow's first stored run started, or None."""
        created: float | None = self._one(
            f"SELECT min(created_at) FROM {SCHEMA}.runs WHERE flow = %s", (flow,)
        )
        return created

    def run_graph(self, run_id: int) -> bytes | None:
        """The packed graph description stored with a run."""
        graph: bytes | None = self._one(
            f"SELECT graph FROM {SCHEMA}.runs WHERE run_id = %s", (run_id,)
        )
        return graph

    def run_params(self, run_id: int) -> bytes | None:
        """The packed manifest every task of the run starts from."""
        params: bytes | None = self._one(
            f"SELECT params FROM {SCHEMA}.runs WHERE run_id = %s", (run_id,)
        )
        return params

    def process_gone(self, run: RunRecord) -> bool:
        """True when `run` reads running but no session holds its lock (its scheduler died or
        lost the database), from any machine; runs stored without a lock go by their pid on
        their own host."""
        if run.status != "running":
            return False
        if run.run_lock is None:
            return run.host == this_host() and run.pid is not None and pid_gone(run.pid)
        held = self._one(HELD, (self._locks.lock_class, run_key(run.run_id)))
        if held:
            return False
        # The lock is let go once the run's end is committed: it may have ended since.
        now = self._one(f"SELECT status FROM {SCHEMA}.runs WHERE run_id = %s", (run.run_id,))
        return bool(now == "running")

    def task_attempts(
        self, run_id: int, step: str | None = None, task_id: int | None = None
    ) -> list[TaskRecord]:
        """Attempts of a run's tasks (of one step, of one task), by task id then attempt."""
        where = "WHERE run_id = %s"
        args: list[Any] = [run_id]
        if step is not None:
            where += " AND step = %s"
            args.append(step)
        if task_id is not None:
            where += " AND task_id = %s"
            args.append(task_id)
        return self._tasks(where, args)

    def task_attempts_by_id(self, run_id: int, task_ids: Sequence[int]) -> list[TaskRecord]:
        """Every attempt of the given tasks of a run, by task id then attempt."""
        ids = sorted(set(task_ids))
        return self._tasks("WHERE run_id = %s AND task_id = ANY(%s)", (run_id, ids))

    def steps(self, run_id: int) -> list[tuple[str, float | None]]:
        """(step name, first start time) of every step with a task in the run, in the order
        their first tasks were created."""
        rows = self._rows(
            f"SELECT step, min(started_at) FROM {SCHEMA}.tasks WHERE run_id = %s GROUP BY step "
            "ORDER BY min(task_id)",
            (run_id,),
        )
        return [(r[0], r[1]) for r in rows]

    # -- cards (@card) -------------------------------------------------------------------------

    def put_card(self, card: CardRecord) -> None:
        """Store a card's record, replacing the one at its run, task, attempt and position."""
        with self._borrowed(f"storing a card of task {card.task_id}") as conn:
            put_card(conn, card)

    def cards(self, run_id: int, task_id: int | None = None) -> list[CardRecord]:
        """The cards of a run's tasks (of one task), by task id, attempt and position."""
        args = (run_id,) if task_id is None else (run_id, task_id)
        return [CardRecord._make(row) for row in self._rows(cards_query(task_id), args)]


def _close(idle: list[Any], lock: threading.Lock, locks: RunLocks, pid: int) -> None:
    """Close a store's connections: its run locks' session and its idle ones (emptying the
    list in place, which the store keeps using)."""
    if os.getpid() != pid:
        return  # a forked child's copies: closing them would end the parent's sessions
    locks.close()
    with lock:
        conns = idle[:]
        idle.clear()
    for conn in conns:
        conn.close()


def open_postgres_metadata(url: str, *, create: bool = True) -> PostgresMetadataStore:
    """The metadata store in the PostgreSQL database at `url` (postgresql://user:pw@host/db).

    The database must be empty or an aioflow store's; its `aioflow` schema is created or
    migrated on open (unless `create` is False: then an empty database is a StoreError).
    """
    return PostgresMetadataStore(url, create=create)


__all__ = ["PostgresMetadataStore", "open_postgres_metadata"]
