"""The executor figures (issue: where steps run), each workload in a fresh process.

    python -m benchmarks.executors [--quick]

1. 8 CPU-bound branches of ~1 s: wall time on the process executor vs the thread executor, and
   the process executor's against the ideal: one branch's body timed alone in the same process
   (the lesser of a time before and one after the run), times the rounds 8 branches take on the
   machine's cores; beside it, the same 8 bodies on a bare `ProcessPoolExecutor`, and the
   same flow with empty bodies in a fresh process (what a run adds to its bodies, measured in a
   fraction of a second, which a busy machine disturbs much less).
2. Round trip of a trivial task through a warm process worker, beside a bare
   `ProcessPoolExecutor`'s and a raw pipe's measured in the same process.
3. 1,000 async steps that each sleep 100 ms, with --max-workers 1000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent


def _child(argv: list[str]) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.executors", "--child", *argv],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


#: The CPU-bound workload's branches, and the cores its process executor gets.
BRANCHES = 8
CORES = min(BRANCHES, os.cpu_count() or 1)


def _body_alone(iterations: int) -> float:
    """Seconds one branch's body takes here, alone."""
    from .flows import burn

    started = time.perf_counter()
    burn(iterations)
    return time.perf_counter() - started


def _bare_pool(iterations: int) -> float:
    """Seconds the 8 bodies take on a bare ProcessPoolExecutor of CORES workers (aioflow's
    start method; its server is running already)."""
    from aioflow.runtime.processes import _context

    from .flows import burn

    started = time.perf_counter()
    with ProcessPoolExecutor(CORES, mp_context=_context()) as pool:
        list(pool.map(burn, [iterations] * BRANCHES))
    return time.perf_counter() - started


async def _cpu(executor: str, seconds: float, root: str) -> dict[str, float]:
    from aioflow import run_flow

    from .flows import CpuBranchFlow, iterations_per_second

    iterations = int(iterations_per_second() * seconds) if seconds else 0
    before = _body_alone(iterations) if executor == "process" else 0.0
    started = time.perf_counter()
    await run_flow(CpuBranchFlow, iterations=iterations, executor=executor, quiet=True, root=root)
    wall = time.perf_counter() - started
    if executor != "process" or not iterations:
        return {"wall_s": wall}
    # The least of two: the body undisturbed, as far as this machine allows.
    single = min(before, _body_alone(iterations))
    ideal = single * math.ceil(BRANCHES / CORES)
    return {"wall_s": wall, "single_s": single, "ideal_s": ideal, "pool_s": _bare_pool(iterations)}


# -- round trips to a warm worker, three ways (issue 19) -------------------------------------------
#
# aioflow: one trivial task's attempt through a `ProcessLane` whose worker is warm, timed on the
# event loop from the request to the reply back on the loop, as the scheduler sees it; a bare
# `ProcessPoolExecutor` of one worker (the same start method), a trivial function submitted
# from the loop and awaited there (`asyncio.wrap_future`); a raw pipe: a few bytes sent to a
# process that echoes them, blocking `send_bytes` and `recv_bytes`, no event loop: the physical
# floor. The three take turns in rounds, so what noise the machine has is shared.

ROUNDS = 10


def trivial() -> int:
    return 0


def echo(conn: Connection) -> None:
    """Send back what arrives, until end-of-file."""
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


async def _timed(call: Callable[[], Awaitable[Any]], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


def _pipe_times(conn: Connection, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        conn.send_bytes(b"ping")
        conn.recv_bytes()
        times.append(time.perf_counter() - started)
    return times


async def _lane(root: str) -> tuple[Any, Any]:
    """A ProcessLane of one worker for a stored TrivialProcessFlow run, and its request."""
    from aioflow import run_flow
    from aioflow.runtime.graphs import linted_graph
    from aioflow.runtime.process_worker import TaskRequest, WorkerSetup
    from aioflow.runtime.processes import ProcessLane, pickle_flow

    from .flows import TrivialProcessFlow

    run = await run_flow(TrivialProcessFlow, quiet=True, root=root)
    manifest = dict(run["start"].task.manifest)
    env_fields = {
        "flow_name": "TrivialProcessFlow",
        "run_id": run.id,
        "username": "bench",
        "namespace": "user:bench",
        "tags": frozenset(),
        "parameter_names": (),
        "readonly": frozenset(),
        "base_manifest": manifest,
        "origin_run_id": None,
        "max_num_splits": 100,
        "catch_vars": {},
    }
    flow_pickle = pickle_flow(TrivialProcessFlow, linted_graph(TrivialProcessFlow))
    lane = ProcessLane(WorkerSetup(flow_pickle, root, env_fields), 1)
    request = TaskRequest(
        task_id=99, step="work", attempt=0, frames=(), parents=(1,),
        manifest=manifest, inputs=None, inline={},
    )  # fmt: skip
    return lane, request


def _figures(times: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3}


async def _round_trip(repeats: int, root: str) -> dict[str, dict[str, float]]:
    """Each way's median and minimum round trip, in ms, over ROUNDS rounds of `repeats`."""
    from aioflow.runtime.processes import _context

    context = _context()  # the start method aioflow's workers use
    lane, request = await _lane(root)
    pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
    loop = asyncio.get_running_loop()
    ours, echoing = context.Pipe(duplex=True)
    echoer = context.Process(target=echo, args=(echoing,))
    echoer.start()
    echoing.close()
    times: dict[str, list[float]] = {"aioflow": [], "pool": [], "pipe": []}
    try:
        await lane.run(request)  # warm up: start the worker, load the flow
        await asyncio.wrap_future(pool.submit(trivial))
        _pipe_times(ours, 10)
        for _ in range(ROUNDS):
            times["aioflow"] += await _timed(lambda: lane.run(request), repeats)
            times["pool"] += await _timed(
                lambda: asyncio.wrap_future(pool.submit(trivial), loop=loop), repeats
            )
            times["pipe"] += _pipe_times(ours, repeats)
    finally:
        await lane.aclose()
        pool.shutdown()
        ours.close()
        echoer.join()
    return {name: _figures(values) for name, values in times.items()}


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
        process["empty_s"] = _child(["cpu-process", "0", str(Path(tmp) / "e")])["wall_s"]
        trips = _child(["round-trip", "10" if args.quick else "100", str(Path(tmp) / "r")])
        sleep = _child(["async", str(n), str(Path(tmp) / "a")])
    _print(seconds, n, thread, process, trips, sleep)


def _print(seconds: float, n: int, thread: Any, process: Any, trips: Any, sleep: Any) -> None:
    def row(label: str, figure: str, target: str = "") -> None:
        print(f"{label:<62} {figure:>10}  {target}".rstrip())

    row("benchmark", "figure", "target")
    row(f"{BRANCHES} CPU-bound branches x {seconds:g} s, thread executor",
        f"{thread['wall_s']:.2f} s")  # fmt: skip
    row(f"{BRANCHES} CPU-bound branches x {seconds:g} s, process executor",
        f"{process['wall_s']:.2f} s")  # fmt: skip
    row("  one branch's body alone, in the same process", f"{process['single_s']:.2f} s")
    rounds = math.ceil(BRANCHES / CORES)
    row(f"  process executor / ideal ({rounds} x {process['single_s']:.2f} s on {CORES} cores)",
        f"{process['wall_s'] / process['ideal_s']:.3f}x", "<= 1.1x")  # fmt: skip
    row("  bare ProcessPoolExecutor, the same bodies / ideal",
        f"{process['pool_s'] / process['ideal_s']:.3f}x")  # fmt: skip
    # What the run adds to the bodies, measured apart: a short run that a busy machine
    # disturbs far less than 4 s of two busy cores.
    row("  the same flow with empty bodies, fresh process (start-up)",
        f"{process['empty_s']:.3f} s")  # fmt: skip
    row("  (ideal + that) / ideal: what the run adds to its bodies",
        f"{(process['ideal_s'] + process['empty_s']) / process['ideal_s']:.3f}x",
        "<= 1.1x")  # fmt: skip
    row("  process / thread wall time", f"{process['wall_s'] / thread['wall_s']:.2f}x", "<= 0.6x")
    ours, pool, pipe = trips["aioflow"], trips["pool"], trips["pipe"]
    row("trivial process task round trip, warm worker (median)",
        f"{ours['median_ms']:.3f} ms", "<= 0.12 ms")  # fmt: skip
    row("  bare ProcessPoolExecutor round trip, from the loop (median)",
        f"{pool['median_ms']:.3f} ms")  # fmt: skip
    row("  raw pipe round trip, blocking, no loop (median)", f"{pipe['median_ms']:.3f} ms")
    row("  aioflow / ProcessPoolExecutor", f"{ours['median_ms'] / pool['median_ms']:.2f}x")
    row("  aioflow / raw pipe", f"{ours['median_ms'] / pipe['median_ms']:.2f}x")
    row(f"{n} async steps sleeping 100 ms, --max-workers {n}", f"{sleep['wall_s']:.2f} s", "< 1 s")


if __name__ == "__main__":
    main()
