"""The daily loop's figures (issue 18): `aioflow spin` and `aioflow gc`, as a user types them.

    python -m benchmarks.daily_loop [--quick]

1. `aioflow spin wide.py work --index 4998` (and `python wide.py spin join`) against a past run
   of a 10,000-task flow (benchmarks/flows.py's WideForeachFlow): wall time of the whole
   command, process start included, the median of 5 (target under 0.5 s), beside the wall
   time of `aioflow --version`, which is the command line's start alone.
2. `aioflow gc --keep-last 100` over a store of 1,000 runs of a 100-task flow, each run with
   values of its own (a 270 KB blob file and 98 small blobs), deleting 900: wall time of the
   command (target under 10 s), and the store's size before and after, as gc prints them and
   as measured here.

`--quick` uses a 1,000-task flow and 100 runs (deleting 90), to check that the script works.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio

from aioflow import run_flow
from aioflow.cli.gc_commands import folder_size
from aioflow.loader import load_flow

ROOT = Path(__file__).resolve().parent.parent

#: The benchmarks' wide foreach (benchmarks/flows.py) as a flow file of its own, for `spin`.
WIDE = """
from benchmarks.flows import WideForeachFlow


class WideFlow(WideForeachFlow):
    \"\"\"start -> n trivial tasks -> join -> end.\"\"\"


if __name__ == "__main__":
    WideFlow()
"""

HUNDRED = """
from aioflow import FlowSpec, Parameter, step


class HundredFlow(FlowSpec):
    seed = Parameter("seed", default=0)

    @step
    def start(self):
        self.payload = str(self.seed).encode() * (270_000 // len(str(self.seed)))
        self.items = list(range(97))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.value = (self.seed, self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _aioflow() -> list[str]:
    beside = Path(sys.executable).with_name("aioflow")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "aioflow"]


def _wall(argv: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the flow file imports `benchmarks`
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return elapsed, done.stdout + done.stderr


def bench_spin(folder: Path, n: int) -> list[tuple[str, str, str]]:
    """Spin a foreach child and the join of a past `n + 3`-task run, 5 times each."""
    flow_file = folder / "wide.py"
    flow_file.write_text(textwrap.dedent(WIDE))
    root = folder / "wide-store"
    flow = load_flow(flow_file)
    anyio.run(lambda: run_flow(flow, root=root, n=n, max_num_splits=n, quiet=True))
    index = str(n // 2)
    child = [*_aioflow(), "spin", "wide.py", "work", "--index", index, "--root", str(root)]
    join = [sys.executable, "wide.py", "spin", "join", "--root", str(root)]
    rows = []
    started = [_wall([*_aioflow(), "--version"], folder)[0] for _ in range(5)]
    rows.append(("  aioflow --version (the command line's start alone)",
                 f"{statistics.median(started) * 1e3:.0f} ms", ""))  # fmt: skip
    for label, argv in ((f"aioflow spin wide.py work --index {index}", child),
                        ("python wide.py spin join", join)):  # fmt: skip
        times = [_wall(argv, folder)[0] for _ in range(5)]
        rows.append((f"  {label}", f"{statistics.median(times) * 1e3:.0f} ms", "< 500 ms"))
    return rows


async def _build(flow_file: Path, root: Path, runs: int) -> None:
    flow = load_flow(flow_file)
    limit = anyio.Semaphore(4)

    async def one(seed: int) -> None:
        async with limit:
            await run_flow(flow, root=root, seed=seed, quiet=True)

    async with anyio.create_task_group() as tg:
        for seed in range(1, runs + 1):
            tg.start_soon(one, seed)


def bench_gc(folder: Path, runs: int) -> list[tuple[str, str, str]]:
    """Build `runs` runs of a 100-task flow, then `aioflow gc --keep-last runs/10`."""
    flow_file = folder / "hundred.py"
    flow_file.write_text(textwrap.dedent(HUNDRED))
    root = folder / "many-store"
    started = time.perf_counter()
    anyio.run(_build, flow_file, root, runs)
    built = time.perf_counter() - started
    keep = runs // 10
    before = folder_size(root)
    elapsed, out = _wall([*_aioflow(), "gc", "--keep-last", str(keep), "--root", str(root)], folder)
    after = folder_size(root)
    printed = re.search(r"^Store .*$", out, re.M)
    deleted = re.search(r"^Deleted (\d+) runs", out, re.M)
    return [
        (f"  store of {runs:,} runs of a 100-task flow, built in", f"{built:.1f} s", ""),
        (f"  aioflow gc --keep-last {keep} (deleted {deleted.group(1) if deleted else '?'} runs)",
         f"{elapsed:.2f} s", "< 10 s"),
        ("  store size before -> after (measured here)",
         f"{before / 1e6:.1f} -> {after / 1e6:.1f} MB", f"about {keep / runs:.0%} left"),
        (f"  gc printed: {printed.group(0) if printed else '?'}", "", ""),
    ]  # fmt: skip


def main() -> None:
    """Print the daily loop's figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args()
    n = 997 if args.quick else 9_997  # + start, join and end: 1,000 or 10,000 tasks
    runs = 100 if args.quick else 1_000
    os.environ.setdefault("AIOFLOW_USER", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = [(f"spin a step of a past {n + 3:,}-task run (wall, process start included,"
                 " median of 5)", "", "")]  # fmt: skip
        rows += bench_spin(folder, n)
        rows.append(("gc", "", ""))
        rows += bench_gc(folder, runs)
    print(f"{'benchmark':<78} {'figure':>16}  target")
    for label, figure, target in rows:
        print(f"{label:<78} {figure:>16}  {target}".rstrip())


if __name__ == "__main__":
    main()
