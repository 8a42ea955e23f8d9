"""One idle connection to each SQLite store used on an event loop, so a run's end stays cheap,
and one `Store` per folder that the loop's runs share.

SQLite checkpoints the write-ahead log when the last connection to a database closes, which
costs 10-20 ms (an fsync). One idle connection per store and loop keeps that from happening at
the end of every run: the log is checkpointed in the background of commits instead (SQLite's
autocheckpoint), in the writer's thread. The keeper lives in an anyio `RunVar`, so it goes away
with its loop. Measured before it was added (`benchmarks/embedding.py`).

Runs in one folder share one Store (`run_store`): its connections are one per worker thread,
not one per thread and run, which a thousand concurrent runs would pay hundreds of megabytes
for. A run's end lets go of that run's lock only (`end_run`); the loop's end closes the store.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from anyio.lowlevel import RunVar

from . import Store
from .metadata import SqliteMetadataStore

#: At most this many idle connections are held per loop, the stores used last: a service that
#: runs flows in ever new folders keeps a bounded number of files open.
MAX_IDLE_CONNECTIONS = 8


class StoreKeeper:
    """One idle connection per SQLite database (of the last few used), while the loop runs."""

    def __init__(self) -> None:
        self._held: dict[Path, sqlite3.Connection] = {}
        self._stores: dict[Path, Store] = {}
        self._users: dict[Path, int] = {}  # runs using each shared store now
        self._lock = threading.Lock()

    def hold(self, store: Store) -> None:
        """Keep a connection to `store`'s database open (any thread; cheap once held).

        A store whose metadata is not in SQLite needs nothing held.
        """
        metadata = store.metadata
        if not isinstance(metadata, SqliteMetadataStore) or metadata.path in self._held:
            return
        conn = metadata.idle_connection()
        with self._lock:
            if metadata.path in self._held:
                conn.close()
                return
            self._held[metadata.path] = conn
            oldest = next(iter(self._held))
            if len(self._held) > MAX_IDLE_CONNECTIONS:
                self._held.pop(oldest).close()  # its next run pays one checkpoint: fine

    def run_store(self, folder: Path) -> Store:
        """The Store the loop's runs in `folder` share, created on first use (any thread).

        Each call counts one more run using it until its `end_run`.
        """
        with self._lock:
            store = self._stores.get(folder)
            if store is not None:
                self._users[folder] += 1
                return store
        made = Store(folder, create=True)
        with self._lock:
            store = self._stores.setdefault(folder, made)
            self._users[folder] = self._users.get(folder, 0) + 1
        if store is not made:
            made.close()
        self.hold(store)
        return store

    def shares(self, store: Store) -> bool:
        """True for a store from `run_store`."""
        return store.root is not None and self._stores.get(store.root) is store

    def end_run(self, store: Store, run_id: int | None) -> None:
        """A run in a shared store is over (`run_id` None: it was never stored): let go of its
        lock; the last run using the store closes its connections (the store reopens them for
        the next), so a loop that lives on holds none for runs that ended."""
        assert store.root is not None
        # SQLite and PostgreSQL let go of one run's lock (a store folder may hold its metadata
        # in either, `store/open.py`); a backend without run locks has nothing to let go of.
        end_run = getattr(store.metadata, "end_run", None)
        if run_id is not None and end_run is not None:
            end_run(run_id)
        with self._lock:
            self._users[store.root] -= 1
            if self._users[store.root] == 0:
                store.close()

    def close(self) -> None:
        """Close every store and idle connection held (any thread; the loop's runs are over):
        for a loop that ends with its process, so that nothing is left for the exit to close.
        A later run on the loop opens them again."""
        with self._lock:
            stores, self._stores, self._users = list(self._stores.values()), {}, {}
            held, self._held = list(self._held.values()), {}
        for store in stores:
            store.close()
        for conn in held:
            conn.close()  # the last connection: SQLite checkpoints the log into the file

    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
        # (bound early: at the interpreter's exit, module globals may already be None)
        if _finalizing():
            return  # the process is ending: its connections and locks go with it
        self.close()


_keeper: RunVar[StoreKeeper] = RunVar("aioflow_store_keeper")


def store_keeper() -> StoreKeeper:
    """The running event loop's StoreKeeper (call on the loop's thread)."""
    try:
        return _keeper.get()
    except LookupError:
        keeper = StoreKeeper()
        _keeper.set(keeper)
        return keeper


__all__ = ["MAX_IDLE_CONNECTIONS", "StoreKeeper", "store_keeper"]
