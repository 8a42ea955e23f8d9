"""Embedding figures (issue: run flows from services and Jupyter), each in a fresh process.

    python -m benchmarks.embedding [--quick]

1. `await run_flow` of a 3-step flow inside an already-running event loop: milliseconds per
   run after the first (median and 90th percentile of sequential runs). Target: < 5 ms.
2. 100 runs of a 10-task flow (start, a 7-way foreach, join, end; sync and async steps)
   started at once on one event loop, after one warm-up run: total seconds, and the worst
   event-loop lag seen by a probe that sleeps 1 ms in a loop. Targets: < 2 s, < 20 ms.
3. The same with 1,000 runs at once (300 with --quick): the most threads alive at any moment,
   the process's peak memory (max RSS) and the worst loop lag. Targets: at most 64 threads,
   < 300 MB, < 50 ms (idle runs hold no thread: issue 13, item 11).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

from aioflow import FlowSpec, Parameter, Run, current, run_flow, step

ROOT = Path(__file__).resolve().parent.parent


class ThreeStepFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.middle)

    @step
    def middle(self):
        self.x += 1
        self.next(self.end)

    @step
    def end(self):
        pass


class TenTaskFlow(FlowSpec):
    n = Parameter("n", default=0)

    @step
    def start(self):
        self.items = [self.n * 10 + k for k in range(7)]
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        await anyio.sleep(0)
        self.out = (self.input * 2, current.run_id)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out[0] for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def per_run(repeats: int, root: str) -> dict[str, float]:
    """Sequential `await run_flow` of ThreeStepFlow on this (running) loop."""
    await run_flow(ThreeStepFlow, root=root, quiet=True)  # the first: imports, graph, store
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run = await run_flow(ThreeStepFlow, root=root, quiet=True)
        times.append(time.perf_counter() - started)
    assert run.successful
    times.sort()
    return {
        "runs": repeats,
        "median_ms": statistics.median(times) * 1e3,
        "p90_ms": times[int(len(times) * 0.9)] * 1e3,
    }


async def concurrent(count: int, root: str) -> dict[str, float]:
    """`count` runs of TenTaskFlow at once, with a loop-lag probe."""
    await run_flow(TenTaskFlow, root=root, quiet=True)
    worst = 0.0
    threads = threading.active_count()
    running = True

    async def probe() -> None:
        nonlocal worst, threads
        while running:
            before = time.perf_counter()
            await anyio.sleep(0.001)
            worst = max(worst, time.perf_counter() - before - 0.001)
            threads = max(threads, threading.active_count())

    runs: dict[int, Run] = {}

    async def one(n: int) -> None:
        runs[n] = await run_flow(TenTaskFlow, root=root, quiet=True, n=n)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        async with anyio.create_task_group() as burst:
            for n in range(count):
                burst.start_soon(one, n)
        running = False
    total = time.perf_counter() - started
    totals = {n: run["join"].task.data.total for n, run in runs.items()}  # read after the clock
    assert totals == {n: sum(2 * (n * 10 + k) for k in range(7)) for n in range(count)}
    # This process ran nothing else: its peak RSS is the runs' (Linux reports KiB, macOS bytes).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {
        "runs": count,
        "total_s": total,
        "max_lag_ms": worst * 1e3,
        "max_threads": threads,
        "max_rss_mb": peak_mb,
    }


def child(kind: str, arg: int) -> None:
    """Run one measurement in this process and print it as JSON."""
    with tempfile.TemporaryDirectory() as root:
        work = per_run if kind == "per-run" else concurrent
        print(json.dumps(anyio.run(work, arg, root)))


def _fresh(kind: str, arg: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.embedding", "--child", kind, str(arg)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print the embedding figures against their targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    one = _fresh("per-run", 30 if args.quick else 200)
    many = _fresh("concurrent", 100)
    crowd = _fresh("concurrent", 300 if args.quick else 1000)
    print(f"{'benchmark':<62} {'figure':>10}  target")
    print(f"{'await run_flow, 3-step flow, running loop (median of ' + str(one['runs']) + ')':<62} "
          f"{one['median_ms']:>7.2f} ms  < 5 ms")  # fmt: skip
    print(f"{'  90th percentile':<62} {one['p90_ms']:>7.2f} ms")
    print(f"{'100 concurrent runs of a 10-task flow, one process: total':<62} "
          f"{many['total_s']:>8.3f} s  < 2 s")  # fmt: skip
    print(f"{'  maximum event-loop lag':<62} {many['max_lag_ms']:>7.1f} ms  < 20 ms")
    title = f"{crowd['runs']:,} concurrent runs of a 10-task flow, one process: threads"
    print(f"{title:<62} {crowd['max_threads']:>10}  <= 64")
    print(f"{'  peak memory (max RSS)':<62} {crowd['max_rss_mb']:>7.0f} MB  < 300 MB")
    print(f"{'  maximum event-loop lag':<62} {crowd['max_lag_ms']:>7.1f} ms  < 50 ms")
    print(f"{'  total':<62} {crowd['total_s']:>8.3f} s")


if __name__ == "__main__":
    main()
