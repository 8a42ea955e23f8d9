"""The executor figures (issue: where steps run), each workload in a fresh process.

    python -m benchmarks.executors [--quick]

1. 8 CPU-bound branches of ~1 s: wall time on the process executor vs the thread executor.
2. Round trip of a trivial task through a warm process worker.
3. 1,000 async steps that each sleep 100 ms, with --max-workers 1000.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent


def _child(argv: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.executors", "--child", *argv],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _cpu(executor: str, seconds: float, root: str) -> dict[str, float]:
    from aioflow import run_flow

    from .flows import CpuBranchFlow, iterations_per_second

    iterations = int(iterations_per_second() * seconds)
    started = time.perf_counter()
    await run_flow(CpuBranchFlow, iterations=iterations, executor=executor, quiet=True, root=root)
    return {"wall_s": time.perf_counter() - started}


async def _round_trip(repeats: int, root: str) -> dict[str, float]:
    """Time one process task's attempt inside a run whose worker is already warm."""
    # Drive a ProcessLane directly, as the scheduler does, to time the round trip alone.
    from aioflow import run_flow
    from aioflow.events import TaskFinished, TaskStarted
    from aioflow.runtime.graphs import linted_graph
    from aioflow.runtime.process_worker import TaskRequest, WorkerSetup
    from aioflow.runtime.processes import ProcessLane, pickle_flow

    from .flows import TrivialProcessFlow

    run = await run_flow(TrivialProcessFlow, quiet=True, root=root)
    env_fields = {
        "flow_name": "TrivialProcessFlow",
        "run_id": run.id,
        "username": "bench",
        "namespace": "user:bench",
        "tags": frozenset(),
        "parameter_names": (),
        "readonly": frozenset(),
        "base_manifest": dict(run["start"].task.manifest),
        "origin_run_id": None,
        "max_num_splits": 100,
        "catch_vars": {},
    }
    flow_pickle = pickle_flow(TrivialProcessFlow, linted_graph(TrivialProcessFlow))
    setup = WorkerSetup(flow_pickle, root, env_fields)
    lane = ProcessLane(setup, 1)
    request = TaskRequest(
        task_id=99, step="work", attempt=0, frames=(), parents=(1,),
        manifest=dict(run["start"].task.manifest), inputs=None, inline={},
    )  # fmt: skip
    try:
        await lane.run(request)  # warm up: start the worker, load the flow
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            await lane.run(request)
            times.append(time.perf_counter() - started)
    finally:
        lane.close()
    del TaskFinished, TaskStarted
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3}


async def _async_sleep(n: int, root: str) -> dict[str, float]:
    from aioflow import run_flow

    from .flows import AsyncSleepFlow

    started = time.perf_counter()
    run = await run_flow(
        AsyncSleepFlow, n=n, delay=0.1, quiet=True, root=root, max_workers=n, max_num_splits=n
    )
    assert run["join"].task.data.count == n
    return {"wall_s": time.perf_counter() - started}


def child(argv: list[str]) -> None:
    """Run one workload here and print its figures as JSON."""
    kind, arg, root = argv
    if kind == "cpu-thread":
        result = anyio.run(_cpu, "thread", float(arg), root)
    elif kind == "cpu-process":
        result = anyio.run(_cpu, "process", float(arg), root)
    elif kind == "round-trip":
        result = anyio.run(_round_trip, int(arg), root)
    else:
        result = anyio.run(_async_sleep, int(arg), root)
    print(json.dumps(result))


def main() -> None:
    """Print the executor figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    seconds = 0.1 if args.quick else 1.0
    n = 50 if args.quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        thread = _child(["cpu-thread", str(seconds), str(Path(tmp) / "t")])
        process = _child(["cpu-process", str(seconds), str(Path(tmp) / "p")])
        trip = _child(["round-trip", "20" if args.quick else "200", str(Path(tmp) / "r")])
        sleep = _child(["async", str(n), str(Path(tmp) / "a")])
    print(f"{'benchmark':<62} {'figure':>10}  target")
    print(f"{f'8 CPU-bound branches x {seconds:g} s, thread executor':<62} "
          f"{thread['wall_s']:>8.2f} s")  # fmt: skip
    print(f"{f'8 CPU-bound branches x {seconds:g} s, process executor':<62} "
          f"{process['wall_s']:>8.2f} s")  # fmt: skip
    ratio = process["wall_s"] / thread["wall_s"]
    print(f"{'  process / thread wall time':<62} {ratio:>9.2f}x  <= 0.6x")
    print(f"{'trivial process task round trip, warm worker (median)':<62} "
          f"{trip['median_ms']:>7.3f} ms  < 1 ms")  # fmt: skip
    print(f"{f'{n} async steps sleeping 100 ms, --max-workers {n}':<62} "
          f"{sleep['wall_s']:>8.2f} s  < 1 s")  # fmt: skip


if __name__ == "__main__":
    main()
