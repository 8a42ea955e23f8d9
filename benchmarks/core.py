"""The core engine's figures (issue: core engine), each measured in a fresh process.

    python -m benchmarks.core [--quick]

1. Per-task overhead of a trivial step in a 10,000-wide foreach (whole run / N).
2. A 200 MB artifact carried untouched through 10 steps and a 4-way branch with
   merge_artifacts: store size, per untouched step cost, peak memory.
3. `aioflow run` of the 3-step LinearFlow, process start included (median of 5, target 100 ms),
   against a bare `python -c pass` and a floor of aioflow's own dependencies (click imported,
   `anyio.run` of nothing), measured alternately in the same run so that load slows all alike.
4. `import aioflow` in a fresh interpreter, the interpreter's own start-up excluded (median of 10).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _child(argv: list[str]) -> dict[str, float]:
    """Run `python -m benchmarks.core --child ...` and return what it printed (JSON)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.core", "--child", *argv],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _store_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


async def _foreach(n: int, root: str) -> dict[str, float]:
    from aioflow import run_flow

    from .flows import WideForeachFlow

    started = time.perf_counter()
    run = await run_flow(WideForeachFlow, n=n, quiet=True, root=root, max_num_splits=n)
    total = time.perf_counter() - started
    assert run["join"].task.data.count == n
    return {"n": n, "total_s": total, "per_task_us": total / n * 1e6}


async def _big(size_mb: int, root: str) -> dict[str, float]:
    from aioflow import run_flow
    from aioflow.events import TaskFinished

    from .flows import BigArtifactFlow

    durations: dict[str, float] = {}

    def listen(event: object) -> None:
        if isinstance(event, TaskFinished):
            durations[event.step_name] = event.duration

    started = time.perf_counter()
    run = await run_flow(
        BigArtifactFlow, size_mb=size_mb, quiet=True, root=root, listeners=[listen]
    )
    total = time.perf_counter() - started
    assert run["end"].task.data.size == size_mb * 1024 * 1024
    untouched = [d for step, d in durations.items() if step not in ("start", "end")]
    return {
        "size_mb": size_mb,
        "total_s": total,
        "max_untouched_step_ms": max(untouched) * 1e3,
        "mean_untouched_step_ms": statistics.mean(untouched) * 1e3,
        "store_mb": _store_size(Path(root)) / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(argv: list[str]) -> None:
    """Run one workload in this process and print its figures as JSON."""
    kind, arg, root = argv[0], int(argv[1]), argv[2]
    work = _foreach if kind == "foreach" else _big
    print(json.dumps(anyio.run(work, arg, root)))


#: The least any `aioflow run` costs with aioflow's dependencies as they are: the interpreter,
#: click (which parses the command line) and an anyio event loop on asyncio (which runs it).
DEPENDENCY_FLOOR = "import click, anyio; anyio.run(anyio.sleep, 0)"


def startup_commands() -> dict[str, list[str]]:
    """The three commands the start-up figures compare: `aioflow run examples/linear.py
    --quiet` (the console script a user's install has), `python -c pass` and the floor."""
    beside = Path(sys.executable).with_name("aioflow")
    exe = str(beside) if beside.exists() else shutil.which("aioflow")
    cmd = [exe] if exe else [sys.executable, "-m", "aioflow"]
    return {
        "run": [*cmd, "run", str(ROOT / "examples" / "linear.py"), "--quiet"],
        "pass": [sys.executable, "-c", "pass"],
        "floor": [sys.executable, "-c", DEPENDENCY_FLOOR],
    }


def linear_cli_seconds(repeats: int) -> dict[str, list[float]]:
    """Wall times of the `startup_commands`, process start included, the three alternating.

    One run before the measured ones creates the store and the bytecode caches, which a user's
    later runs find too.
    """
    commands = startup_commands()
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AIOFLOW_ROOT": tmp}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's runs load cached bytecode
        for i in range(repeats + 1):
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env)
                if i:
                    times[name].append(time.perf_counter() - started)
    return times


def import_seconds(repeats: int) -> tuple[float, float]:
    """Medians of the wall time of `python -c "import aioflow"` and of `python -c pass`.

    The two alternate, so that a burst of load on the machine slows both alike.
    """
    times: dict[str, list[float]] = {"import aioflow": [], "pass": []}
    for _ in range(repeats):
        for code, runs in times.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
            runs.append(time.perf_counter() - started)
    return statistics.median(times["import aioflow"]), statistics.median(times["pass"])


def main() -> None:
    """Print the core figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    n = 200 if args.quick else 10_000
    size = 8 if args.quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        foreach = _child(["foreach", str(n), str(Path(tmp) / "f")])
        big = _child(["big", str(size), str(Path(tmp) / "b")])
    linear = linear_cli_seconds(2 if args.quick else 5)
    import_repeats = 3 if args.quick else 10
    import_s, startup_s = import_seconds(import_repeats)
    print(f"{'benchmark':<58} {'figure':>12}  target")
    print(f"{'foreach of ' + str(n) + ' trivial tasks: whole run':<58} "
          f"{foreach['total_s']:>10.3f} s  < 2 s")  # fmt: skip
    print(f"{'  per-task overhead':<58} {foreach['per_task_us']:>9.1f} us  <= 100 us")
    print(f"{str(size) + ' MB artifact through 10 steps + 4-way branch: run':<58} "
          f"{big['total_s']:>10.3f} s")  # fmt: skip
    print(f"{'  store size / artifact size':<58} {big['store_mb'] / size:>11.3f}x  <= 1.05x")
    print(f"{'  slowest untouched step':<58} {big['max_untouched_step_ms']:>9.2f} ms  < 5 ms")
    print(f"{'  mean untouched step':<58} {big['mean_untouched_step_ms']:>9.2f} ms")
    print(f"{'  peak memory / artifact size':<58} {big['peak_rss_mb'] / size:>11.2f}x  < 2x")
    run_s, pass_s, floor_s = (statistics.median(linear[k]) for k in ("run", "pass", "floor"))
    print(f"{'aioflow run examples/linear.py (median of ' + str(len(linear['run'])) + ')':<58} "
          f"{run_s * 1e3:>9.1f} ms  < 100 ms")  # fmt: skip
    print(f"{'  python -c pass, the bare interpreter (same run)':<58} {pass_s * 1e3:>9.1f} ms")
    print(f"{'  aioflow run / bare interpreter':<58} {run_s / pass_s:>11.1f}x")
    print(f"{'  dependency floor: click imported, anyio.run of nothing':<58} "
          f"{floor_s * 1e3:>9.1f} ms")  # fmt: skip
    print(f"{'import aioflow, fresh interpreter (median of ' + str(import_repeats) + ')':<58} "
          f"{(import_s - startup_s) * 1e3:>9.1f} ms")  # fmt: skip
    print(f"{'  interpreter start-up alone (not included above)':<58} "
          f"{startup_s * 1e3:>9.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
