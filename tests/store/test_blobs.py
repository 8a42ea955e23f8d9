"""Tests of aioflow.store.blobs and the Store read path: content-addressed, verified, atomic."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioflow.exceptions import CorruptBlobError, StoreError
from aioflow.store import SMALL, BlobStore, FileBlobStore, MemoryBlobStore, Store, resolve_root
from aioflow.store.keys import is_identity
from aioflow.store.serde import LARGE, decode, encode


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(params=["file", "memory"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "file":
        return FileBlobStore(tmp_path / "blobs")
    return MemoryBlobStore()


@pytest.mark.parametrize(
    "value",
    # (small ones over IDENTITY_MAX bytes: smaller ones have identity keys and are not stored)
    [b"x" * LARGE, np.arange(LARGE // 8 + 3), {"small": list(range(30))}, (1, "tuple" * 8)],
    ids=["large-bytes", "array", "msgpack", "pickle"],
)
def test_put_get_round_trip(blobs: BlobStore, value: Any) -> None:
    encoded = encode(value)
    assert not blobs.has(encoded.key)
    blobs.put(encoded.key, encoded.chunks)
    assert blobs.has(encoded.key)
    assert blobs.size(encoded.key) == encoded.size
    tag, payload = blobs.get(encoded.key)
    assert tag == encoded.tobytes()[0]
    out = decode(tag, payload)
    if isinstance(value, np.ndarray):
        assert np.array_equal(out, value) and out.flags.writeable
    else:
        assert out == value and type(out) is type(value)


def test_missing_blob_is_a_key_error(blobs: BlobStore) -> None:
    with pytest.raises(KeyError):
        blobs.get("ab" * 20)
    with pytest.raises(KeyError):
        blobs.size("ab" * 20)
    assert not blobs.has("ab" * 20)


def test_put_twice_keeps_the_intact_blob(blobs: BlobStore) -> None:
    encoded = encode((1, "two" * 10))
    blobs.put(encoded.key, encoded.chunks)
    if isinstance(blobs, FileBlobStore):
        before = blobs.path(encoded.key).stat()
    blobs.put(encoded.key, encoded.chunks)
    assert decode(*blobs.get(encoded.key)) == (1, "two" * 10)
    if isinstance(blobs, FileBlobStore):  # checked, not written again (the same file)...
        after = blobs.path(encoded.key).stat()
        assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
        # ...but marked as put now, so gc keeps it for the writer about to name it (gc.py)
        assert after.st_mtime_ns >= before.st_mtime_ns


def test_file_store_layout_and_no_temp_files(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    keys = []
    for i in range(20):
        encoded = encode(("value" * 8, i))
        store.put(encoded.key, encoded.chunks)
        keys.append(encoded.key)
    files = files_under(tmp_path / "blobs")
    assert sorted(files) == sorted(store.path(k) for k in keys)
    for key in keys:
        assert store.path(key) == tmp_path / "blobs" / key[:2] / key[2:]
    assert not any(p.name.endswith(".tmp") or p.name.startswith(".") for p in files)


def test_file_store_concurrent_puts_of_the_same_blob(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    encoded = encode(b"y" * LARGE)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def put() -> None:
        barrier.wait()
        try:
            store.put(encoded.key, encoded.chunks)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert files_under(tmp_path / "blobs") == [store.path(encoded.key)]
    assert decode(*store.get(encoded.key)) == b"y" * LARGE


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    key = encode("whatever" * 8).key

    chunks: tuple[Any, ...] = (b"M", object())  # writing an object() raises TypeError mid-write
    with pytest.raises(TypeError):
        store.put(key, chunks)
    assert not store.has(key)
    assert files_under(tmp_path / "blobs") == []


def test_corrupted_file_raises_naming_the_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    encoded = encode(list(range(100)))
    store.put(encoded.key, encoded.chunks)
    path = store.path(encoded.key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptBlobError) as info:
        store.get(encoded.key)
    assert str(path) in str(info.value)
    assert encoded.key in str(info.value)


def test_corrupted_large_array_raises(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    encoded = encode(np.zeros(LARGE // 8 + 1))
    store.put(encoded.key, encoded.chunks)
    path = store.path(encoded.key)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x01")
    with pytest.raises(CorruptBlobError, match=str(path)):
        store.get(encoded.key)


def test_truncated_and_empty_files_raise(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    encoded = encode(b"z" * LARGE)
    store.put(encoded.key, encoded.chunks)
    path = store.path(encoded.key)
    path.write_bytes(path.read_bytes()[: LARGE // 2])
    with pytest.raises(CorruptBlobError, match=str(path)):
        store.get(encoded.key)
    path.write_bytes(b"")
    with pytest.raises(CorruptBlobError, match=f"{path} is empty"):
        store.get(encoded.key)


def test_memory_store_detects_corruption() -> None:
    store = MemoryBlobStore()
    encoded = encode({"a": "b" * 40})
    store.put(encoded.key, encoded.chunks)
    assert store.blobs[encoded.key] == encoded.tobytes()
    store.blobs[encoded.key] = encoded.tobytes()[:-1] + b"\x00"
    with pytest.raises(CorruptBlobError, match="memory"):
        store.get(encoded.key)


# -- Store: the database for small blobs, files for large ones ---------------------------------


def test_store_reads_small_blobs_from_the_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    small = encode({"k": "v" * 40})
    assert small.size <= SMALL and not is_identity(small.key)
    store.db.write_batch([], [(small.key, small.tobytes())])
    large = encode(b"q" * (SMALL + 1))
    store.blobs.put(large.key, large.chunks)
    assert store.load(small.key) == {"k": "v" * 40}
    assert store.load(large.key) == b"q" * (SMALL + 1)
    assert store.blob_size(small.key) == small.size
    assert store.blob_size(large.key) == large.size
    with pytest.raises(KeyError):
        store.load("00" * 20)
    store.close()


def test_store_detects_a_corrupt_database_blob(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    encoded = encode(list(range(40)))
    store.db.write_batch([], [(encoded.key, encoded.tobytes()[:-1] + b"\x04")])
    with pytest.raises(CorruptBlobError) as info:
        store.load(encoded.key)
    assert "metadata.db (blobs table)" in str(info.value)
    store.close()


def test_store_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOFLOW_ROOT", str(tmp_path / "from-env"))
    assert Store().root == tmp_path / "from-env"
    assert Store(tmp_path / "given").root == tmp_path / "given"
    monkeypatch.delenv("AIOFLOW_ROOT")
    monkeypatch.chdir(tmp_path)
    assert resolve_root() == tmp_path / ".aioflow"
    with pytest.raises(StoreError) as info:
        Store(create=False)
    assert str(tmp_path / ".aioflow") in str(info.value)
    assert not (tmp_path / ".aioflow").exists()
    store = Store()
    assert store.root == tmp_path / ".aioflow" and (store.root / "metadata.db").is_file()
    store.close()


# -- damage, keys and leftovers -----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flipped", "truncated", "emptied", "deleted"])
def test_put_again_repairs_a_damaged_blob_file(tmp_path: Path, damage: str) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    encoded = encode(b"v" * (SMALL + 10))
    store.put(encoded.key, encoded.chunks)
    path = store.path(encoded.key)
    data = path.read_bytes()
    if damage == "deleted":
        path.unlink()
    else:
        changed = {"flipped": data[:-1] + b"w", "truncated": data[:-7], "emptied": b""}
        path.write_bytes(changed[damage])
    with pytest.raises(StoreError):
        store.get(encoded.key)
    FileBlobStore(tmp_path / "blobs").put(encoded.key, encoded.chunks)  # the next run's writer
    assert decode(*store.get(encoded.key)) == b"v" * (SMALL + 10)


@pytest.mark.parametrize("key", ["../" * 4 + "etc/hostname", "AB" * 20, "ab" * 19, "ab" * 21, ""])
def test_keys_that_are_not_hex_digests_never_become_paths(tmp_path: Path, key: str) -> None:
    store = Store(tmp_path / "store")
    blobs = store.blobs
    assert isinstance(blobs, FileBlobStore)
    for use in (blobs.path, blobs.get, blobs.size, store.read_blob, store.load):
        with pytest.raises(StoreError, match="is not a blob key"):
            use(key)


def test_first_write_removes_temporary_files_of_killed_writers(tmp_path: Path) -> None:
    from aioflow.store.blobs import STALE_TMP_AGE

    store = FileBlobStore(tmp_path / "blobs")
    store.tmp.mkdir(parents=True)
    stale = store.tmp / f"{'ab' * 20}.4242.1.tmp"
    fresh = store.tmp / f"{'cd' * 20}.4243.1.tmp"  # a write in flight in another process
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    long_ago = stale.stat().st_mtime - STALE_TMP_AGE - 60
    os.utime(stale, (long_ago, long_ago))
    encoded = encode(b"z" * (SMALL + 1))
    store.put(encoded.key, encoded.chunks)
    assert not stale.exists() and fresh.exists()
    assert store.has(encoded.key)
    assert [p.name for p in store.tmp.iterdir()] == [fresh.name]  # its own temporary file is gone
