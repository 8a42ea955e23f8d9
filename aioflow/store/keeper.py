"""One idle connection to each SQLite store used on an event loop, so a run's end stays cheap.

SQLite checkpoints the write-ahead log when the last connection to a database closes, which
costs 10-20 ms (an fsync). One idle connection per store and loop keeps that from happening at
the end of every run: the log is checkpointed in the background of commits instead (SQLite's
autocheckpoint), in the writer's thread. The keeper lives in an anyio `RunVar`, so it goes away
with its loop. Measured before it was added (`benchmarks/embedding.py`).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from anyio.lowlevel import RunVar

from . import Store
from .metadata import SqliteMetadataStore


class StoreKeeper:
    """One idle connection per SQLite database, held for as long as the event loop runs."""

    def __init__(self) -> None:
        self._held: dict[Path, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    def holds(self, root: Path) -> bool:
        """True when a store at `root` was opened on this loop (its database exists)."""
        return root / "metadata.db" in self._held

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
            else:
                self._held[metadata.path] = conn

    def __del__(self) -> None:
        for conn in self._held.values():
            conn.close()


_keeper: RunVar[StoreKeeper] = RunVar("aioflow_store_keeper")


def store_keeper() -> StoreKeeper:
    """The running event loop's StoreKeeper (call on the loop's thread)."""
    try:
        return _keeper.get()
    except LookupError:
        keeper = StoreKeeper()
        _keeper.set(keeper)
        return keeper


__all__ = ["StoreKeeper", "store_keeper"]
