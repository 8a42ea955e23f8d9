"""Services and notebooks pay no more than the command line (issue 19), each way in fresh
processes.

    python -m benchmarks.host [--n 10000] [--objects 1000000] [--repeats 3]

The same foreach of N trivial tasks (`workloads/foreach_aioflow.py`) is run three ways, and
each way's per-task CPU time is (CPU(N) - CPU(1)) / (N - 1), so start-up and imports cancel:

1. `aioflow run` (the command line), the CPU time of its process;
2. `run_flow` in a host process that holds many live objects, as a service's caches or a
   notebook's data do, the CPU time of the runs inside that process (after a warm-up run);
3. `run_flow` in a bare process, for reference.

Target: the host within 1.2x of the command line. Without the runtime's collector guard
(`runtime/collector.py`), the host's full garbage collections walk its objects again and again
while the run allocates; CPU time stays meaningful on a loaded machine, where wall time does
not, so it is what is compared (wall time is printed beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "benchmarks" / "workloads" / "foreach_aioflow.py"


def _cli(n: int, root: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `aioflow run` of the foreach."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "aioflow", "run", str(FLOW), "--n", str(n), "--quiet",
         "--max-num-splits", str(max(n, 1)), "--root", root],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def _in_process(n: int, objects: int) -> dict[str, float]:
    """In this process: hold `objects` live objects, warm up, then time a run of 1 and of N."""
    import anyio

    from aioflow import run_flow
    from aioflow.loader import load_flow

    held = [{"id": i, "tags": [i]} for i in range(objects)]  # what a service keeps alive
    flow = load_flow(FLOW)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="aioflow-bench-host-") as root:

        async def runs() -> None:
            await run_flow(flow, root=root, quiet=True, n=1)  # imports, the store, the graph
            for label, size in (("one", 1), ("many", n)):
                cpu, wall = time.process_time(), time.perf_counter()
                await run_flow(flow, root=root, quiet=True, n=size, max_num_splits=max(n, 1))
                figures[f"{label}_cpu"] = time.process_time() - cpu
                figures[f"{label}_wall"] = time.perf_counter() - wall

        anyio.run(runs)
    figures["held"] = len(held)
    return figures


def _fresh(n: int, objects: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.host", "--child", str(n), str(objects)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _per_task(one: float, many: float, n: int) -> float:
    return (many - one) / (n - 1)


def main() -> None:
    """Print each way's per-task CPU time and the host's ratio to the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="foreach width (default 10,000)")
    parser.add_argument("--objects", type=int, default=1_000_000, help="the host's live objects")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way (median)")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_in_process(*args.child)))
        return
    n = args.n
    ways: dict[str, list[tuple[float, float]]] = {"cli": [], "host": [], "bare": []}
    for _ in range(args.repeats):  # interleaved, so a busy moment does not fall on one way
        with tempfile.TemporaryDirectory(prefix="aioflow-bench-host-") as root:
            (cpu1, wall1), (cpun, walln) = _cli(1, root), _cli(n, root)
        ways["cli"].append((_per_task(cpu1, cpun, n), _per_task(wall1, walln, n)))
        for way, objects in (("host", args.objects), ("bare", 0)):
            f = _fresh(n, objects)
            ways[way].append(
                (_per_task(f["one_cpu"], f["many_cpu"], n),
                 _per_task(f["one_wall"], f["many_wall"], n))
            )  # fmt: skip
    cpu = {way: statistics.median(c for c, _ in runs) for way, runs in ways.items()}
    wall = {way: statistics.median(w for _, w in runs) for way, runs in ways.items()}
    print(f"foreach of {n:,} tasks, per task (median of {args.repeats}; CPU, then wall)")
    titles = {
        "cli": "aioflow run (command line)",
        "host": f"run_flow in a host holding {args.objects:,} live objects",
        "bare": "run_flow in a bare process",
    }
    for way, title in titles.items():
        print(f"  {title:<58} {cpu[way] * 1e6:7.1f} us  {wall[way] * 1e6:7.1f} us")
    ratio = cpu["host"] / cpu["cli"]
    print(f"  {'host / command line, CPU per task':<58} {ratio:7.2f}x     target <= 1.2x")
    print(f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
