"""Identity keys (aioflow.store.keys): a blob of at most IDENTITY_MAX bytes is its own key.

Round trips at and around the limit for every tag, the two kinds of key never colliding, damaged
keys refused, and the content hash a client shows for either kind."""

from __future__ import annotations

import pickle
import string
from typing import Any

import msgpack
import pytest
from blake3 import blake3

from aioflow.exceptions import BlobError
from aioflow.store.keys import (
    HEX_KEY,
    IDENTITY_KEY,
    IDENTITY_MAX,
    check_file_key,
    check_key,
    content_hash,
    identity_blob,
    identity_key,
    is_identity,
    read_identity,
)
from aioflow.store.serde import (
    LARGE,
    TAG_BYTES,
    TAG_MSGPACK,
    TAG_PICKLE,
    blob_key,
    decode,
    encode,
)


def _msgpack_str(blob_size: int) -> str:
    """A str whose blob (`M`, a fixstr header, the text) is `blob_size` bytes."""
    return "s" * (blob_size - 2)


def _pickled(blob_size: int) -> Any:
    """A value msgpack refuses (a tuple) whose pickle blob is `blob_size` bytes."""
    for n in range(64):
        value = ("t" * n,)
        if 1 + len(pickle.dumps(value, protocol=5)) == blob_size:
            return value
    raise AssertionError(f"no tuple pickles to {blob_size} bytes")


@pytest.mark.parametrize("size", [IDENTITY_MAX - 1, IDENTITY_MAX, IDENTITY_MAX + 1])
@pytest.mark.parametrize("tag", ["msgpack", "pickle"])
def test_encode_keys_a_blob_by_itself_up_to_the_limit(tag: str, size: int) -> None:
    value = _msgpack_str(size) if tag == "msgpack" else _pickled(size)
    encoded = encode(value)
    assert encoded.size == size
    assert encoded.tobytes()[0] == (TAG_MSGPACK if tag == "msgpack" else TAG_PICKLE)
    if size <= IDENTITY_MAX:
        assert is_identity(encoded.key) and IDENTITY_KEY.fullmatch(encoded.key)
        assert identity_blob(encoded.key) == encoded.tobytes()
        found = read_identity(encoded.key)
        assert found is not None
        assert decode(*found) == value and type(decode(*found)) is type(value)
    else:
        assert HEX_KEY.fullmatch(encoded.key)
        assert encoded.key == blake3(encoded.tobytes()).hexdigest(length=20)
        assert identity_blob(encoded.key) is None and read_identity(encoded.key) is None
    assert len(encoded.key) <= 40
    assert blob_key(encoded.tobytes()) == encoded.key


@pytest.mark.parametrize("size", [1, 2, IDENTITY_MAX - 1, IDENTITY_MAX])
def test_every_tag_and_length_round_trips_through_its_key(size: int) -> None:
    # `B` blobs come from `encode` only above LARGE, but any reader must take any tag.
    for tag in (TAG_MSGPACK, TAG_BYTES, TAG_PICKLE):
        for fill in (b"\x00", b"\xff", b"\xfb"):  # base64's "+" and "/" characters both occur
            blob = bytes((tag,)) + fill * (size - 1)
            key = identity_key(blob)
            assert key == check_key(key) and len(key) <= 40
            assert identity_blob(key) == blob
            found = read_identity(key)
            assert found is not None and found[0] == tag and bytes(found[1]) == blob[1:]
    assert decode(*read_identity(identity_key(b"B" + b"\x01\x02")) or (0, b"")) == b"\x01\x02"


def test_small_values_of_every_kind_decode_from_their_key_to_the_same_type() -> None:
    values = (b"", b"x" * 26, 0, -1, 2**63, 2**64, 1.5, None, True, [], {}, "é", (1, 2), {1})
    for value in values:
        found = read_identity(encode(value).key)
        assert found is not None, value
        out = decode(*found)
        assert out == value and type(out) is type(value), value
    # One byte more than fits (bin8 header + 27 bytes + tag = 30), and a large bytes value.
    assert not is_identity(encode(b"x" * 27).key)
    assert not is_identity(encode(b"x" * LARGE).key)


def test_equal_values_get_equal_keys_and_different_ones_different_keys() -> None:
    keys = {encode(i).key for i in range(-5000, 5000)}
    assert len(keys) == 10_000
    assert encode("same").key == encode("same").key
    assert encode(1).key != encode(1.0).key != encode(True).key


def test_an_identity_key_is_never_a_hex_key_and_the_reverse() -> None:
    assert "=" not in string.hexdigits
    samples = [bytes([t]) + bytes(range(n)) for t in (77, 80, 66) for n in range(IDENTITY_MAX)]
    for blob in samples:
        key = identity_key(blob)
        assert not HEX_KEY.fullmatch(key)
        with pytest.raises(BlobError):
            check_file_key(key)  # names no file and no object
    hex_key = encode("x" * 100).key
    assert not is_identity(hex_key) and not IDENTITY_KEY.fullmatch(hex_key)
    assert check_key(hex_key) == check_file_key(hex_key) == hex_key


@pytest.mark.parametrize(
    "key",
    [
        "=",  # no tag byte
        "=T",  # half a byte
        "=TQU=",  # padding: never written
        "=TQ+",  # standard base64's alphabet, not base64url's
        "=TQUFT",  # a length no whole number of bytes has
        "=" + "A" * 40,  # longer than any identity key
        "=TQUF.",
        "=../etc",
    ],
)
def test_a_damaged_identity_key_is_refused(key: str) -> None:
    with pytest.raises(BlobError, match="is not a blob key"):
        check_key(key) if not IDENTITY_KEY.fullmatch(key) else identity_blob(key)
    with pytest.raises(BlobError):
        read_identity(key)


def test_content_hash_is_the_hash_key_of_the_same_bytes() -> None:
    small = encode(7)
    assert is_identity(small.key)
    assert content_hash(small.key) == blake3(small.tobytes()).hexdigest(length=20)
    large = encode("y" * 100)
    assert content_hash(large.key) == large.key


def test_msgpack_of_a_small_int_is_what_the_key_holds() -> None:
    # The format, written down: "=" + base64url("M" + msgpack(5)) without padding.
    assert encode(5).key == "=TQU"
    assert msgpack.unpackb(identity_blob("=TQU")[1:]) == 5  # type: ignore[index]
