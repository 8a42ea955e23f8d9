"""Batched, off-loop metadata writes for one run, and the run's cache of unflushed small blobs.

Tasks finish far faster than SQLite can commit one transaction each, and a commit must not run
on the event loop. The runtime hands rows and small blobs to `BatchWriter`, which coalesces them
(a task's start and finish rows collapse into one) and commits them in a worker thread, one
transaction per batch, while the next batch accumulates. Commits are at least `COMMIT_INTERVAL`
apart (a group commit): a wide foreach then commits a few large batches rather than a hundred
small ones, whose fixed costs (a transaction, a thread handoff, B-tree pages rewritten) would
otherwise cost more than the rows. Rows that only say a task is running are pulled from
the runtime when a batch is taken, so a task that finishes before the next commit never
costs one. Blobs are readable from the writer's cache from the moment they are handed over,
so a child task never waits for its parent's commit. A blob whose key is an identity key
(`keys.py`) is neither queued nor cached: its key holds it.

A commit that fails because the disk is full (`is_full`) loses nothing: the batch goes back to
the queue, and the writer tries again, `FULL_RETRY_FIRST` seconds later and then less often,
until space returns; the run meanwhile goes on in memory, and its end is committed once space
returns. Any other failed commit fails the run.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from ..exceptions import StoreFull
from . import Store
from .keys import is_identity
from .metadata import TaskRow
from .serde import Buffer

#: Unflushed-and-flushed small blobs kept for reads during the run, in bytes of memory.
CACHE_LIMIT = 64 * 1024 * 1024
#: What a cached blob costs beyond its key's and its data's lengths: the str and bytes object
#: headers (49 + 33 bytes) and its slot in the cache's dict (about 40 when amortized). Small
#: blobs are mostly overhead: counting payload alone, the limit held about 28 times its size.
ENTRY_OVERHEAD = 122
#: Seconds the writer waits after a commit before it starts the next (unless it is closing).
COMMIT_INTERVAL = 0.01
#: Rows and small blobs queued at the end of a commit from which the next one starts at once:
#: a batch that large spreads a commit's fixed costs thin already, and waiting costs memory.
#: Async steps that never await keep the event loop busy for milliseconds a turn, a commit's
#: round trip takes several turns, and a 10,000-wide foreach queued 5,000 rows (~500 bytes
#: each) while the writer waited out its interval.
FULL_BATCH = 1024
#: Seconds before the first retry of a commit that found the disk full, and the longest wait
#: between retries (each wait doubles the last).
FULL_RETRY_FIRST = 0.05
FULL_RETRY_MAX = 2.0

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # the result code; `sqlite3.SQLITE_FULL` exists from Python 3.11 on


def is_full(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, says the disk or quota is full.

    SQLite says so with SQLITE_FULL (or a write that failed with ENOSPC), files with ENOSPC or
    EDQUOT; a backend that tells itself (PostgreSQL's disk_full) raises StoreFull.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes, never a cycle
        if seen is None:
            return False
        if isinstance(seen, StoreFull):
            return True
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return True
        if isinstance(seen, sqlite3.Error) and (
            getattr(seen, "sqlite_errorcode", None) == _SQLITE_FULL
            or "database or disk is full" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class BatchWriter:
    """Queues rows for one store and commits them in batches from a worker thread."""

    def __init__(self, store: Store, *, limiter: anyio.CapacityLimiter | None = None) -> None:
        """`limiter`: the worker threads commits may use (anyio's default when None)."""
        self.store = store
        self._threads = limiter
        self._tasks: dict[tuple[int, int, int], TaskRow] = {}
        self._blobs: dict[str, bytes] = {}
        self._runs: list[tuple[int, dict[str, Any]]] = []
        self._in_flight: dict[str, bytes] = {}
        self._cache: dict[str, bytes] = {}
        self._cache_size = 0
        self._wakeup = anyio.Event()
        self._woken = False  # _wakeup is set (checked first: a plain flag costs less)
        self._closing = anyio.Event()
        self._cut = anyio.Event()  # ends the wait between two commits (`close`, `hurry`)
        self._limiter = anyio.CapacityLimiter(1)
        self.error: BaseException | None = None
        self._running_rows: Callable[[], list[TaskRow]] | None = None
        #: called on the loop when a commit takes the queue (the scheduler starts the tasks it
        #: held back while the queue was long: their rows go to the next commit)
        self.on_taken: Callable[[], None] = lambda: None

    # -- called on the event loop, cheap ----------------------------------------------------

    @property
    def backlog(self) -> int:
        """Task rows and small blobs queued that no commit has taken yet."""
        return len(self._tasks) + len(self._blobs)

    def pull_running_rows_from(self, source: Callable[[], list[TaskRow]] | None) -> None:
        """Call `source` (on the loop) whenever a batch is taken, for the rows of tasks running
        at that moment that were not stored yet (see `wake()`); None stops it."""
        self._running_rows = source

    def put_task(self, row: TaskRow) -> None:
        """Queue a task row (replaces a queued row of the same attempt)."""
        self._tasks[(row[0], row[1], row[2])] = row
        self.wake()

    def wake(self) -> None:
        """Make sure a commit follows soon, e.g. to store the rows of tasks that started."""
        if not self._woken:
            self._woken = True
            self._wakeup.set()

    def put_blob(self, key: str, data: bytes) -> None:
        """Queue a small blob and make it readable at once (one with an identity key is
        stored nowhere, and readable from its key: nothing to do)."""
        if key not in self._cache and not is_identity(key):
            self._cache[key] = data
            self._cache_size += len(key) + len(data) + ENTRY_OVERHEAD
            self._blobs[key] = data
            self.wake()

    def remember_blob(self, key: str, data: bytes) -> None:
        """Cache a small blob that is stored already, so tasks read it without a query."""
        if key not in self._cache and not is_identity(key):
            self._cache[key] = data
            self._cache_size += len(key) + len(data) + ENTRY_OVERHEAD

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Queue an update of the run's row."""
        self._runs.append((run_id, fields))
        self.wake()

    def cached_blob(self, key: str) -> bytes | None:
        """A small blob handed to this writer, if it is still cached (any thread)."""
        return self._cache.get(key)

    def unflushed_blob(self, key: str) -> bytes | None:
        """A small blob not yet committed (other processes cannot read it from the store)."""
        data = self._blobs.get(key)
        return data if data is not None else self._in_flight.get(key)

    def read_blob(self, key: str) -> tuple[int, Buffer]:
        """(tag, payload) of a blob: from the cache, else from the store (which reads an
        identity key's from the key)."""
        data = self._cache.get(key)
        if data is not None:
            return data[0], memoryview(data)[1:]
        return self.store.read_blob(key)

    # -- the flushing side ------------------------------------------------------------------

    def _take(self) -> tuple[list[TaskRow], list[tuple[str, bytes]], list[Any]]:
        if self._running_rows is not None:
            for row in self._running_rows():
                self._tasks.setdefault((row[0], row[1], row[2]), row)
        tasks, self._tasks = list(self._tasks.values()), {}
        blobs, self._blobs = list(self._blobs.items()), {}
        runs, self._runs = self._runs, []
        return tasks, blobs, runs

    def _put_back(
        self, tasks: list[TaskRow], blobs: list[tuple[str, bytes]], runs: list[Any]
    ) -> None:
        """Queue a batch that could not be committed again, behind nothing newer."""
        for row in tasks:  # a row queued since is the newer one: it stays
            self._tasks.setdefault((row[0], row[1], row[2]), row)
        for key, data in blobs:
            self._blobs.setdefault(key, data)
        self._runs[:0] = runs  # run updates apply in order: the older ones first

    async def flush(self) -> None:
        """Commit everything queued so far (waits for a commit already under way).

        While the disk is full, keeps the batch and tries again until it is committed (see the
        module's doc); cancelled meanwhile, the batch stays queued.
        """
        delay = FULL_RETRY_FIRST
        while not await self._commit():
            await anyio.sleep(delay)
            delay = min(delay * 2, FULL_RETRY_MAX)

    async def _commit(self) -> bool:
        """One commit of everything queued; False when the disk was full (the batch is kept)."""
        async with self._limiter:
            tasks, blobs, runs = self._take()
            if not (tasks or blobs or runs):
                return True
            self.on_taken()
            self._in_flight = dict(blobs)
            # Shielded: the rows are out of the queue now, and a cancellation arriving before
            # the worker thread starts would otherwise drop them (e.g. a task's final row).
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(
                        self.store.metadata.write_batch, tasks, blobs, runs, limiter=self._threads
                    )
                except Exception as exc:
                    if not is_full(exc):
                        raise
                    self._put_back(tasks, blobs, runs)
                    return False
                finally:
                    self._in_flight = {}
            if self._cache_size > CACHE_LIMIT:
                for key, data in blobs:
                    if self._cache.pop(key, None) is not None:
                        self._cache_size -= len(key) + len(data) + ENTRY_OVERHEAD
            return True

    async def run(self, on_error: Callable[[BaseException], None]) -> None:
        """Flush when something is queued, at most every `COMMIT_INTERVAL` (at once while
        `FULL_BATCH` rows wait), until `close()`; report a failed commit."""
        while not self._closing.is_set():
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            self._woken = False
            self._cut = anyio.Event()  # (before the commit: a `hurry` during it counts)
            try:
                await self.flush()
            except Exception as exc:
                self.error = exc
                on_error(exc)
                return
            if self._closing.is_set():
                return
            if self.backlog >= FULL_BATCH:
                continue
            with anyio.move_on_after(COMMIT_INTERVAL):
                await self._cut.wait()

    def hurry(self) -> None:
        """Commit what is queued without waiting for the rest of `COMMIT_INTERVAL` (the
        scheduler holds tasks back until it is committed)."""
        self._cut.set()
        self.wake()

    def close(self) -> None:
        """Let `run()` return after its current flush (what is still queued is left to a last
        `flush()` by the owner)."""
        self._closing.set()
        self._cut.set()
        self._woken = True
        self._wakeup.set()  # even if a flag says it is set: run() must see the close now


__all__ = [
    "CACHE_LIMIT",
    "COMMIT_INTERVAL",
    "ENTRY_OVERHEAD",
    "FULL_BATCH",
    "FULL_RETRY_FIRST",
    "FULL_RETRY_MAX",
    "BatchWriter",
    "is_full",
]
