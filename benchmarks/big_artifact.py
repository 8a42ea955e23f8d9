"""Storing one large artifact against the floor of writing and hashing its bytes (issue 19).

    python -m benchmarks.big_artifact [--size-mb 2048] [--repeats 3] [--no-flow]

A NumPy array of `--size-mb` is stored as a step's new artifact is (`encode`, then
`put_encoded` into a store folder, which hashes the bytes on one thread while another writes
them to a temporary file, renamed to the key's path at the end), and, in the same run, its raw
bytes are written to a file of the same folder (in 16 MB pieces, as the store writes them) and
hashed with BLAKE3 on all cores, one after the other. The figure is aioflow's time over the sum
of those two (target at most 1.2x); with hashing and writing overlapped its floor is
max(write, hash) / (write + hash), printed beside it, and so is the same value hashed first and
then written (the path before the overlap, and still that of a value whose key is asked for
before it is stored). The dirty pages of one measurement are synced to disk before the next, so
none inherits another's write-back.

Then, unless `--no-flow`, a flow carries an artifact of the same size through ten untouched
steps and a 4-way branch (`benchmarks.core`'s, in a fresh process): its peak memory and the
store's growth over the artifact's size, and what an untouched step takes, which overlapping
must leave as they were.
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
from aioflow.store.blobs import put_encoded
from aioflow.store.serde import encode

from .core import _child

#: The raw write's pieces, the store's (`blobs.PIECE`): one `write` of 2 GB took 0.4 to 1.7 s
#: (median 1.0 s) on a busy machine, 16 MB pieces 0.44 s, and the floor must not be the slower.
PIECE = 16 * 1024 * 1024


def _raw(data: memoryview, folder: str) -> tuple[float, float]:
    """(seconds to write `data` to a new file, seconds to hash it)."""
    os.sync()
    started = time.perf_counter()
    with open(os.path.join(folder, "raw"), "wb") as f:
        for start in range(0, len(data), PIECE):
            f.write(data[start : start + PIECE])
    written = time.perf_counter() - started
    started = time.perf_counter()
    blake3(data, max_threads=blake3.AUTO).hexdigest()
    hashed = time.perf_counter() - started
    os.remove(os.path.join(folder, "raw"))
    return written, hashed


def _stored(value: np.ndarray, folder: str, *, overlap: bool = True) -> float:
    """Seconds to encode `value` and put its blob into a new store folder, as a step's new
    artifact is (`RunEnv.put_large`: its key learnt while it is written); without `overlap`,
    hashed first and then written, as a value whose key was asked for before it was stored."""
    root = os.path.join(folder, "store")
    store = Store(root)
    try:
        os.sync()
        started = time.perf_counter()
        encoded = encode(value)
        if overlap:
            put_encoded(store.blobs, encoded)
        else:
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
    parser.add_argument(
        "--no-flow", action="store_true", help="skip the flow's memory, store and step figures"
    )
    args = parser.parse_args()
    value = np.ones(args.size_mb * 1024 * 1024 // 8, dtype=np.float64)
    value[::4096] = np.arange(len(value[::4096]))  # not one repeated byte
    data = memoryview(value).cast("B")
    writes, hashes, ours, sequential = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="aioflow-bench-big-") as folder:
        for _ in range(args.repeats):  # interleaved, so a busy moment does not fall on one
            written, hashed = _raw(data, folder)
            writes.append(written)
            hashes.append(hashed)
            ours.append(_stored(value, folder))
            sequential.append(_stored(value, folder, overlap=False))
    write, hash_, stored, one_then_other = (
        statistics.median(x) for x in (writes, hashes, ours, sequential)
    )
    print(f"a {args.size_mb:,} MB artifact, median of {args.repeats}")
    print(f"  {'aioflow: encoded and put in a store folder':<50} {stored:7.2f} s")
    print(f"  {'raw write to a file':<50} {write:7.2f} s")
    print(f"  {'BLAKE3 of the same bytes, all cores':<50} {hash_:7.2f} s")
    ratio = stored / (write + hash_)
    print(f"  {'aioflow / (write + hash)':<50} {ratio:7.2f}x   target <= 1.2x")
    floor = max(write, hash_) / (write + hash_)
    print(f"  {'  overlap floor: max(write, hash) / (write + hash)':<50} {floor:7.2f}x")
    before = one_then_other / (write + hash_)
    print(f"  {'  hashed, then written (no overlap), / (w + h)':<50} {before:7.2f}x")
    if args.no_flow:
        return
    with tempfile.TemporaryDirectory(prefix="aioflow-bench-big-flow-") as folder:
        flow = _child(["big", str(args.size_mb), os.path.join(folder, "store")])
    print(f"a flow carrying it through 10 untouched steps, a 4-way branch: {flow['total_s']:.1f} s")
    print(f"  {'peak memory / artifact size':<50} {flow['peak_rss_mb'] / args.size_mb:7.2f}x")
    print(f"  {'store size / artifact size':<50} {flow['store_mb'] / args.size_mb:9.4f}x")
    print(f"  {'mean untouched step':<50} {flow['mean_untouched_step_ms']:7.2f} ms")
    print(f"  {'slowest untouched step':<50} {flow['max_untouched_step_ms']:7.2f} ms")


if __name__ == "__main__":
    main()
