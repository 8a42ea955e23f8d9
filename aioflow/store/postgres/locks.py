"""Whether a run stored in PostgreSQL is alive: an advisory lock held by its scheduler's session.

A lock file cannot be seen from another machine, so each run's liveness is a session-level
advisory lock, keys (the store's lock class, the run id), held by the session of the store
object that created the run (`RunLocks`): taken in the transaction that inserts the run's row,
so no reader ever sees the run unlocked, and let go when the run ends (`release`) or the object
is closed. PostgreSQL drops a session's locks the moment the session ends, however its process
ends (killed, crashed); a machine that vanishes is dropped by TCP keepalives set on the session
(about a minute). A reader asks `pg_locks` (`HELD`), taking no lock itself, so two readers
never take each other for the run.

Why not a heartbeat: it needs a thread beating on time, and a staleness threshold that a loaded
or paused process can overrun (a live run read as dead) and that clock skew between machines
shifts. The lock has neither failure, and costs nothing per task.

The locking session is also the one batches are written through (`store.py`), so a lost
connection is noticed at the next commit: `session()` then connects again and takes the locks
of the object's open runs before anything is written. Between the loss and that commit, readers
may see those runs as abandoned.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ...exceptions import StoreError
from .connection import KEEPALIVE_COUNT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, connect, naming

#: SQL: true while some session holds the lock of (lock class, run key) in this database.
HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2)"
)


def run_key(run_id: int) -> int:
    """The second key of a run's lock: advisory keys are int4, so ids wrap (after 2**31 runs)."""
    return run_id & 0x7FFFFFFF


class RunLocks:
    """The session holding the locks of the runs one store object created; thread-safe."""

    def __init__(self, url: str, location: str, lock_class: int) -> None:
        self._url = url
        self._location = location
        self.lock_class = lock_class
        self._session: Any = None
        self._lock = threading.Lock()
        self._open: set[int] = set()

    @contextmanager
    def session(self) -> Iterator[Any]:
        """The live locking session, for this thread alone during the block: a new one when it
        was lost, which holds the open runs' locks again before it is handed out."""
        with self._lock:
            session = self._session
            if session is None or session.closed or session.broken:
                if session is not None:
                    session.close()
                self._session = None
                session = connect(self._url)
                try:
                    with naming(self._url, "setting up the run locks' session"):
                        # The server's side of keepalives: a vanished machine's session (and
                        # its runs' locks) is dropped in about a minute, not in two hours.
                        session.execute(
                            "SELECT set_config('tcp_keepalives_idle', %s, false), "
                            "set_config('tcp_keepalives_interval', %s, false), "
                            "set_config('tcp_keepalives_count', %s, false)",
                            (str(KEEPALIVE_IDLE), str(KEEPALIVE_INTERVAL), str(KEEPALIVE_COUNT)),
                        )
                        for run_id in sorted(self._open):
                            self.take(session, run_id)
                except BaseException:
                    session.close()
                    raise
                self._session = session
            yield session

    def take(self, session: Any, run_id: int) -> None:
        """Lock run `run_id` in `session` (inside `session()`); StoreError if another holds it."""
        row = session.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (self.lock_class, run_key(run_id))
        ).fetchone()
        if not row[0]:
            raise StoreError(
                f"The lock of run {run_id} in {self._location} is held by another session: was "
                "the run's id handed out twice?"
            )
        self._open.add(run_id)

    def untake(self, session: Any, run_id: int) -> None:
        """Undo `take` for a run whose row was rolled back (a session lock outlives its
        transaction)."""
        self._open.discard(run_id)
        if not (session.closed or session.broken):
            session.execute("SELECT pg_advisory_unlock(%s, %s)", (self.lock_class, run_key(run_id)))

    def release(self, run_id: int) -> None:
        """Let go of one run's lock (its end is committed)."""
        with self._lock:
            if run_id not in self._open:
                return
            self._open.discard(run_id)
            session = self._session
            if session is None or session.closed or session.broken:
                return  # the lock went with the session
            with naming(self._url, f"letting go of run {run_id}'s lock"):
                session.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", (self.lock_class, run_key(run_id))
                )

    def close(self) -> None:
        """Let go of every lock and close the session (a new one is made when next needed)."""
        with self._lock:
            session, self._session = self._session, None
            self._open.clear()
        if session is None:
            return
        if not (session.closed or session.broken):
            # The server lets go of a closed session's locks once its backend has exited, a
            # moment after the close: unlocked first, a reader right after reads them free.
            with suppress(Exception):
                session.execute("SELECT pg_advisory_unlock_all()")
        session.close()


__all__ = ["HELD", "RunLocks", "run_key"]
