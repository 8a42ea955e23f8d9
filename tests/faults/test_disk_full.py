"""A full disk (issue 13, item 5): for blob files, a clear StoreFull that is the task's failure,
so @retry applies; for the database, the batch is kept and committed once space returns.

Blob files fill a real size-limited file system when the tests may mount one (a 4 MB tmpfs,
which needs root); otherwise the blob store's write raises ENOSPC as the OS would (the process
executor's case needs the real one, since a patch does not reach a worker process). The
database fills for real: SQLite's `PRAGMA max_page_count` caps the file at its current size,
so SQLite itself reports SQLITE_FULL, and lifting the cap is the space returning.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioflow import FlowSpec, current, retry, step
from aioflow.events import Event, TaskFailed
from aioflow.exceptions import StoreFull
from aioflow.store import Store
from aioflow.store import blobs as blobs_module
from aioflow.store.blobs import FileBlobStore, put_encoded
from aioflow.store.metadata import SqliteMetadataStore, task_row
from aioflow.store.serde import Encoded, encode
from aioflow.store.writer import BatchWriter, is_full
from aioflow.testing import run_in_temp_store

pytestmark = pytest.mark.timeout(90)

BIG = 8 * 1024 * 1024  # twice the small disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 4 MB tmpfs folder, or None where this process may not mount one."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        mounted = None
    if mounted is None or mounted.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10)


class BigOnceFlow(FlowSpec):
    """Its first attempt stores more than the disk holds; the retry stores a little."""

    @retry(times=1)
    @step
    def start(self):
        if current.retry_count == 0:
            self.big = os.urandom(BIG)  # random: no encoding makes it smaller
        else:
            self.big = b"small"
        self.next(self.end)

    @step
    def end(self):
        pass


def _fill_blob_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blob files larger than a megabyte fail as on a full disk (the OS's ENOSPC), whether
    written under a known key (`put`) or hashed while written (`put_encoded`)."""
    real_put, real_put_encoded = FileBlobStore.put, FileBlobStore.put_encoded

    def put(self: FileBlobStore, key: str, chunks: tuple[Any, ...]) -> None:
        if sum(len(memoryview(c)) for c in chunks) > 1024 * 1024:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_put(self, key, chunks)

    def put_encoded(self: FileBlobStore, encoded: Encoded) -> None:
        if encoded.size > 1024 * 1024:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_put_encoded(self, encoded)

    monkeypatch.setattr(FileBlobStore, "put", put)
    monkeypatch.setattr(FileBlobStore, "put_encoded", put_encoded)


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_a_full_disk_fails_the_task_clearly_and_retry_applies(
    small_disk: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    if small_disk is None:
        if executor == "process":
            pytest.skip("a worker process needs a real full disk (mounting a tmpfs needs root)")
        _fill_blob_files(monkeypatch)
    root = small_disk if small_disk is not None else tmp_path / "store"
    failures: list[TaskFailed] = []

    def listen(event: Event) -> None:
        if isinstance(event, TaskFailed):
            failures.append(event)

    run = await run_in_temp_store(BigOnceFlow, root, executor=executor, listeners=[listen])
    assert run.successful and run["start"].task.data.big == b"small"  # @retry applied
    [failed] = failures
    assert failed.step_name == "start" and failed.retrying
    assert failed.exception_type == "StoreFull"
    assert "artifact 'big' set in step *start*" in failed.message
    assert str(root) in failed.message and "no space left" in failed.message
    assert "\n" not in failed.message
    blob_files = [p for p in (root / "blobs").rglob("*") if p.is_file()]
    assert blob_files == []  # neither a partial blob under a key nor a temporary file


def test_a_large_blob_hashed_while_written_leaves_nothing_on_a_full_disk(
    small_disk: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills in the middle of a write whose key is not known yet (issue 19): the
    write's own OSError (ENOSPC) as before, no blob under the key, no temporary file."""
    if small_disk is None:  # the OS's ENOSPC once a file passes a megabyte
        real_open = open

        class Full:
            def __init__(self, f: Any) -> None:
                self.f, self.written = f, 0

            def write(self, data: Any) -> int:
                self.written += memoryview(data).nbytes
                if self.written > 1024 * 1024:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return int(self.f.write(data))

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                self.f.close()

        def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            f = real_open(path, mode, *args, **kwargs)
            return Full(f) if "w" in mode else f

        monkeypatch.setattr(blobs_module, "open", full_open, raising=False)
    root = small_disk if small_disk is not None else tmp_path / "store"
    blobs = FileBlobStore(root / "blobs")
    value = np.random.default_rng(0).integers(0, 255, BIG, dtype=np.uint8)
    encoded = encode(value)
    assert not encoded.hashed and encoded.size >= blobs_module.OVERLAP  # the overlapped path
    with pytest.raises(OSError) as raised:
        put_encoded(blobs, encoded)
    assert is_full(raised.value)
    assert not blobs.has(encode(value).key)
    assert [p for p in (root / "blobs").rglob("*") if p.is_file()] == []


def test_store_full_names_what_could_not_be_stored() -> None:
    error = StoreFull("blob ab12", location="/disk/store", key="ab12").naming(
        artifact="model", step="train"
    )
    assert (error.artifact, error.step, error.location, error.key) == (
        "model",
        "train",
        "/disk/store",
        "ab12",
    )
    assert str(error).startswith("Cannot store artifact 'model' set in step *train* at /disk/store")


class DatabaseFull:
    """SQLite's file may not grow while `full`: its writes fail with SQLITE_FULL for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        self.left = failures  # commits that find the disk full before space returns
        self.failed = 0
        real = SqliteMetadataStore.write_batch
        guard = self

        def write_batch(self: SqliteMetadataStore, *args: Any, **kwargs: Any) -> None:
            conn = self.connection()
            # max_page_count never goes below the file's size: 1 means "no more pages".
            conn.execute(f"PRAGMA max_page_count = {1 if guard.left > 0 else 1_000_000_000}")
            try:
                real(self, *args, **kwargs)
            except Exception as exc:
                assert is_full(exc), exc
                guard.left -= 1
                guard.failed += 1
                raise

        monkeypatch.setattr(SqliteMetadataStore, "write_batch", write_batch)


async def test_the_writer_keeps_a_batch_the_full_database_refused(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(aioflow_root)
    run_id = store.metadata.create_run(
        "F", user="u", tags=[], system_tags=[], graph=b"", origin_run_id=None
    )
    full = DatabaseFull(monkeypatch, failures=3)
    writer = BatchWriter(store)
    writer.put_blob("ab" * 20, b"\x00" + os.urandom(200_000))  # needs new pages
    writer.put_task(task_row(run_id, 1, 0, "start", "succeeded", started_at=1.0, finished_at=2.0))
    writer.update_run(run_id, status="succeeded", finished_at=3.0)
    await writer.flush()  # returns once committed: after three refusals
    assert full.failed == 3
    [task] = store.metadata.task_attempts(run_id)
    assert task.status == "succeeded"
    run = store.metadata.run("F", run_id)
    assert run is not None and run.status == "succeeded" and run.finished_at == 3.0
    assert store.metadata.get_blob("ab" * 20) is not None
    store.close()


class BlobFlow(FlowSpec):
    @step
    def start(self):
        self.blob = os.urandom(200_000)  # kept in the database
        self.next(self.end)

    @step
    def end(self):
        self.done = True


async def test_a_run_on_a_full_database_records_its_end_once_space_returns(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(aioflow_root).close()  # the schema exists before the database fills
    full = DatabaseFull(monkeypatch, failures=4)
    run = await run_in_temp_store(BlobFlow, aioflow_root)
    assert full.failed == 4
    assert run.status == "succeeded" and run.successful
    assert run["end"].task.data.done and len(run["start"].task.data.blob) == 200_000
