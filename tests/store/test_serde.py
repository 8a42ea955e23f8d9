"""Tests of aioflow.store.serde: tagged, content-addressed encoding of artifact values."""

from __future__ import annotations

import datetime
import decimal
import fractions
import pickle
import threading
import tracemalloc
from collections import OrderedDict, defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioflow.exceptions import ArtifactEncodingError
from aioflow.store.serde import (
    LARGE,
    TAG_BYTES,
    TAG_MSGPACK,
    TAG_PICKLE,
    TAG_PICKLE_OOB,
    Encoded,
    decode,
    decode_blob,
    decode_plain,
    encode,
    hash_chunks,
    pack,
    unpack,
)


class Point:
    """A custom class, pickled by reference to this module."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return type(other) is Point and (other.x, other.y) == (self.x, self.y)


def roundtrip(value: Any) -> tuple[Any, int]:
    encoded = encode(value)
    blob = encoded.tobytes()
    assert len(blob) == encoded.size
    return decode_blob(blob), blob[0]


def same(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types, recursively (1 == 1.0 == True does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            same(k1, k2) and same(a[k1], b[k2]) for k1, k2 in zip(a, b, strict=True)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


PLAIN = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1.5,
    -0.0,
    float("inf"),
    float("nan"),
    "",
    "héllo ✓",
    b"",
    b"\x00\xc4\xff",
    [],
    {},
    [None, True, 1, 1.0, "1", b"1", [1, [2, [3]]], {"k": {"n": [True]}}],
    {"a": 1, "b": [1.0, "x"], "c": {"d": None}},
    {"z": 1, "a": 2},
    {1: "int key", -5: "negative"},
    [1, [b"a", [b"b"]], {"k": b"\xc5", b"bytes key": [b""]}],
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_data_round_trips_exactly_with_msgpack(value: Any) -> None:
    out, tag = roundtrip(value)
    assert tag == TAG_MSGPACK
    assert same(out, value), (out, value)


def test_msgpack_keeps_int_float_and_bool_apart() -> None:
    keys = {encode(v).key for v in (1, 1.0, True)}
    assert len(keys) == 3
    out, _ = roundtrip([1, 1.0, True, 0, 0.0, False])
    assert [type(x) for x in out] == [int, float, bool, int, float, bool]


OTHER = [
    (1, 2),
    (),
    ([1], (2, 3)),
    [1, (2, 3)],
    {1, 2, 3},
    frozenset({"a"}),
    {(1, 2): "tuple key"},
    2**64,
    -(2**64) - 1,
    10**100,
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
    datetime.date(2024, 1, 2),
    datetime.timedelta(seconds=5),
    decimal.Decimal("1.10"),
    fractions.Fraction(1, 3),
    complex(1, 2),
    OrderedDict([("b", 1), ("a", 2)]),
    defaultdict(list, {"a": [1]}),
    Point(1, 2),
    [Point(3, 4)],
    bytearray(b"ab\xc4"),
    [1, {"k": bytearray(b"nested")}],
    {"k": [bytearray()]},
    "\ud800 lone surrogate",
    np.float64(1.5),
    np.int32(7),
]


@pytest.mark.parametrize("value", OTHER, ids=repr)
def test_other_values_round_trip_exactly_with_pickle(value: Any) -> None:
    out, tag = roundtrip(value)
    assert tag == TAG_PICKLE
    assert same(out, value), (out, value)
    if isinstance(value, defaultdict):
        assert out.default_factory is list


def test_int_keys_survive_in_nested_dicts() -> None:
    value = {"outer": {1: "a", 2: {3: [4]}}}
    out, tag = roundtrip(value)
    assert tag == TAG_MSGPACK
    assert same(out, value)


def test_bytearray_stays_mutable() -> None:
    out, _ = roundtrip({"buf": bytearray(b"x")})
    out["buf"].extend(b"yz")
    assert out["buf"] == bytearray(b"xyz")


@pytest.mark.parametrize(
    "array",
    [
        np.arange(10),
        np.zeros((3, 4), dtype=np.float32),
        np.arange(12).reshape(3, 4).T,  # not contiguous
        np.array(["a", "bc"]),
        np.array([1, "x", None], dtype=object),
        np.ones(LARGE // 8 + 1),
    ],
    ids=["int", "float32-2d", "transposed", "unicode", "object", "large"],
)
def test_numpy_arrays_round_trip_writable(array: np.ndarray) -> None:
    encoded = encode(array)
    blob = encoded.tobytes()
    out = decode_blob(blob)  # from read-only bytes, as read from the database
    assert type(out) is np.ndarray
    assert out.dtype == array.dtype and out.shape == array.shape
    assert np.array_equal(out, array)
    assert out.flags.writeable
    out.flat[0] = out.flat[1]  # really writable
    assert blob == encoded.tobytes()  # writing to the result never touches the blob
    assert blob[0] in (TAG_PICKLE, TAG_PICKLE_OOB)


def test_numpy_array_decoded_from_writable_memory_is_not_copied() -> None:
    encoded = encode(np.arange(1000, dtype=np.int64))
    assert encoded.chunks[0] == b"Q"
    payload = bytearray(encoded.tobytes()[1:])
    out = decode(TAG_PICKLE_OOB, payload)
    out[0] = 42
    assert payload != encoded.tobytes()[1:]  # the array lives in the payload's memory


def test_large_bytes_are_not_copied() -> None:
    value = b"\x01" * LARGE
    encoded = encode(value)
    assert encoded.chunks[0] == b"B"
    assert encoded.chunks[1] is value
    assert encoded.size == LARGE + 1
    assert encoded.type_name == "bytes"
    assert decode(TAG_BYTES, value) is value
    out = decode_blob(encoded.tobytes())
    assert type(out) is bytes and out == value
    assert encode(b"\x01" * (LARGE - 1)).chunks[0][:1] == b"M"


def test_large_bytes_from_a_memoryview_come_back_as_bytes() -> None:
    value = b"\x02" * LARGE
    out = decode(TAG_BYTES, memoryview(b"B" + value)[1:])
    assert type(out) is bytes and out == value


def test_same_value_same_key_different_value_different_key() -> None:
    a = encode({"x": [1, 2, 3], "y": (4, 5)})
    b = encode({"x": [1, 2, 3], "y": (4, 5)})
    assert a.key == b.key
    assert len(a.key) == 40 and int(a.key, 16) >= 0
    keys = {
        encode(v).key
        for v in ({"x": [1, 2, 3]}, {"x": [1, 2, 4]}, {"x": (1, 2, 3)}, [1, 2, 3], (1, 2, 3))
    }
    assert len(keys) == 5
    big = np.arange(LARGE // 8 + 1)
    assert encode(big).key == encode(big.copy()).key
    changed = big.copy()
    changed[-1] = -1
    assert encode(changed).key != encode(big).key


def test_key_is_the_hash_of_the_blob() -> None:
    # (over IDENTITY_MAX bytes: a smaller blob is its own key, see tests/store/test_keys.py)
    for value in ({"a": "b" * 40}, (1, "two" * 10), np.arange(5), b"z" * LARGE):
        encoded = encode(value)
        blob = encoded.tobytes()
        assert encoded.key == hash_chunks([blob], len(blob))
        assert encoded.key == hash_chunks(list(encoded.chunks), encoded.size)


def test_encoded_describes_the_value() -> None:
    encoded = encode((1, 2))
    assert isinstance(encoded, Encoded)
    assert encoded.type_name == "tuple"
    assert encoded.tobytes()[:1] == b"P"
    assert encoded.size == len(encoded.tobytes())
    assert pickle.loads(encoded.tobytes()[1:]) == (1, 2)


def test_only_a_large_value_waits_for_its_key() -> None:
    small = encode({"a": "b" * 40})
    assert small.hashed and small.key in repr(small)
    large = encode(b"z" * LARGE)
    assert not large.hashed and "key=None" in repr(large)  # repr does not hash it
    blob = large.tobytes()
    assert large.key == hash_chunks([blob], len(blob)) and large.hashed
    learned = encode(b"y" * LARGE)
    learned.learn_key("0" * 40)  # what a store computed while writing it
    assert learned.hashed and learned.key == "0" * 40


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ((i for i in range(3)), "generator"),
        (threading.Lock(), "lock"),
        ([1, threading.Lock()], "list"),
        (memoryview(b"abc"), "memoryview"),
        (lambda: 1, "function"),
    ],
    ids=["generator", "lock", "lock-in-list", "memoryview", "lambda"],
)
def test_unencodable_values_raise_artifact_encoding_error(value: Any, type_name: str) -> None:
    with pytest.raises(ArtifactEncodingError) as info:
        encode(value)
    assert str(info.value).startswith(f"{type_name} cannot be pickled: ")
    assert info.value.__cause__ is not None


def test_unknown_tag_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown blob tag"):
        decode(ord("Z"), b"")


def test_pack_and_unpack_metadata() -> None:
    value = {"a": [1, "b", None], 3: b"x"}
    assert unpack(pack(value)) == value
    assert unpack(memoryview(pack([1, 2]))) == [1, 2]


# -- generated values ---------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits msgpack refuses and pickle keeps them
    st.floats(allow_nan=False),
    st.text(max_size=20),  # lone surrogates included: msgpack refuses them, pickle keeps them
    st.binary(max_size=40),
    st.binary(max_size=40).map(bytearray),
    st.decimals(allow_nan=False),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), children, max_size=5),
        st.frozensets(st.one_of(st.text(max_size=10), st.integers()), max_size=5),
    ),
    max_leaves=20,
)


def _shape(value: Any) -> Any:
    """`value` with every container's type kept, for a comparison `==` alone would blur (True ==
    1, (1,) != [1] but 1.0 == 1, bytes == bytearray)."""
    if isinstance(value, (list, tuple)):
        return (type(value), [_shape(v) for v in value])
    if isinstance(value, dict):
        return (dict, [(_shape(k), _shape(v)) for k, v in value.items()])
    if isinstance(value, frozenset):
        return (frozenset, sorted(map(repr, value)))
    return (type(value), value)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_any_value_round_trips_with_its_types(value: Any) -> None:
    encoded = encode(value)
    out = decode_blob(encoded.tobytes())
    assert _shape(out) == _shape(value)
    assert encode(value).key == encoded.key  # the same value, the same blob


@given(st.lists(st.tuples(st.floats(allow_nan=False), st.text()).map(list), max_size=5))
def test_log_lines_decode_as_plain_data(lines: list[list[Any]]) -> None:
    blob = encode(lines).tobytes()
    assert decode_plain(blob[0], blob[1:]) == lines


@pytest.mark.parametrize("packs", [encode, pack])
def test_a_large_value_leaves_no_buffer_behind(packs: Any) -> None:
    # A msgpack Packer keeps the buffer of its largest value; each thread's packers live as
    # long as the thread, so after the million item keys of a wide foreach a worker thread
    # held 84 MB for good.
    large = ["k" * 40] * 200_000  # 8.4 MB packed
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = packs(large)
        assert (result.size if isinstance(result, Encoded) else len(result)) > 8_000_000
        del result
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # What is left is the new packer's own first buffer (up to 1 MiB, by msgpack's version),
    # not the 8.4 MB one.
    assert left < 2_000_000
    assert roundtrip(["small"]) == (["small"], TAG_MSGPACK)  # the new packers work


@pytest.mark.parametrize("padding", [0, 10_000])
def test_a_bytearray_is_found_in_short_and_long_values(padding: int) -> None:
    # Short packed values are searched for msgpack's bin headers with a regular expression,
    # long ones with bytes.find: both must send a value holding a bytearray to pickle.
    value = ["x" * padding, {"k": bytearray(b"kept")}]
    out, _ = roundtrip(value)
    assert type(out[1]["k"]) is bytearray
    plain = ["x" * padding, {"k": b"bytes"}]
    out, tag = roundtrip(plain)
    assert type(out[1]["k"]) is bytes and tag == ord("M")
