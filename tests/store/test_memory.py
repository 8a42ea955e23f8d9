"""The store protocols' contract, run on every backend (SQLite and files, and memory), and runs
in a memory store.

Whatever the runtime and the client rely on a MetadataStore or BlobStore for is asserted here
against each implementation, so the in-memory store the fast tests use answers as the real one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from aioflow import FlowSpec, step
from aioflow.api import run_flow
from aioflow.client import Flow
from aioflow.exceptions import (
    BlobCorrupted,
    BlobNotFound,
    MetadataError,
    ParameterError,
    StoreError,
)
from aioflow.store import (
    BlobStore,
    FileBlobStore,
    MemoryBlobStore,
    MemoryMetadataStore,
    MetadataStore,
    RunRecord,
    SqliteMetadataStore,
    Store,
    TaskRecord,
    sqlite_schema,
)
from aioflow.store.metadata import task_row, this_host
from aioflow.store.serde import encode, pack, unpack

# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "memory"])
def meta(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    store: MetadataStore
    if request.param == "sqlite":
        store = SqliteMetadataStore(tmp_path / "store" / "metadata.db")
    else:
        store = MemoryMetadataStore()
    yield store
    store.close()


@pytest.fixture(params=["files", "memory"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "files":
        return FileBlobStore(tmp_path / "blobs")
    return MemoryBlobStore()


@pytest.fixture(params=["folder", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / ".aioflow") if request.param == "folder" else Store.memory()
    yield s
    s.close()


def new_run(meta: MetadataStore, flow: str = "F", **kw: Any) -> int:
    args: dict[str, Any] = {
        "user": "tester",
        "tags": ["t1"],
        "system_tags": ["user:tester"],
        "graph": pack({"steps": {"start": {"next": ["end"]}}}),
        "origin_run_id": None,
        "params": pack({"alpha": "k" * 40}),
    }
    args.update(kw)
    return meta.create_run(flow, **args)


def attempt(run_id: int, task_id: int, attempt: int = 0, step: str = "start", **kw: Any):
    fields: dict[str, Any] = {"started_at": float(task_id), "finished_at": task_id + 0.5}
    fields.update(kw)
    status = fields.pop("status", "succeeded")
    return task_row(run_id, task_id, attempt, step, status, **fields)


# -- MetadataStore: runs ------------------------------------------------------------------------


def test_a_new_run_reads_back_as_created(meta: MetadataStore) -> None:
    run_id = new_run(meta, "MyFlow", origin_run_id="7")
    run = meta.run("MyFlow", run_id)
    assert isinstance(run, RunRecord)
    assert (run.run_id, run.flow, run.status, run.user) == (run_id, "MyFlow", "running", "tester")
    assert run.tags == ("t1",) and run.system_tags == ("user:tester",)
    assert run.origin_run_id == "7" and run.error is None
    assert run.created_at > 0 and run.finished_at is None
    assert run.host == this_host() and run.pid is not None
    assert meta.run("OtherFlow", run_id) is None  # a run belongs to its flow
    assert unpack(meta.run_graph(run_id) or b"") == {"steps": {"start": {"next": ["end"]}}}
    assert unpack(meta.run_params(run_id) or b"") == {"alpha": "k" * 40}
    assert meta.run_graph(run_id + 1) is None and meta.run_params(run_id + 1) is None


def test_run_ids_increase_and_are_unique_across_threads(meta: MetadataStore) -> None:
    first = [new_run(meta, flow) for flow in ("A", "B", "A")]
    assert first == sorted(first) and len(set(first)) == 3
    made: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        for _ in range(10):
            run_id = new_run(meta, "T")
            with lock:
                made.append(run_id)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 40 and min(made) > max(first)


def test_flows_pages_and_latest_runs(meta: MetadataStore) -> None:
    b1 = new_run(meta, "Beta")
    a1 = new_run(meta, "Alpha")
    b2 = new_run(meta, "Beta", origin_run_id=str(b1))
    b3 = new_run(meta, "Beta")
    assert meta.flows() == ["Alpha", "Beta"]
    assert [r.run_id for r in meta.run_page("Beta")] == [b3, b2, b1]
    assert [r.run_id for r in meta.run_page(None)] == [b3, b2, a1, b1]
    assert [r.run_id for r in meta.run_page("Beta", limit=2)] == [b3, b2]
    assert [r.run_id for r in meta.run_page("Beta", before=b2)] == [b1]
    assert meta.run_page("Gamma") == []
    assert meta.latest_run_id("Beta") == b3
    assert meta.latest_run_id("Beta", resumed=True) == b2
    assert meta.latest_run_id("Beta", resumed=False) == b3
    assert meta.latest_run_id("Alpha", resumed=True) is None
    assert meta.latest_run_id("Gamma") is None
    first = meta.first_run_time("Beta")
    assert first is not None and first == meta.run_page("Beta")[-1].created_at
    assert meta.first_run_time("Gamma") is None


def test_run_updates_set_status_end_and_error(meta: MetadataStore) -> None:
    run_id = new_run(meta)
    error = pack({"pathspec": None, "type": "E", "message": "m", "traceback": ""})
    meta.write_batch([], [], [(run_id, {"status": "failed", "finished_at": 9.0, "error": error})])
    run = meta.run("F", run_id)
    assert run is not None and (run.status, run.finished_at, run.error) == ("failed", 9.0, error)


def test_tag_updates_are_atomic_and_see_both_kinds(meta: MetadataStore) -> None:
    run_id = new_run(meta)
    seen: list[tuple[list[str], list[str]]] = []

    def add(tag: str):
        def mutate(user: list[str], system: list[str]) -> list[str]:
            seen.append((user, system))
            return [*user, tag]

        return mutate

    threads = [
        threading.Thread(target=meta.update_run_tags, args=("F", run_id, add(f"n{i}")))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run = meta.run("F", run_id)
    assert run is not None and sorted(run.tags) == [*(f"n{i}" for i in range(8)), "t1"]
    assert all(system == ["user:tester"] for _, system in seen)
    assert meta.update_run_tags("F", run_id + 1, add("x")) is None  # no such run
    assert meta.update_run_tags("G", run_id, add("x")) is None  # not that flow's


def test_a_tag_update_that_raises_changes_nothing(meta: MetadataStore) -> None:
    run_id = new_run(meta)

    def refuse(user: list[str], system: list[str]) -> list[str]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        meta.update_run_tags("F", run_id, refuse)
    run = meta.run("F", run_id)
    assert run is not None and run.tags == ("t1",)


# -- MetadataStore: liveness --------------------------------------------------------------------


def test_a_run_is_alive_until_its_creator_closes(tmp_path: Path, meta: MetadataStore) -> None:
    run_id = new_run(meta)
    run = meta.run("F", run_id)
    assert run is not None and not meta.process_gone(run)  # open in this very process
    meta.close()
    assert meta.process_gone(run)  # closed while reading running: abandoned
    assert meta.process_gone(meta.run("F", run_id))  # type: ignore[arg-type]


def test_a_run_that_ended_is_never_abandoned(meta: MetadataStore) -> None:
    run_id = new_run(meta)
    stale = meta.run("F", run_id)
    meta.write_batch([], [], [(run_id, {"status": "succeeded", "finished_at": 2.0})])
    meta.close()
    assert stale is not None and not meta.process_gone(stale)  # ended since it was read
    assert not meta.process_gone(meta.run("F", run_id))  # type: ignore[arg-type]


def test_a_closed_store_can_be_used_again(meta: MetadataStore) -> None:
    first = new_run(meta)
    meta.close()
    second = new_run(meta)
    assert second > first
    assert not meta.process_gone(meta.run("F", second))  # type: ignore[arg-type]


# -- MetadataStore: task attempts and small blobs -----------------------------------------------


def test_attempts_come_by_task_then_attempt(meta: MetadataStore) -> None:
    run_id = new_run(meta)
    other = new_run(meta)
    meta.write_batch(
        [
            attempt(run_id, 3, step="a"),
            attempt(run_id, 1, manifest=pack({"x": "k" * 40})),
            attempt(run_id, 2, 1, step="a"),
            attempt(run_id, 2, 0, step="a", status="failed"),
            attempt(other, 1),
        ],
        [],
    )
    rows = meta.task_attempts(run_id)
    assert all(isinstance(r, TaskRecord) for r in rows)
    assert [(r.task_id, r.attempt) for r in rows] == [(1, 0), (2, 0), (2, 1), (3, 0)]
    assert [(r.task_id, r.attempt) for r in meta.task_attempts(run_id, "a")] == [
        (2, 0), (2, 1), (3, 0),
    ]  # fmt: skip
    assert [r.status for r in meta.task_attempts(run_id, "a", 2)] == ["failed", "succeeded"]
    assert unpack(rows[0].manifest or b"") == {"x": "k" * 40}
    assert [(r.task_id, r.attempt) for r in meta.task_attempts_by_id(run_id, [3, 2, 3])] == [
        (2, 0), (2, 1), (3, 0),
    ]  # fmt: skip
    assert meta.task_attempts_by_id(run_id, []) == []
    assert meta.steps(run_id) == [("start", 1.0), ("a", 2.0)]
    assert meta.task_attempts(run_id + 99) == [] and meta.steps(run_id + 99) == []


def test_a_later_row_of_an_attempt_replaces_it_and_so_do_blobs(meta: MetadataStore) -> None:
    run_id = new_run(meta)
    meta.write_batch([attempt(run_id, 1, status="running", finished_at=None)], [("k", b"Mfirst")])
    meta.write_batch([attempt(run_id, 1)], [("k", b"Msecond")])
    rows = meta.task_attempts(run_id)
    assert [(r.status, r.finished_at) for r in rows] == [("succeeded", 1.5)]
    # Other bytes under a key can only be damage (a key is its bytes' hash): they are replaced.
    assert meta.get_blob("k") == b"Msecond" and meta.blob_size("k") == 7
    assert meta.get_blob("nope") is None and meta.blob_size("nope") is None


@pytest.mark.parametrize("bad", ["short row", "unknown run field"])
def test_a_bad_batch_changes_nothing(meta: MetadataStore, bad: str) -> None:
    run_id = new_run(meta)
    tasks: list[Any] = [attempt(run_id, 1)]
    updates: list[tuple[int, dict[str, Any]]] = [(run_id, {"status": "succeeded"})]
    if bad == "short row":
        tasks.append(tuple(attempt(run_id, 2))[:-1])
    else:
        updates.append((run_id, {"graph": b"x"}))
    with pytest.raises((ValueError, TypeError, sqlite3.ProgrammingError)):
        meta.write_batch(tasks, [("blob-key", b"Mx")], updates)
    assert meta.task_attempts(run_id) == [] and meta.get_blob("blob-key") is None
    run = meta.run("F", run_id)
    assert run is not None and run.status == "running"


# -- BlobStore ----------------------------------------------------------------------------------


def test_blobs_round_trip_verified(blobs: BlobStore) -> None:
    encoded = encode(b"x" * 1000)
    assert not blobs.has(encoded.key)
    blobs.put(encoded.key, encoded.chunks)
    blobs.put(encoded.key, encoded.chunks)  # again: a no-op
    assert blobs.has(encoded.key)
    tag, payload = blobs.get(encoded.key)
    assert bytes((tag,)) + bytes(payload) == encoded.tobytes()
    assert blobs.size(encoded.key) == len(encoded.tobytes())


def test_a_missing_blob_is_named(blobs: BlobStore) -> None:
    key = "e186" + "0" * 36
    for read in (blobs.get, blobs.size):
        with pytest.raises(BlobNotFound) as info:
            read(key)
        assert info.value.key == key and key in str(info.value)
        assert isinstance(info.value, KeyError)  # what a missing blob raised before
        assert blobs.location in str(info.value)


def test_a_blob_not_matching_its_key_is_corrupt(blobs: BlobStore) -> None:
    encoded = encode("value" * 10)  # over IDENTITY_MAX: a stored blob, checked on read
    other = encode("other value" * 10)
    blobs.put(encoded.key, other.chunks)  # stored under the wrong key
    with pytest.raises(BlobCorrupted, match=encoded.key):
        blobs.get(encoded.key)


# -- Store: the seam ----------------------------------------------------------------------------


def test_store_reads_small_and_large_blobs_alike(store: Store) -> None:
    small, large = encode("small" * 10), encode(b"L" * 300_000)
    store.metadata.write_batch([], [(small.key, small.tobytes())])
    store.blobs.put(large.key, large.chunks)
    assert store.load(small.key) == "small" * 10 and store.load(large.key) == b"L" * 300_000
    assert store.blob_size(small.key) == len(small.tobytes())
    assert store.blob_size(large.key) == len(large.tobytes())


def test_a_missing_blob_names_the_artifact_and_task(store: Store) -> None:
    key = "e186" + "0" * 36
    with pytest.raises(BlobNotFound) as info:
        store.load(key, artifact="model", pathspec="F/1/train/3")
    message = str(info.value)
    assert key in message and "'model'" in message and "F/1/train/3" in message
    assert (info.value.artifact, info.value.pathspec) == ("model", "F/1/train/3")
    with pytest.raises(BlobNotFound):
        store.blob_size(key)


def test_store_takes_both_backends_or_neither() -> None:
    with pytest.raises(TypeError, match="both"):
        Store(metadata=MemoryMetadataStore())
    store = Store(metadata=MemoryMetadataStore(), blobs=MemoryBlobStore())
    assert store.root is None and store.location == "memory"
    assert store.db is store.metadata


def test_memory_stores_are_separate() -> None:
    one, two = Store.memory(), Store.memory()
    new_run(one.metadata)
    assert one.metadata.flows() == ["F"] and two.metadata.flows() == []


def test_a_foreign_file_is_a_metadata_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    path.write_bytes(b"this is not a database, not at all" * 100)
    for create in (True, False):
        with pytest.raises(MetadataError) as info:
            SqliteMetadataStore(path, create=create)
        assert info.value.path == path and str(path) in str(info.value)
        assert "\n" not in str(info.value) and isinstance(info.value, StoreError)


def test_a_database_damaged_after_opening_is_a_metadata_error(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    meta = SqliteMetadataStore(path)
    run_id = new_run(meta)
    meta.close()
    path.write_bytes(b"garbage " * 2000)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    opened = []
    real_open = sqlite_schema.open_database

    def opening(file: Path) -> sqlite3.Connection:
        opened.append(real_open(file))
        return opened[-1]

    with (
        mock.patch.object(sqlite_schema, "open_database", opening),
        pytest.raises(MetadataError, match=str(path)),
    ):
        meta.run("F", run_id)
    assert opened  # the connection that met the damage was closed, not left to the collector
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


# -- a run in a memory store --------------------------------------------------------------------


class TwoStepFlow(FlowSpec):
    @step
    def start(self):
        self.x = 41
        print("hello")
        self.next(self.end)

    @step
    def end(self):
        self.y = self.x + 1


async def test_a_run_in_a_memory_store_reads_back_through_the_client() -> None:
    store = Store.memory()
    run = await run_flow(TwoStepFlow, root=store, quiet=True)
    assert run.successful and run.status == "succeeded" and run.data is not None
    assert (run.data.x, run.data.y) == (41, 42)
    assert run["start"].task.stdout == "hello\n"
    flow = Flow("TwoStepFlow", _store=store)
    assert flow.latest_run == run and [s.id for s in run] == ["end", "start"]
    again = await run_flow(TwoStepFlow, root=store, quiet=True)
    assert int(again.id) > int(run.id) and flow.latest_run == again


async def test_a_memory_store_refuses_steps_in_worker_processes() -> None:
    store = Store.memory()
    with pytest.raises(ParameterError, match="worker process"):
        await run_flow(TwoStepFlow, root=store, quiet=True, executor="process")
    assert store.metadata.flows() == []  # refused before anything was stored
