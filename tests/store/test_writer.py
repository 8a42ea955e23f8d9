"""Tests of aioflow.store.writer: batched metadata commits and the cache of unflushed blobs."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from anyio.lowlevel import checkpoint

from aioflow.store import Store, writer
from aioflow.store.metadata import TASK_COLUMNS
from aioflow.store.serde import decode, encode, pack
from aioflow.store.writer import BatchWriter


def task_row(run_id: int, task_id: int, status: str, attempt: int = 0) -> tuple[Any, ...]:
    values = {"run_id": run_id, "task_id": task_id, "attempt": attempt, "step": "start",
              "status": status, "started_at": 1.0, "manifest": pack({})}  # fmt: skip
    return tuple(values.get(c.strip()) for c in TASK_COLUMNS.split(","))


class Spy:
    """Wraps MetadataDB.write_batch: records every batch, optionally holds it until released."""

    def __init__(self, store: Store) -> None:
        self.real = store.db.write_batch
        self.batches: list[tuple[list[Any], list[Any], list[Any]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        store.db.write_batch = self  # type: ignore[method-assign]

    def __call__(self, tasks: Any, blobs: Any, runs: Any = ()) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.batches.append((list(tasks), list(blobs), list(runs)))
            self.entered.set()
            self.release.wait()
            self.real(tasks, blobs, runs)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store")
    yield s
    s.close()


def new_run(store: Store) -> int:
    return store.db.create_run(
        "F", user="u", tags=[], system_tags=[], graph=pack({}), origin_run_id=None
    )


async def test_blobs_are_readable_before_they_are_flushed(store: Store) -> None:
    w = BatchWriter(store)
    encoded = encode({"value": list(range(30))})  # stored (over an identity key's 29 bytes)
    w.put_blob(encoded.key, encoded.tobytes())
    assert store.db.get_blob(encoded.key) is None
    assert w.cached_blob(encoded.key) == encoded.tobytes()
    tag, payload = w.read_blob(encoded.key)
    assert decode(tag, payload) == {"value": list(range(30))}
    with pytest.raises(KeyError):
        store.read_blob(encoded.key)
    await w.flush()
    assert store.db.get_blob(encoded.key) == encoded.tobytes()
    assert store.load(encoded.key) == {"value": list(range(30))}
    assert w.cached_blob(encoded.key) == encoded.tobytes()  # under the limit: still cached


async def test_rows_of_one_attempt_coalesce_into_one_batch(store: Store) -> None:
    run_id = new_run(store)
    spy = Spy(store)
    w = BatchWriter(store)
    w.put_task(task_row(run_id, 1, "running"))
    w.put_task(task_row(run_id, 2, "running"))
    w.put_task(task_row(run_id, 1, "succeeded"))
    w.put_task(task_row(run_id, 1, "failed", attempt=1))
    w.put_blob("k1", b"Mone")
    w.put_blob("k1", b"Mone")
    w.put_blob("k2", b"Mtwo")
    w.update_run(run_id, status="succeeded")
    w.update_run(run_id, finished_at=5.0)
    await w.flush()
    assert len(spy.batches) == 1
    tasks, blobs, runs = spy.batches[0]
    assert sorted((r[1], r[2], r[4]) for r in tasks) == [
        (1, 0, "succeeded"),
        (1, 1, "failed"),
        (2, 0, "running"),
    ]
    assert blobs == [("k1", b"Mone"), ("k2", b"Mtwo")]
    assert runs == [(run_id, {"status": "succeeded"}), (run_id, {"finished_at": 5.0})]
    rows = store.db.task_attempts(run_id)
    assert [(r[1], r[2], r[4]) for r in rows] == [
        (1, 0, "succeeded"),
        (1, 1, "failed"),
        (2, 0, "running"),
    ]
    row = store.db.run("F", run_id)
    assert row is not None and (row.status, row.finished_at) == ("succeeded", 5.0)
    await w.flush()  # nothing queued: no empty transaction
    assert len(spy.batches) == 1


async def test_later_row_of_an_attempt_wins_across_batches(store: Store) -> None:
    run_id = new_run(store)
    w = BatchWriter(store)
    w.put_task(task_row(run_id, 1, "running"))
    await w.flush()
    assert [r[4] for r in store.db.task_attempts(run_id)] == ["running"]
    w.put_task(task_row(run_id, 1, "succeeded"))
    await w.flush()
    assert [r[4] for r in store.db.task_attempts(run_id)] == ["succeeded"]


async def test_cache_drops_flushed_blobs_above_its_limit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "CACHE_LIMIT", 10)
    w = BatchWriter(store)
    encoded = encode("x" * 100)
    w.put_blob(encoded.key, encoded.tobytes())
    assert w.cached_blob(encoded.key) is not None  # readable until it is committed
    await w.flush()
    assert w.cached_blob(encoded.key) is None
    assert decode(*w.read_blob(encoded.key)) == "x" * 100  # now read from the store
    assert w._cache_size == 0


def test_the_cache_counts_the_memory_its_blobs_take(store: Store) -> None:
    w = BatchWriter(store)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):  # the smallest stored blobs (32 bytes): mostly object overhead
            encoded = encode(f"{n:030d}")
            w.remember_blob(encoded.key, encoded.tobytes())
        del encoded
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.8 * taken <= w._cache_size <= 1.25 * taken, (w._cache_size, taken)


async def test_run_flushes_whenever_something_is_queued(store: Store) -> None:
    run_id = new_run(store)
    spy = Spy(store)
    w = BatchWriter(store)
    errors: list[BaseException] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run, errors.append)
        await anyio.wait_all_tasks_blocked()
        assert spy.batches == []  # nothing queued, nothing committed
        w.put_task(task_row(run_id, 1, "running"))
        w.put_blob("k", b"Mv")
        await anyio.wait_all_tasks_blocked()
        await anyio.to_thread.run_sync(spy.entered.wait)
        spy.entered.clear()
        w.update_run(run_id, status="succeeded")
        await anyio.to_thread.run_sync(spy.entered.wait)
        w.close()
    assert errors == [] and w.error is None
    assert [r[4] for r in store.db.task_attempts(run_id)] == ["running"]
    assert store.db.get_blob("k") == b"Mv"
    row = store.db.run("F", run_id)
    assert row is not None and row.status == "succeeded"
    assert len(spy.batches) == 2


async def test_close_returns_after_the_current_flush(store: Store) -> None:
    run_id = new_run(store)
    spy = Spy(store)
    spy.release.clear()
    w = BatchWriter(store)
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run, lambda exc: None)
        w.put_task(task_row(run_id, 1, "running"))
        await anyio.to_thread.run_sync(spy.entered.wait)  # first commit under way
        w.put_task(task_row(run_id, 1, "succeeded"))
        w.close()
        spy.release.set()
    assert len(spy.batches) == 1
    assert [r[4] for r in store.db.task_attempts(run_id)] == ["running"]
    await w.flush()  # what was queued after close is committed by an explicit flush
    assert [r[4] for r in store.db.task_attempts(run_id)] == ["succeeded"]


async def test_a_full_batch_is_committed_without_waiting_for_the_interval(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FULL_BATCH rows queued during a commit are committed right after it, though the interval
    # between commits would not end for an hour; fewer wait out the interval.
    monkeypatch.setattr(writer, "COMMIT_INTERVAL", 3600.0)
    monkeypatch.setattr(writer, "FULL_BATCH", 3)
    run_id = new_run(store)
    spy = Spy(store)
    spy.release.clear()
    w = BatchWriter(store)
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run, lambda exc: None)
        w.put_task(task_row(run_id, 1, "running"))
        await anyio.to_thread.run_sync(spy.entered.wait)  # first commit under way
        spy.entered.clear()
        for task_id in (2, 3, 4):
            w.put_task(task_row(run_id, task_id, "running"))
        spy.release.set()
        # the second, at once (30 s: a bound for a regression, which would wait an hour)
        assert await anyio.to_thread.run_sync(spy.entered.wait, 30)
        spy.entered.clear()
        w.put_task(task_row(run_id, 5, "running"))
        await anyio.wait_all_tasks_blocked()
        assert [[r[1] for r in batch[0]] for batch in spy.batches] == [[1], [2, 3, 4]]
        assert w.backlog == 1  # one row waits out the interval
        w.close()
    await w.flush()
    assert [[r[1] for r in batch[0]] for batch in spy.batches][2:] == [[5]]


async def test_run_reports_a_failed_commit(store: Store) -> None:
    w = BatchWriter(store)
    errors: list[BaseException] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run, errors.append)
        await checkpoint()
        w.put_task((1, 2, 3))  # not a task row: the commit fails
    assert len(errors) == 1 and w.error is errors[0]


async def test_flushes_never_overlap(store: Store) -> None:
    run_id = new_run(store)
    spy = Spy(store)
    spy.release.clear()
    w = BatchWriter(store)
    async with anyio.create_task_group() as tg:
        w.put_task(task_row(run_id, 1, "running"))
        tg.start_soon(w.flush)
        await anyio.to_thread.run_sync(spy.entered.wait)
        w.put_task(task_row(run_id, 2, "running"))
        tg.start_soon(w.flush)
        await anyio.wait_all_tasks_blocked()
        assert len(spy.batches) == 1  # the second flush waits for the first commit
        spy.release.set()
    assert spy.max_active == 1
    assert [[r[1] for r in batch[0]] for batch in spy.batches] == [[1], [2]]


async def test_cancelled_flush_still_commits_what_it_took(store: Store) -> None:
    run_id = new_run(store)
    spy = Spy(store)
    spy.release.clear()
    w = BatchWriter(store)
    w.put_task(task_row(run_id, 1, "succeeded"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.flush)
        await anyio.to_thread.run_sync(spy.entered.wait)
        tg.cancel_scope.cancel()
        spy.release.set()
    assert [r[4] for r in store.db.task_attempts(run_id)] == ["succeeded"]


async def test_running_rows_are_pulled_when_a_batch_is_taken(store: Store) -> None:
    run_id = new_run(store)
    spy = Spy(store)
    w = BatchWriter(store)
    asked: list[int] = []

    def running_rows() -> list[tuple[Any, ...]]:
        asked.append(1)
        return [task_row(run_id, 1, "running"), task_row(run_id, 2, "running")]

    w.pull_running_rows_from(running_rows)
    w.put_task(task_row(run_id, 2, "succeeded"))  # queued before the batch is taken: it wins
    await w.flush()
    assert asked == [1]
    assert sorted((r[1], r[4]) for r in spy.batches[0][0]) == [(1, "running"), (2, "succeeded")]
    assert [(r[1], r[4]) for r in store.db.task_attempts(run_id)] == [
        (1, "running"),
        (2, "succeeded"),
    ]


async def test_commits_are_at_least_the_commit_interval_apart(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "COMMIT_INTERVAL", 3600.0)
    run_id = new_run(store)
    spy = Spy(store)
    w = BatchWriter(store)
    real_flush, flushed = w.flush, anyio.Event()

    async def flush() -> None:
        await real_flush()
        flushed.set()

    w.flush = flush  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run, lambda exc: None)
        w.put_task(task_row(run_id, 1, "running"))
        await flushed.wait()  # the first commit goes at once
        w.put_task(task_row(run_id, 1, "succeeded"))
        w.put_task(task_row(run_id, 2, "running"))
        await anyio.wait_all_tasks_blocked()
        assert len(spy.batches) == 1  # the next one waits for the interval...
        w.close()  # ...unless the writer closes: run() returns now, not in an hour
    assert len(spy.batches) == 1
    await w.flush()
    assert [(r[1], r[4]) for r in store.db.task_attempts(run_id)] == [
        (1, "succeeded"),
        (2, "running"),
    ]
