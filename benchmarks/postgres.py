"""PostgreSQL metadata against SQLite's (issue 16), with a local server started for the run.

    python -m benchmarks.postgres [--n 1000] [--repeats 3] [--quick]

1. A foreach of N trivial tasks, run in this process with its metadata in SQLite (a store
   folder), in PostgreSQL (blobs in files in both), and in PostgreSQL with blobs in S3 (moto
   on 127.0.0.1): the per-task overhead `(time(N) - time(1)) / (N - 1)` of each, side by side,
   and their ratios to SQLite's. Target: PostgreSQL at most 5x.
2. `Flow(name).latest_run["end"].task.data.x` read cold from PostgreSQL: in a fresh process,
   from opening the store (connecting, checking the schema) to the value, the imports not
   counted. Target: under 100 ms for a small artifact.

The server is the machine's PostgreSQL (`tests/postgres_server.py`: initdb and pg_ctl on a free
127.0.0.1 port) with its default durability settings (fsync on, synchronous commit), so a
commit waits for the disk as it would in production; SQLite runs as aioflow configures it (WAL,
synchronous=NORMAL). The medians of `--repeats` runs are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from aioflow import FlowSpec, Parameter, run_flow_sync, step
from aioflow.store import FileBlobStore, Store
from aioflow.store.objects import ObjectBlobStore
from aioflow.store.postgres import open_postgres_metadata
from tests.postgres_server import PostgresServer
from tests.s3_server import S3Server

ROOT = Path(__file__).resolve().parent.parent


class ForeachFlow(FlowSpec):
    n = Parameter("n", default=1)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.x = 42


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def per_task(make_store: Callable[[], Store | Path], n: int, repeats: int) -> tuple[float, float]:
    """(median seconds of a run with N items, median per-task overhead in seconds)."""
    run_flow_sync(ForeachFlow, root=make_store(), quiet=True, n=2)  # warm-up: imports, schema
    ones, ns = [], []
    for _ in range(repeats):
        ones.append(_timed(lambda: run_flow_sync(ForeachFlow, root=make_store(), quiet=True)))
        ns.append(
            _timed(
                lambda: run_flow_sync(
                    ForeachFlow, root=make_store(), quiet=True, n=n, max_num_splits=n
                )
            )
        )
    one, big = statistics.median(ones), statistics.median(ns)
    return big, (big - one) / (n - 1)


COLD_READ = textwrap.dedent("""
    import sys, time
    from aioflow.client import Flow
    from aioflow.store import FileBlobStore, Store
    from aioflow.store.postgres import open_postgres_metadata
    import psycopg  # imported before the clock starts, as the client's own modules are

    started = time.perf_counter()
    store = Store(metadata=open_postgres_metadata(sys.argv[1]), blobs=FileBlobStore(sys.argv[2]))
    x = Flow("ForeachFlow", _store=store).latest_run["end"].task.data.x
    elapsed = time.perf_counter() - started
    assert x == 42, x
    print(elapsed)
""")


def cold_read(url: str, blobs: Path, repeats: int) -> float:
    """Median seconds of a cold read of `end`'s `x` in a fresh process."""
    times = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", COLD_READ, url, str(blobs)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        times.append(float(done.stdout.split()[-1]))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run both figures and print them; exit status 1 when a target is missed (not with
    --quick)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="foreach items (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--quick", action="store_true", help="N=50, one run each")
    args = parser.parse_args(argv)
    n, repeats = (50, 1) if args.quick else (args.n, args.repeats)

    server = PostgresServer(fsync=True)
    s3 = S3Server()
    try:
        os.environ.update(s3.env())  # obstore's credentials and endpoint for the S3 server
        with tempfile.TemporaryDirectory(prefix="aioflow-bench-pg-") as tmp:
            folder = Path(tmp)
            url, s3_metadata = server.database(), server.database()
            blobs = folder / "pg-blobs"
            bucket = f"s3://{s3.bucket()}/blobs"

            def postgres_store() -> Store:
                return Store(metadata=open_postgres_metadata(url), blobs=FileBlobStore(blobs))

            def postgres_s3_store() -> Store:
                metadata = open_postgres_metadata(s3_metadata)
                return Store(metadata=metadata, blobs=ObjectBlobStore(bucket))

            sqlite_total, sqlite_task = per_task(lambda: folder / "sqlite", n, repeats)
            pg_total, pg_task = per_task(postgres_store, n, repeats)
            s3_total, s3_task = per_task(postgres_s3_store, n, repeats)
            cold = cold_read(url, blobs, max(repeats, 3))
    finally:
        s3.stop()
        server.stop()

    ratio = pg_task / sqlite_task
    print(f"foreach of {n} trivial tasks, median of {repeats} (blobs in files unless said):")
    print(f"  SQLite      {sqlite_total * 1000:8.0f} ms  {sqlite_task * 1e6:7.0f} us per task")
    print(f"  PostgreSQL  {pg_total * 1000:8.0f} ms  {pg_task * 1e6:7.0f} us per task")
    print(f"  PostgreSQL + S3 {s3_total * 1000:4.0f} ms  {s3_task * 1e6:7.0f} us per task "
          "(small blobs in PostgreSQL, larger in S3: moto on 127.0.0.1)")  # fmt: skip
    print(f"  PostgreSQL / SQLite per task: {ratio:.2f}x (target at most 5x); "
          f"PostgreSQL + S3 / SQLite: {s3_task / sqlite_task:.2f}x")  # fmt: skip
    print(f'cold read of Flow(...).latest_run["end"].task.data.x from PostgreSQL: '
          f"{cold * 1000:.1f} ms (target under 100 ms)")  # fmt: skip
    met = ratio <= 5 and cold < 0.1
    return 0 if met or args.quick else 1  # --quick is a smoke run: its figures mean little


if __name__ == "__main__":
    raise SystemExit(main())
