"""Storing one large artifact against the floor of writing and hashing its bytes (issue 19).

    python -m benchmarks.big_artifact [--size-mb 2048] [--repeats 3]

A NumPy array of `--size-mb` is stored as a step's artifact is (`encode`, then the blob store's
`put` into a store folder), and, in the same run, its raw bytes are written to a file of the
same folder and hashed with BLAKE3 on all cores. The figure is aioflow's time over the sum of
those two (target at most 1.2x). The dirty pages of one measurement are synced to disk before
the next, so neither inherits the other's write-back.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
from blake3 import blake3

from aioflow.store import Store
from aioflow.store.serde import encode


def _raw(data: memoryview, folder: str) -> tuple[float, float]:
    """(seconds to write `data` to a new file, seconds to hash it)."""
    os.sync()
    started = time.perf_counter()
    with open(os.path.join(folder, "raw"), "wb") as f:
        f.write(data)
    written = time.perf_counter() - started
    started = time.perf_counter()
    blake3(data, max_threads=blake3.AUTO).hexdigest()
    hashed = time.perf_counter() - started
    os.remove(os.path.join(folder, "raw"))
    return written, hashed


def _stored(value: np.ndarray, folder: str) -> float:
    """Seconds to encode `value` and put its blob into a new store folder."""
    root = os.path.join(folder, "store")
    store = Store(root)
    try:
        os.sync()
        started = time.perf_counter()
        encoded = encode(value)
        store.blobs.put(encoded.key, encoded.chunks)
        return time.perf_counter() - started
    finally:
        store.close()
        shutil.rmtree(root)


def main() -> None:
    """Print aioflow's time to store the artifact beside the raw write and hash."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=2048, help="the artifact's size")
    parser.add_argument("--repeats", type=int, default=3, help="measurements (median)")
    args = parser.parse_args()
    value = np.ones(args.size_mb * 1024 * 1024 // 8, dtype=np.float64)
    value[::4096] = np.arange(len(value[::4096]))  # not one repeated byte
    data = memoryview(value).cast("B")
    writes, hashes, ours = [], [], []
    with tempfile.TemporaryDirectory(prefix="aioflow-bench-big-") as folder:
        for _ in range(args.repeats):  # interleaved, so a busy moment does not fall on one
            written, hashed = _raw(data, folder)
            writes.append(written)
            hashes.append(hashed)
            ours.append(_stored(value, folder))
    write, hash_, stored = (statistics.median(x) for x in (writes, hashes, ours))
    print(f"a {args.size_mb:,} MB artifact, median of {args.repeats}")
    print(f"  {'raw write to a file':<44} {write:7.2f} s")
    print(f"  {'BLAKE3 of the same bytes, all cores':<44} {hash_:7.2f} s")
    print(f"  {'aioflow: encoded and put in a store folder':<44} {stored:7.2f} s")
    ratio = stored / (write + hash_)
    print(f"  {'aioflow / (write + hash)':<44} {ratio:7.2f}x   target <= 1.2x")


if __name__ == "__main__":
    main()
