"""Storing blobs: a large blob as a file (FileBlobStore.put), small ones in SQLite (BatchWriter)."""

from __future__ import annotations

import itertools
import os

import anyio

from aioflow.store.serde import encode
from aioflow.store.writer import BatchWriter

MB = 1024 * 1024


def test_put_small_file_blob(benchmark, store):
    """FileBlobStore.put of a 4 KB blob under a new key: temp file, write, rename."""
    counter = itertools.count()
    data = os.urandom(4096)

    def put():
        store.blobs.put(f"{next(counter):040x}", (data,))

    benchmark(put)


def test_put_large_file_blob(benchmark, store):
    """FileBlobStore.put of a 64 MB blob (already encoded and hashed) under a new key."""
    counter = itertools.count()
    data = os.urandom(64 * MB)

    def put():
        store.blobs.put(f"{next(counter):040x}", (b"B", data))

    benchmark.pedantic(put, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["MB_per_s"] = 64 / benchmark.stats.stats.mean


def test_put_existing_blob_is_free(benchmark, store):
    """A blob already stored (an unchanged artifact) costs one stat() call."""
    encoded = encode(os.urandom(2 * MB))
    store.blobs.put(encoded.key, encoded.chunks)
    benchmark(store.blobs.put, encoded.key, encoded.chunks)


def test_commit_1000_small_blobs(benchmark, store):
    """BatchWriter: queue 1,000 small blobs (1 KB each, keys random like content hashes) and
    commit them as one transaction. Later rounds insert into a larger table."""

    def batch():
        return [(os.urandom(20).hex(), b"M" + os.urandom(1023)) for _ in range(1000)]

    async def write(blobs):
        writer = BatchWriter(store)
        for key, data in blobs:
            writer.put_blob(key, data)
        await writer.flush()

    benchmark.pedantic(
        lambda blobs: anyio.run(write, blobs),
        setup=lambda: ((batch(),), {}),
        rounds=10,
        warmup_rounds=1,
    )
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["us_per_blob"] = benchmark.stats.stats.mean / 1000 * 1e6
