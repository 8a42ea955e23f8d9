"""Every reader of the store answers an identity key from the key, and no writer stores one.

Each backend pairing a real run can use (memory, SQLite + files, SQLite + S3, PostgreSQL + S3)
is given identity keys it has never seen: its reads must find them anyway, and the run's writer,
the snapshot's routing and `put_encoded` must leave no row, no file, no object and no cache
entry behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from blake3 import blake3

from aioflow.exceptions import BlobError
from aioflow.runtime.artifacts import store_encoded
from aioflow.store import FileBlobStore, MemoryBlobStore, Store
from aioflow.store.blobs import put_encoded
from aioflow.store.keys import IDENTITY_MAX, content_hash, is_identity
from aioflow.store.objects import ObjectBlobStore
from aioflow.store.open import open_blobs
from aioflow.store.serde import Encoded, decode, encode
from aioflow.store.writer import BatchWriter

VALUES = [7, -1, "short", None, 2.5, (1, 2), b"\x00\xff", "x" * (IDENTITY_MAX - 2)]


def identity(value: object) -> Encoded:
    encoded = encode(value)
    assert is_identity(encoded.key), value
    return encoded


@pytest.fixture(params=["memory", "sqlite-files", "sqlite-s3", "postgres-s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    kind = request.param
    if kind == "memory":
        made = Store.memory()
    elif kind == "sqlite-files":
        made = Store(tmp_path / "store")
    else:
        blobs = open_blobs(request.getfixturevalue("s3_url"))
        if kind == "sqlite-s3":
            metadata = Store(tmp_path / "store").metadata
        else:
            from aioflow.store.postgres import open_postgres_metadata

            metadata = open_postgres_metadata(request.getfixturevalue("postgres_url"))
        made = Store(metadata=metadata, blobs=blobs)
    yield made
    made.close()


def test_every_read_of_the_store_decodes_an_identity_key(store: Store) -> None:
    for value in VALUES:
        encoded = identity(value)
        key, blob = encoded.key, encoded.tobytes()
        assert decode(*store.read_blob(key)) == value
        assert store.load(key) == value
        assert store.blob_size(key) == len(blob)
        assert store.metadata.get_blob(key) == blob
        assert store.metadata.blob_size(key) == len(blob)
        assert store.blobs.has(key)
        assert decode(*store.blobs.get(key)) == value
        assert store.blobs.size(key) == len(blob)
        assert b"".join(store.blobs.read_stream(key, 4)) == blob
    assert list(store.blobs.keys()) == []  # nothing was stored to be found


def test_a_hex_key_still_reads_from_the_backends(store: Store) -> None:
    small = encode("y" * 100)
    store.metadata.write_batch([], [(small.key, small.tobytes())], [])
    large = encode(b"z" * 300_000)
    store.blobs.put(large.key, large.chunks)
    assert store.load(small.key) == "y" * 100
    assert store.load(large.key) == b"z" * 300_000
    missing = encode("w" * 100).key
    with pytest.raises(KeyError):
        store.read_blob(missing)
    assert not store.blobs.has(missing)


def test_nothing_stores_an_identity_key(store: Store) -> None:
    encoded = identity(12345)
    small: list[tuple[str, bytes]] = []
    large: list[Encoded] = []
    store_encoded(encoded, small, large.append)
    assert small == [] and large == []
    put_encoded(store.blobs, encoded)
    assert list(store.blobs.keys()) == []

    async def through_the_writer() -> BatchWriter:
        writer = BatchWriter(store)
        writer.put_blob(encoded.key, encoded.tobytes())
        writer.put_blob(encode("v" * 100).key, encode("v" * 100).tobytes())  # a stored one
        await writer.flush()
        return writer

    writer = anyio.run(through_the_writer)
    assert encoded.key not in writer._cache and writer.unflushed_blob(encoded.key) is None
    assert decode(*writer.read_blob(encoded.key)) == 12345
    assert list(writer._cache) == [encode("v" * 100).key]
    # The database holds the one stored blob, not the identity-keyed one.
    assert store.metadata.sweep_blobs(lambda: set()) == (1, len(encode("v" * 100).tobytes()))


@pytest.mark.parametrize("kind", ["file", "memory", "object"])
def test_an_identity_key_names_no_file_or_object(kind: str, tmp_path: Path) -> None:
    blobs: FileBlobStore | MemoryBlobStore | ObjectBlobStore
    if kind == "file":
        blobs = FileBlobStore(tmp_path / "blobs")
    elif kind == "memory":
        blobs = MemoryBlobStore()
    else:
        blobs = open_blobs((tmp_path / "objects").as_uri())  # type: ignore[assignment]
    key = identity("abc").key
    assert blobs.has(key) and decode(*blobs.get(key)) == "abc"
    if not isinstance(blobs, MemoryBlobStore):
        with pytest.raises(BlobError, match="is not a blob key"):
            blobs.path(key)  # a file or object name is a hex key, always
    assert list(tmp_path.rglob("*")) == [] or all(p.is_dir() for p in tmp_path.rglob("*"))


def test_a_store_written_before_identity_keys_still_reads_its_tiny_values(store: Store) -> None:
    # An older aioflow stored every value under its hash, however small: those rows stay
    # readable by hash, with no migration, beside the identity key the value has now.
    encoded = identity(7)
    blob = encoded.tobytes()
    old_key = blake3(blob).hexdigest(length=20)
    store.metadata.write_batch([], [(old_key, blob)], [])
    assert store.load(old_key) == 7 == store.load(encoded.key)
    assert store.blob_size(old_key) == len(blob) == store.blob_size(encoded.key)
    assert content_hash(encoded.key) == old_key  # what DataArtifact.sha shows for both
