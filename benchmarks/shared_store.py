"""Blobs in S3 (issue 16): what re-running costs, and what S3 blobs add to a task.

    python -m benchmarks.shared_store [--big-mb 200] [--n 200] [--quick]

An S3 server is started on 127.0.0.1 (moto's, in this process: `tests/s3_server.py`), so the
figures measure aioflow's requests, not a network.

1. A flow whose `start` stores a BIG-MB artifact (random bytes, the same every run: seeded) is
   run twice with its blobs in S3: bytes uploaded by each run, as counted by the blob store.
   Target: the second run uploads 0 bytes (the artifact is found with one HEAD request).
2. A foreach of N tasks, each storing a 300 KB artifact (over the 256 KB kept in SQLite, so
   each task puts one blob), with the blobs in the store folder and in S3: seconds per task,
   side by side, and the same for N tasks with tiny artifacts (kept in their keys, stored
   nowhere, whatever the blob store: S3 should add nothing there).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from aioflow import FlowSpec, Parameter, run_flow, step
from aioflow.store import Store
from aioflow.store.objects import ObjectBlobStore

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.s3_server import S3Server  # noqa: E402 (the checkout's test helper)


class BigArtifactFlow(FlowSpec):
    """Stores one large artifact, the same bytes every run."""

    mb = Parameter("mb", default=200)

    @step
    def start(self):
        self.big = random.Random(16).randbytes(self.mb * 1024 * 1024)
        self.next(self.end)

    @step
    def end(self):
        self.size = len(self.big)


class ForeachFlow(FlowSpec):
    """A foreach of `n` tasks, each storing an artifact of `kb` kilobytes."""

    n = Parameter("n", default=200)
    kb = Parameter("kb", default=300)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.payload = os.urandom(self.kb * 1024)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


def _store(folder: Path, blobs: str | None) -> Store:
    if blobs is None:
        os.environ.pop("AIOFLOW_BLOBS", None)
    else:
        os.environ["AIOFLOW_BLOBS"] = blobs
    try:
        return Store(folder)
    finally:
        os.environ.pop("AIOFLOW_BLOBS", None)


def rerun_uploads(server: S3Server, mb: int) -> list[int]:
    """Bytes uploaded by two runs of BigArtifactFlow with its blobs in a fresh bucket."""
    url = f"s3://{server.bucket()}/blobs"
    uploaded = []
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / ".aioflow", url)
        assert isinstance(store.blobs, ObjectBlobStore)
        try:
            for _ in range(2):
                before = store.blobs.uploaded
                anyio.run(_run, BigArtifactFlow, store, {"mb": mb})
                uploaded.append(store.blobs.uploaded - before)
        finally:
            store.close()
    return uploaded


async def _run(flow: type[FlowSpec], store: Store, params: dict[str, Any]) -> None:
    await run_flow(flow, root=store, quiet=True, max_num_splits=100_000, **params)


def per_task(blobs: Callable[[], str | None], n: int, kb: int, repeats: int) -> float:
    """Median seconds per task of a foreach of `n` tasks storing `kb` KB each."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            store = _store(Path(tmp) / ".aioflow", blobs())
            try:
                started = time.perf_counter()
                anyio.run(_run, ForeachFlow, store, {"n": n, "kb": kb})
                times.append((time.perf_counter() - started) / (n + 3))
            finally:
                store.close()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Print both figures; exit 1 when a re-run uploaded anything (unless --quick)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=int, default=200, help="size of the large artifact")
    parser.add_argument("--n", type=int, default=200, help="tasks of the foreach")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="8 MB+, 20 tasks, one run each")
    args = parser.parse_args(argv)
    big, n, repeats = (9, 20, 1) if args.quick else (args.big_mb, args.n, args.repeats)
    server = S3Server()
    for name, value in server.env().items():
        os.environ[name] = value
    try:
        first, second = rerun_uploads(server, big)
        print(f"re-running a flow whose {big} MB artifact is unchanged (blobs in S3):")
        print(f"  first run uploaded  {first:>13,} bytes")
        print(f"  second run uploaded {second:>13,} bytes")
        print(f"foreach of {n} tasks, seconds per task (median of {repeats}):")
        for kb, what in ((300, "300 KB artifact each (one blob put per task)"), (0, "tiny")):
            local = per_task(lambda: None, n, kb, repeats)
            s3 = per_task(lambda: f"s3://{server.bucket()}/blobs", n, kb, repeats)
            print(f"  {what}:")
            print(f"    local blob files {local * 1000:8.2f} ms")
            print(f"    S3 blobs         {s3 * 1000:8.2f} ms   ({s3 / local:.2f}x)")
    finally:
        server.stop()
    return 0 if second == 0 or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
