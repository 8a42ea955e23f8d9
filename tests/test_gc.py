"""Deleting runs and sweeping unreferenced blobs (store/gc.py, `aioflow runs delete`, `aioflow gc`).

The race with a writer is tested with a real run held by a gate between putting a large blob and
committing the row that names it: the sweep in that window must keep the blob, whether the run
wrote it afresh or found it stored already (a put of an existing blob marks it as put now).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aioflow import Run, run_flow_sync
from aioflow.exceptions import RunInProgress
from aioflow.flowspec import FlowSpec
from aioflow.store import Store, gc
from aioflow.store.blobs import FileBlobStore
from aioflow.store.keys import is_identity
from aioflow.store.serde import Buffer, encode
from tests.helpers import aioflow_command

FLOW = """
from aioflow import FlowSpec, Parameter, step


class GcFlow(FlowSpec):
    size = Parameter("size", default=1)
    fill = Parameter("fill", default="x")

    @step
    def start(self):
        self.big = self.fill * 300_000  # a blob file (over the database's 256 KiB)
        self.items = list(range(self.size))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.double = self.input * 2
        print("item", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.doubles = [i.double for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture
def flow(make_flow: Callable[[str], type[FlowSpec]]) -> type[FlowSpec]:
    return make_flow(FLOW)


def _age_files(root: Path, seconds: float = 3600.0) -> None:
    """Make every blob file look written `seconds` ago (as if left by old runs)."""
    past = time.time() - seconds
    for path in (root / "blobs").glob("??/*"):
        os.utime(path, (past, past))


def _files(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in (root / "blobs").glob("??/*")}


def test_choose_runs_keeps_the_newest_per_flow_and_filters() -> None:
    def record(run_id: int, flow: str, age: float, tags: tuple[str, ...] = ()) -> Any:
        return gc.RunRecord(run_id, flow, "succeeded", "u", 1000.0 - age, 1000.0, None, tags,
                            ("user:u",), 1, "h", None, 1)  # fmt: skip

    runs = [record(1, "A", 50), record(2, "B", 40, ("x",)), record(3, "A", 30),
            record(4, "A", 20, ("x",)), record(5, "B", 10)]  # fmt: skip
    ids = lambda chosen: [r.run_id for r in chosen]  # noqa: E731
    assert ids(gc.choose_runs(runs, keep_last=1, now=1000.0)) == [3, 2, 1]
    assert ids(gc.choose_runs(runs, older_than=35, now=1000.0)) == [2, 1]
    assert ids(gc.choose_runs(runs, keep_last=1, flow="A", now=1000.0)) == [3, 1]
    assert ids(gc.choose_runs(runs, keep_last=0, tag=["x"], now=1000.0)) == [4, 2]
    assert gc.choose_runs(runs) == []  # no bound: no run
    assert gc.parse_age("30d") == 30 * 86400 and gc.parse_age("90s") == 90
    assert gc.parse_age("2") == 2 * 86400 and gc.parse_age("1.5h") == 5400
    with pytest.raises(ValueError, match="is not an age"):
        gc.parse_age("soon")


def test_collect_frees_what_only_deleted_runs_named(flow: type[FlowSpec], tmp_path: Path) -> None:
    root = tmp_path / "store"
    # The old runs' own small blobs: their lists of 40 items and 40 doubles. Values of a few
    # bytes (`fill`, each item, each double, each task's one-line log) are kept in their keys.
    for fill, size in (("a", 40), ("b", 40), ("c", 3)):
        run_flow_sync(flow, root=root, quiet=True, fill=fill, size=size)
    _age_files(root)
    store = Store(root, create=False)
    try:
        chosen = gc.choose_runs(gc.all_runs(store), keep_last=1)
        assert [r.run_id for r in chosen] == [2, 1]
        report = gc.collect(store, chosen)
    finally:
        store.close()
    assert report.files == 2 and report.file_bytes > 600_000  # the two old `big` values
    assert report.small_blobs > 0 and report.compacted and not report.in_progress
    assert _files(root) == {encode("c" * 300_000).key}
    run = Run("GcFlow/3", root=root)  # everything of the kept run still reads
    assert run["join"].task.data.doubles == [0, 2, 4] and run["start"].task.data.big[0] == "c"
    assert [t.stdout for t in run["each"]] == ["item 2\n", "item 1\n", "item 0\n"]
    with pytest.raises(KeyError):
        Run("GcFlow/1", root=root)


def test_the_in_memory_store_collects_too(flow: type[FlowSpec]) -> None:
    store = Store.memory()
    for fill in "ab":
        run_flow_sync(flow, root=store, quiet=True, fill=fill)
    blobs = store.blobs
    assert isinstance(blobs.put_at, dict)  # type: ignore[attr-defined]
    for key in blobs.put_at:  # type: ignore[attr-defined]
        blobs.put_at[key] -= 3600  # type: ignore[attr-defined]
    report = gc.collect(store, gc.choose_runs(gc.all_runs(store), keep_last=1))
    assert report.files == 1 and [r.run_id for r in gc.all_runs(store)] == [2]
    assert store.load(encode("b" * 300_000).key) == "b" * 300_000


class _GatedBlobs:
    """A FileBlobStore whose put of one key holds the writer after the blob is on disk, before
    the row naming it can commit."""

    def __init__(self, inner: FileBlobStore, key: str) -> None:
        self.inner = inner
        self.key = key
        self.put_done = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def finish(self) -> None:
        """Let the writer go on, and wait for its run to end."""
        self.release.set()
        if self.thread is not None:
            self.thread.join(60)

    def put(self, key: str, chunks: tuple[Buffer, ...]) -> None:
        self.inner.put(key, chunks)
        if key == self.key:
            self.put_done.set()
            assert self.release.wait(60), "the test never released the writer"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def held_writer(flow: type[FlowSpec], tmp_path: Path) -> Iterator[Callable[[str], _GatedBlobs]]:
    """Start a run of GcFlow with `fill` in a thread, held once its `big` blob is put."""
    held: list[_GatedBlobs] = []

    def start(fill: str) -> _GatedBlobs:
        store = Store(tmp_path / "store")
        assert isinstance(store.blobs, FileBlobStore)
        gated = _GatedBlobs(store.blobs, encode(fill * 300_000).key)
        store.blobs = gated  # a BlobStore by its methods (the protocol is structural)
        thread = threading.Thread(
            target=run_flow_sync, args=(flow,), kwargs={"root": store, "quiet": True, "fill": fill}
        )
        gated.thread = thread
        thread.start()
        held.append(gated)
        assert gated.put_done.wait(60), "the writer never put its blob"
        return gated

    yield start
    for gated in held:
        gated.finish()


@pytest.mark.parametrize("same_value", [False, True], ids=["new-blob", "blob-stored-before"])
def test_a_blob_put_by_a_run_in_progress_is_never_swept(
    flow: type[FlowSpec],
    tmp_path: Path,
    held_writer: Callable[[str], _GatedBlobs],
    same_value: bool,
) -> None:
    root = tmp_path / "store"
    run_flow_sync(flow, root=root, quiet=True, fill="a")  # run 1, to be deleted
    _age_files(root)  # its blob file is old: only a put since can keep it
    fill = "a" if same_value else "b"
    gated = held_writer(fill)  # run 2: its `big` is on disk, its row not committed
    store = Store(root, create=False)
    try:
        runs = {r.run_id: r for r in gc.all_runs(store)}
        with pytest.raises(RunInProgress, match=r"Cannot delete run GcFlow/2: it is still running"):
            gc.collect(store, [runs[2]])
        report = gc.collect(store, [runs[1]])
    finally:
        store.close()
    assert report.in_progress and not report.compacted
    assert gated.key in _files(root)  # kept for run 2
    assert report.files == (0 if same_value else 1)  # run 1's own `big` went, unless shared
    gated.finish()  # run 2 commits and ends; its artifact reads back
    run = Run("GcFlow/2", root=root)
    assert run.finished and run["start"].task.data.big == fill * 300_000


def test_cli_gc_and_runs_delete(flow: type[FlowSpec], tmp_path: Path) -> None:
    root = tmp_path / "store"
    for fill in "abcd":
        run_flow_sync(flow, root=root, quiet=True, fill=fill)
    _age_files(root)
    env = {**os.environ, "AIOFLOW_ROOT": str(root)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*aioflow_command(), *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    proc = cli("gc", "--keep-last", "2", "--dry-run")
    assert proc.returncode == 0 and "Would delete 2 runs: GcFlow/2, GcFlow/1." in proc.stdout
    assert len(_files(root)) == 4
    proc = cli("runs", "delete", "GcFlow/2")
    assert proc.returncode == 0, proc.stderr
    assert "Deleted 1 runs: GcFlow/2." in proc.stdout and "1 blob files" in proc.stdout
    assert "Store " in proc.stdout and " -> " in proc.stdout
    proc = cli("gc", "--keep-last", "2")
    assert proc.returncode == 0 and "Deleted 1 runs: GcFlow/1." in proc.stdout
    assert len(_files(root)) == 2
    proc = cli("runs", "delete", "GcFlow/9")
    assert proc.returncode == 1 and "Run GcFlow/9 does not exist in" in proc.stderr
    proc = cli("runs", "delete", "GcFlow")
    assert proc.returncode == 2 and "is not a run: give FlowName/RunID" in proc.stderr
    proc = cli("gc", "--older-than", "soon")
    assert proc.returncode == 2 and "is not an age" in proc.stderr


def test_the_origin_of_a_resume_in_progress_is_kept() -> None:
    """A resume's clones name its origin's blobs without putting them again."""
    store = Store.memory()

    def create(origin_run_id: str | None) -> int:
        return store.metadata.create_run(
            "F", user="u", tags=[], system_tags=[], graph=b"", origin_run_id=origin_run_id
        )

    origin = create(None)
    store.metadata.write_batch([], [], [(origin, {"status": "failed"})])
    create(str(origin))  # a resume of it, in progress
    runs = {r.run_id: r for r in gc.all_runs(store)}
    with pytest.raises(
        RunInProgress, match=r"Cannot delete run F/1: run 2, in progress, resumes it"
    ):
        gc.delete_runs(store, [runs[origin]])
    store.metadata.close()  # the resume's process is gone: nothing protects the origin now
    gc.delete_runs(store, [runs[origin]])
    assert [r.run_id for r in gc.all_runs(store)] == [2]


def test_identity_keys_have_no_blob_to_keep_or_sweep(flow: type[FlowSpec], tmp_path: Path) -> None:
    root = tmp_path / "store"
    for fill, size in (("a", 40), ("b", 3)):
        run_flow_sync(flow, root=root, quiet=True, fill=fill, size=size)
    # The runs name identity keys (each item, each `double`, the parameters)...
    named = {k for task in Run("GcFlow/2", root=root)["each"] for k in task.manifest.values()}
    assert any(is_identity(k) for k in named)
    store = Store(root, create=False)
    try:
        # ...which the sweep's references leave out: no store holds them.
        assert not any(is_identity(k) for k in gc._References(store)())
        report = gc.collect(store, gc.choose_runs(gc.all_runs(store), keep_last=1))
        referenced = gc._References(store)()
    finally:
        store.close()
    with sqlite3.connect(root / "metadata.db") as conn:
        rows = {key for (key,) in conn.execute("SELECT key FROM blobs")}
    conn.close()
    assert report.small_blobs > 0  # run 1's own stored ones (its 40 doubles, its logs)
    assert rows == referenced - _files(root)  # exactly the kept run's stored ones
    run = Run("GcFlow/2", root=root)  # every value of the kept run still reads, from its keys
    assert run["join"].task.data.doubles == [0, 2, 4]
    assert sorted(t.data.double for t in run["each"]) == [0, 2, 4]
    assert run["start"].task.data.fill == "b"
