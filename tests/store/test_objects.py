"""ObjectBlobStore against a real S3 server (moto on 127.0.0.1), a real Azure Blob Storage API
(Azurite on 127.0.0.1), and obstore's local and memory stores: put-if-absent, multipart
uploads, verified streamed reads, and one-line errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from aioflow.exceptions import BlobCorrupted, BlobNotFound, StoreError
from aioflow.store import Store
from aioflow.store.objects import CREATE_LIMIT, ObjectBlobStore
from aioflow.store.open import open_blobs
from aioflow.store.serde import encode
from tests import azurite_server
from tests.s3_server import S3Server


def blob(value: object) -> tuple[str, tuple[bytes, ...]]:
    encoded = encode(value)
    return encoded.key, tuple(bytes(c) for c in encoded.chunks)


@pytest.fixture(params=["s3", "az", "file", "memory"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectBlobStore:
    if request.param in ("s3", "az"):
        url = request.getfixturevalue(f"{request.param}_url")
    elif request.param == "file":
        url = (tmp_path / "blobs").as_uri()
    else:
        url = "memory://"
    store = open_blobs(url)
    assert isinstance(store, ObjectBlobStore)
    return store


def test_put_then_get_round_trips_and_second_put_sends_nothing(objects: ObjectBlobStore) -> None:
    key, chunks = blob({"a": 1, "b": "x" * 1000})
    assert not objects.has(key)
    objects.put(key, chunks)
    sent = objects.uploaded
    objects.put(key, chunks)  # refused by the server's conditional create: counts as done
    assert objects.uploaded == sent
    assert objects.has(key)
    tag, payload = objects.get(key)
    assert bytes([tag]) + bytes(payload) == b"".join(chunks)
    assert objects.size(key) == len(b"".join(chunks))
    assert list(objects.keys()) == [key]


def test_a_large_blob_goes_up_in_parts_and_once(objects: ObjectBlobStore) -> None:
    value = os.urandom(CREATE_LIMIT + 3 * 1024 * 1024)
    key, chunks = blob(value)
    objects.put(key, chunks)
    assert objects.uploaded == sum(len(c) for c in chunks)
    objects.put(key, chunks)  # asked for first: nothing is uploaded again
    assert objects.uploaded == sum(len(c) for c in chunks)
    tag, payload = objects.get(key)
    assert bytes([tag]) + bytes(payload) == b"".join(chunks)


def test_missing_and_damaged_blobs_are_named(objects: ObjectBlobStore) -> None:
    key, chunks = blob(list(range(40)))  # stored: over an identity key's 29 bytes
    with pytest.raises(BlobNotFound, match=key):
        objects.get(key)
    with pytest.raises(BlobNotFound):
        objects.size(key)
    other, _ = blob([4] * 40)
    objects.put(other, chunks)  # bytes that do not hash to the key
    with pytest.raises(BlobCorrupted) as info:
        objects.get(other)
    assert other in str(info.value) and objects.url.rstrip("/") in str(info.value)


def test_delete_keeps_a_blob_put_again_since(objects: ObjectBlobStore) -> None:
    key, chunks = blob("kept" * 10)
    objects.put(key, chunks)
    objects.put(key, chunks)  # put again: marked as put now
    assert objects.delete(key, untouched_since=time.time() - 3600) == 0
    assert objects.has(key)
    assert objects.delete(key, untouched_since=time.time() + 3600) == len(b"".join(chunks))
    assert not objects.has(key)
    assert list(objects.keys()) == []


def test_a_missing_bucket_is_one_line_naming_it(s3_server: S3Server, s3_url: str) -> None:
    objects = ObjectBlobStore("s3://no-such-bucket-here/blobs")
    key, chunks = blob("x" * 40)
    with pytest.raises(StoreError) as info:
        objects.put(key, chunks)
    message = str(info.value)
    assert "\n" not in message
    assert "s3://no-such-bucket-here/blobs" in message and "bucket does not exist" in message
    with pytest.raises(StoreError, match="cannot be reached: the bucket does not exist"):
        objects.check()


def test_an_unknown_scheme_is_one_line() -> None:
    with pytest.raises(StoreError, match="Unknown blob store URL ftp://x: use a folder or"):
        open_blobs("ftp://x")


def test_a_store_folder_takes_its_blobs_from_the_environment(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIOFLOW_BLOBS", raising=False)
    store = Store(tmp_path / ".aioflow")
    assert not isinstance(store.blobs, ObjectBlobStore)
    store.close()
    monkeypatch.setenv("AIOFLOW_BLOBS", s3_url)
    store = Store(tmp_path / ".aioflow")
    assert isinstance(store.blobs, ObjectBlobStore) and store.blobs.url == s3_url
    store.close()


def test_a_missing_container_is_one_line_naming_it(az_url: str) -> None:
    objects = ObjectBlobStore("az://no-such-container/blobs")
    key, chunks = blob("x" * 40)
    with pytest.raises(StoreError) as info:
        objects.put(key, chunks)
    message = str(info.value)
    assert "\n" not in message
    assert "az://no-such-container/blobs" in message and "container does not exist" in message
    with pytest.raises(StoreError, match="cannot be reached: the container does not exist"):
        objects.check()


def test_without_azurite_the_azure_tests_fail_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(azurite_server.AZURITE_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(azurite_server, "AZURITE_PREFIX", tmp_path / "nowhere")
    with pytest.raises(RuntimeError) as info:
        azurite_server.AzuriteServer()
    assert str(info.value) == (
        "Azurite (the Azure Storage emulator) is not installed: npm install --prefix "
        f"{tmp_path / 'nowhere'} azurite@3 (as .ci/run does), or name its azurite-blob in "
        "$AIOFLOW_AZURITE."
    )
