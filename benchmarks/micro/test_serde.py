"""Encoding and hashing an artifact: what every task pays for each value it sets."""

from __future__ import annotations

import pickle

import pytest

from aioflow.store.serde import decode, encode

MB = 1024 * 1024

VALUES = {
    "int": 12345,
    "str-1KB": "x" * 1024,
    "dict-100": {f"key{i}": [i, float(i), str(i)] for i in range(100)},
    "tuple-pickled": tuple(range(100)),
    "bytes-64MB": bytes(64 * MB),
}


def _encode_and_hash(value):
    encoded = encode(value)
    _ = encoded.key  # a large blob's key is computed when first asked for
    return encoded


@pytest.mark.parametrize("name", list(VALUES))
def test_encode_and_hash(benchmark, name):
    """serde.encode: pick the format, serialize, and BLAKE3-hash the blob."""
    value = VALUES[name]
    encoded = benchmark(_encode_and_hash, value)
    assert encoded.size > 0
    benchmark.extra_info["blob_bytes"] = encoded.size


@pytest.mark.parametrize("name", ["int", "dict-100", "tuple-pickled"])
def test_decode(benchmark, name):
    """serde.decode of a small blob, as a task reading an inherited artifact does."""
    blob = encode(VALUES[name]).tobytes()
    tag, payload = blob[0], memoryview(blob)[1:]
    assert benchmark(decode, tag, payload) == VALUES[name]


def test_pickle_baseline(benchmark):
    """For scale: pickle.dumps of the same 100-key dict, without hashing."""
    benchmark(pickle.dumps, VALUES["dict-100"], 5)
