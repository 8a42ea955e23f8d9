"""The client's figures (issue: client API, logs, tags and resume), each in a fresh process.

    python -m benchmarks.client [--quick]

1. Opening `Flow(name).latest_run` and reading one artifact, from a store holding 1,000 runs of
   a 100-task flow (the store is built first, by running the flow 1,000 times: real runs, a few
   at a time on one event loop). Cold: the first read of a fresh process, store opening
   included; warm: the median of later reads (new objects each time) in that process.
2. Listing every task of a 10,000-task run with `.successful` for each.
3. Resuming a 10,000-task foreach whose join failed: time until every clone is done, the whole
   resume, and which steps ran again (only the join, and the end after it).

`--quick` uses 50 runs and 1,000-task runs, to check that the script works.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from aioflow import Flow, FlowFailed, FlowSpec, Parameter, Run, resume_flow, run_flow, step

ROOT = Path(__file__).resolve().parent.parent


class HundredTaskFlow(FlowSpec):
    """start -> 97 foreach tasks -> join -> end: 100 tasks."""

    @step
    def start(self):
        self.items = list(range(97))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class WideFlow(FlowSpec):
    """start -> n foreach tasks -> join -> end; the join fails while $BENCH_FAIL_JOIN is 1."""

    n = Parameter("n", default=9_997)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        if os.environ.get("BENCH_FAIL_JOIN") == "1":
            raise RuntimeError("the join fails, to be resumed")
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


# -- workloads, each run by `--child` in its own process ------------------------------------------


async def build_store(root: str, runs: int) -> dict[str, Any]:
    """Run HundredTaskFlow `runs` times (four at a time) into `root`."""
    started = time.perf_counter()
    limit = anyio.Semaphore(4)

    async def one() -> None:
        async with limit:
            await run_flow(HundredTaskFlow, root=root, quiet=True)

    async with anyio.create_task_group() as tg:
        for _ in range(runs):
            tg.start_soon(one)
    return {"runs": runs, "build_s": time.perf_counter() - started}


def read_latest(root: str) -> dict[str, Any]:
    """Open Flow(name).latest_run and read one artifact: cold, then warm (median of 20)."""
    os.environ["AIOFLOW_ROOT"] = root

    def once() -> float:
        started = time.perf_counter()
        run = Flow("HundredTaskFlow").latest_run
        assert run is not None
        total = run["end"].task.data.total
        elapsed = time.perf_counter() - started
        assert total == sum(i * i for i in range(97))
        return elapsed

    cold = once()
    warm = statistics.median(once() for _ in range(20))
    return {"cold_ms": cold * 1e3, "warm_ms": warm * 1e3}


async def make_wide(root: str, n: int, fail_join: bool) -> dict[str, Any]:
    """One WideFlow run of `n` foreach tasks; with `fail_join` it fails at the join."""
    os.environ["BENCH_FAIL_JOIN"] = "1" if fail_join else "0"
    started = time.perf_counter()
    try:
        run = await run_flow(WideFlow, root=root, n=n, max_num_splits=n, quiet=True)
    except FlowFailed as exc:
        assert fail_join and exc.run is not None
        run = exc.run
    return {"run_id": run.id, "run_s": time.perf_counter() - started}


def list_tasks(root: str, run_id: str) -> dict[str, Any]:
    """Every task of a run, with `.successful` for each."""
    os.environ["AIOFLOW_ROOT"] = root
    started = time.perf_counter()
    run = Run(f"WideFlow/{run_id}")
    tasks = ok = 0
    for step_ in run:
        for task in step_:
            tasks += 1
            ok += task.successful
    return {"tasks": tasks, "successful": ok, "list_s": time.perf_counter() - started}


async def resume_wide(root: str, origin_run_id: str, n: int) -> dict[str, Any]:
    """Resume a WideFlow run whose join failed; time the clones and the whole resume."""
    from aioflow.events import TaskFinished, TaskStarted

    os.environ["BENCH_FAIL_JOIN"] = "0"
    reran: list[str] = []
    clones: list[float] = []

    def listen(event: object) -> None:
        if isinstance(event, TaskStarted):
            reran.append(event.step_name)
        elif isinstance(event, TaskFinished) and event.origin_pathspec is not None:
            clones.append(time.perf_counter())

    started = time.perf_counter()
    run = await resume_flow(
        WideFlow,
        root=root,
        origin_run_id=origin_run_id,
        max_num_splits=n,
        quiet=True,
        listeners=[listen],
    )
    total = time.perf_counter() - started
    assert run.successful
    return {
        "clones": len(clones),
        "clones_s": (max(clones) - started) if clones else 0.0,
        "resume_s": total,
        "reran": list(dict.fromkeys(reran)),  # in the order they started
    }


def child(kind: str, args: list[str]) -> None:
    """Run one workload in this process and print its figures as JSON."""
    if kind == "build":
        result = anyio.run(build_store, args[0], int(args[1]))
    elif kind == "read":
        result = read_latest(args[0])
    elif kind == "wide":
        result = anyio.run(make_wide, args[0], int(args[1]), args[2] == "fail")
    elif kind == "list":
        result = list_tasks(args[0], args[1])
    else:
        result = anyio.run(resume_wide, args[0], args[1], int(args[2]))
    print(json.dumps(result))


def fresh(*argv: str) -> dict[str, Any]:
    """`python -m benchmarks.client --child ...` in a new process; what it printed (JSON)."""
    env = {**os.environ, "AIOFLOW_USER": os.environ.get("AIOFLOW_USER", "bench")}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.client", "--child", *argv],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Print the client figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    runs = 50 if args.quick else 1_000
    n = 997 if args.quick else 9_997  # + start, join and end: 1,000 or 10,000 tasks
    with tempfile.TemporaryDirectory() as tmp:
        many = str(Path(tmp) / "many")
        built = fresh("build", many, str(runs))
        read = fresh("read", many)
        wide = str(Path(tmp) / "wide")
        done = fresh("wide", wide, str(n), "ok")
        listed = fresh("list", wide, done["run_id"])
        failed = fresh("wide", wide, str(n), "fail")
        resumed = fresh("resume", wide, failed["run_id"], str(n))
    tasks = n + 3
    assert listed["tasks"] == tasks == listed["successful"]
    rows = [
        (f"store: {runs:,} runs of a 100-task flow, built in", f"{built['build_s']:.1f} s", ""),
        ("Flow(name).latest_run + one artifact, cold (fresh process)",
         f"{read['cold_ms']:.1f} ms", "< 50 ms"),
        ("  the same, warm (median of 20)", f"{read['warm_ms']:.2f} ms", ""),
        (f"list the {tasks:,} tasks of a run with .successful", f"{listed['list_s']:.3f} s",
         "< 1 s"),
        (f"resume a {tasks:,}-task foreach whose join failed: clones",
         f"{resumed['clones_s']:.3f} s", "< 2 s"),
        ("  the whole resume", f"{resumed['resume_s']:.3f} s", ""),
        ("  tasks cloned", f"{resumed['clones']:,}", ""),
        ("  steps run again", ", ".join(resumed["reran"]), "join, end"),
    ]  # fmt: skip
    print(f"{'benchmark':<62} {'figure':>10}  target")
    for label, figure, target in rows:
        print(f"{label:<62} {figure:>10}  {target}".rstrip())


if __name__ == "__main__":
    main()
