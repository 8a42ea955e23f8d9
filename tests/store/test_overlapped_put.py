"""A large value whose key is not known yet is hashed while it is written (issue 19).

`FileBlobStore.put_encoded` writes the bytes to a temporary file in `tmp/` while another thread
hashes them, then renames the file to the key's path: these tests hold it to what `put` of a
known key guarantees (the same key and bytes, one blob per value, nothing partial under a key,
reads verified) and check what is new (nothing left in `tmp/`, a failure leaving nothing).
"""

from __future__ import annotations

import errno
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioflow.exceptions import BlobCorrupted
from aioflow.store import blobs as blobs_module
from aioflow.store.blobs import FileBlobStore, MemoryBlobStore, put_encoded
from aioflow.store.serde import LARGE, decode, encode, hash_chunks

MB = 1024 * 1024
#: The store's own thresholds, before `small_pieces` lowers them.
OVERLAP, PIECE = blobs_module.OVERLAP, blobs_module.PIECE


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overlap from 1 MB on, in pieces of 256 KB: the paths of a 2 GB value, at 3 MB."""
    monkeypatch.setattr(blobs_module, "OVERLAP", LARGE)
    monkeypatch.setattr(blobs_module, "PIECE", 256 * 1024)


def big_array(seed: int = 0, size: int = 3 * MB + 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def temp_files(store: FileBlobStore) -> list[Path]:
    return sorted(store.tmp.iterdir()) if store.tmp.exists() else []


def test_the_key_is_learnt_while_writing_and_is_the_usual_key(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array()
    encoded = encode(value)
    assert not encoded.hashed  # `encode` left the hashing to the store
    put_encoded(store, encoded)
    assert encoded.hashed
    # The same key as hashing first: the chunks' hash, and what any other store computes.
    assert encoded.key == hash_chunks(encoded.chunks, encoded.size)
    assert encoded.key == encode(value.copy()).key
    assert files_under(tmp_path / "blobs") == [store.path(encoded.key)]
    assert temp_files(store) == []
    out = decode(*store.get(encoded.key))  # read back, verified against the key
    assert np.array_equal(out, value) and out.flags.writeable


def test_the_same_bytes_as_a_put_of_the_known_key(tmp_path: Path) -> None:
    value = big_array(1)
    overlapped, keyed = FileBlobStore(tmp_path / "a"), FileBlobStore(tmp_path / "b")
    first = encode(value)
    put_encoded(overlapped, first)
    second = encode(value)
    keyed.put(second.key, second.chunks)  # hashed first, then written: the path before
    assert first.key == second.key
    assert overlapped.path(first.key).read_bytes() == keyed.path(second.key).read_bytes()


@pytest.mark.parametrize(
    "value",
    [b"b" * (2 * MB + 1), {"text": "t" * (2 * MB)}, ("pickled", b"p" * (2 * MB))],
    ids=["bytes", "msgpack", "pickle"],
)
def test_every_large_encoding_round_trips(tmp_path: Path, value: Any) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    encoded = encode(value)
    put_encoded(store, encoded)
    assert encoded.key == encode(value).key
    assert decode(*store.get(encoded.key)) == value
    assert temp_files(store) == []


def test_an_identical_large_value_is_one_blob(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array(2)
    first = encode(value)
    put_encoded(store, first)
    path = store.path(first.key)
    before = path.stat()
    os.utime(path, (before.st_atime - 100, before.st_mtime - 100))
    second = encode(value.copy())  # equal, not the same object: hashed again, while written
    put_encoded(store, second)
    assert second.key == first.key
    assert files_under(tmp_path / "blobs") == [path]
    assert temp_files(store) == []
    after = path.stat()
    assert after.st_ino == before.st_ino  # the blob there was kept, not replaced...
    assert after.st_mtime > before.st_mtime - 100  # ...and marked as put now (gc.py)


class _HashedFirst(blobs_module._Hashing):
    """Hashing that is over before the first piece is written: the key is known mid-write."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.done.wait()


@pytest.fixture
def hashed_first(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The key known before the writer's first piece; records the keys `write_stream` got."""
    monkeypatch.setattr(blobs_module, "_Hashing", _HashedFirst)
    streamed: list[str] = []
    real = FileBlobStore.write_stream

    def write_stream(self: FileBlobStore, key: str, size: int, chunks: Any) -> None:
        streamed.append(key)
        real(self, key, size, chunks)

    monkeypatch.setattr(FileBlobStore, "write_stream", write_stream)
    return streamed


def test_writing_stops_once_the_key_names_a_blob_there(
    tmp_path: Path, hashed_first: list[str]
) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array(3)
    first = encode(value)
    put_encoded(store, first)  # nothing there: written whole, renamed
    assert hashed_first == []
    second = encode(value.copy())
    put_encoded(store, second)  # there: the write stopped, the blob checked as `put` checks
    assert hashed_first == [first.key]
    assert files_under(tmp_path / "blobs") == [store.path(first.key)]
    assert temp_files(store) == []


@pytest.mark.parametrize("known", ["mid-write", "at-the-end"])
def test_a_damaged_blob_under_the_key_is_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, known: str
) -> None:
    if known == "mid-write":
        monkeypatch.setattr(blobs_module, "_Hashing", _HashedFirst)
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array(4)
    first = encode(value)
    put_encoded(store, first)
    path = store.path(first.key)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(data)
    with pytest.raises(BlobCorrupted):
        store.get(first.key)
    put_encoded(store, encode(value.copy()))
    assert np.array_equal(decode(*store.get(first.key)), value)
    assert files_under(tmp_path / "blobs") == [path]
    assert temp_files(store) == []


class _FailingFile:
    """A file whose writes fail with `error` once `limit` bytes are written."""

    def __init__(self, f: Any, limit: int, error: BaseException) -> None:
        self._f, self._left, self._error = f, limit, error

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if size > self._left:
            raise self._error
        self._left -= size
        return int(self._f.write(data))

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


@pytest.fixture
def failing_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BaseException]]:
    """Blob files that fail after 1 MB with the error the test puts in the list."""
    errors: list[BaseException] = []

    def fake_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = open(path, mode, *args, **kwargs)  # noqa: SIM115 (closed by the wrapper)
        return _FailingFile(f, MB, errors[0]) if "w" in mode else f

    monkeypatch.setattr(blobs_module, "open", fake_open, raising=False)
    yield errors


@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), KeyboardInterrupt()],
    ids=["disk-full", "interrupted"],
)
def test_a_failed_write_leaves_no_blob_and_no_temp_file(
    tmp_path: Path, failing_writes: list[BaseException], error: BaseException
) -> None:
    failing_writes.append(error)
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array(5)
    encoded = encode(value)
    with pytest.raises(type(error)):
        put_encoded(store, encoded)
    key = encode(value).key
    assert not store.has(key)
    assert files_under(tmp_path / "blobs") == []
    assert not any(t.name == "aioflow-blob-hash" for t in threading.enumerate())


def test_a_killed_writers_temp_file_is_no_blob_and_is_swept(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    store.tmp.mkdir(parents=True)
    left = store.tmp / "new.4242.1.tmp"  # what a writer killed mid-write leaves
    left.write_bytes(b"Q" + b"\0" * 100)
    assert list(store.keys()) == []  # never read as a blob
    long_ago = left.stat().st_mtime - blobs_module.STALE_TMP_AGE - 60
    os.utime(left, (long_ago, long_ago))
    encoded = encode(big_array(6))
    put_encoded(store, encoded)  # the first write sweeps it
    assert not left.exists()
    assert list(store.keys()) == [encoded.key]


def test_nothing_is_copied(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array(7, 16 * MB)
    encoded = encode(value)
    tracemalloc.start()
    try:
        put_encoded(store, encoded)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MB  # views of the array's memory, no piece of it copied


def test_concurrent_puts_of_one_new_value(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array(8)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []
    keys: list[str] = []

    def put() -> None:
        encoded = encode(value)
        barrier.wait()
        try:
            put_encoded(store, encoded)
            keys.append(encoded.key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(keys)) == 1
    assert files_under(tmp_path / "blobs") == [store.path(keys[0])]
    assert np.array_equal(decode(*store.get(keys[0])), value)


def test_small_values_and_known_keys_take_puts_path(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    small = encode(b"s" * (LARGE // 2))
    assert small.hashed  # below LARGE the key is computed by `encode`
    put_encoded(store, small)
    known = encode(big_array(9))
    _ = known.key  # asked for before storing: the value is hashed, then written
    put_encoded(store, known)
    assert sorted(store.keys()) == sorted([small.key, known.key])
    assert temp_files(store) == []


def test_other_stores_are_given_the_key_first() -> None:
    store = MemoryBlobStore()
    value = big_array(10)
    encoded = encode(value)
    put_encoded(store, encoded)
    assert encoded.hashed and store.has(encoded.key)
    assert np.array_equal(decode(*store.get(encoded.key)), value)


def test_at_the_store_s_own_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs_module, "OVERLAP", OVERLAP)
    monkeypatch.setattr(blobs_module, "PIECE", PIECE)
    store = FileBlobStore(tmp_path / "blobs")
    value = big_array(11, 2 * PIECE + 7)  # two pieces and a bit
    encoded = encode(value)
    put_encoded(store, encoded)
    assert encoded.key == encode(value).key == hash_chunks(encoded.chunks, encoded.size)
    assert np.array_equal(decode(*store.get(encoded.key)), value)
    assert files_under(tmp_path / "blobs") == [store.path(encoded.key)]
