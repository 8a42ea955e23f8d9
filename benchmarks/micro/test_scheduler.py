"""Scheduling: a thread-lane round trip, a whole minimal run, and the per-task cost of a foreach."""

from __future__ import annotations

import asyncio
import time

import anyio

from aioflow import FlowSpec, run_flow_sync, step
from aioflow.runtime.executors import ThreadLane

from ..flows import WideForeachFlow as FanFlow


class MinimalFlow(FlowSpec):
    """start -> end: the fixed cost of a run."""

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


async def _one_by_one(submit, n=1000):
    for _ in range(n):
        await submit(int)


async def _all_at_once(submit, n=1000):
    await asyncio.gather(*(submit(int) for _ in range(n)))


def _lane_rounds(benchmark, drive):
    """Time `drive(lane.run)` over 1,000 no-op jobs; report microseconds per job."""

    async def go():
        lane = ThreadLane(16)
        await lane.run(int)  # the lane's first thread starts outside the timed part
        started = time.perf_counter()
        await drive(lane.run)
        elapsed = time.perf_counter() - started
        lane.close()
        return elapsed

    per_job = []
    benchmark.pedantic(lambda: per_job.append(anyio.run(go)), rounds=10, warmup_rounds=1)
    benchmark.extra_info["us_per_job"] = min(per_job) / 1000 * 1e6


def test_thread_lane_one_by_one(benchmark):
    """One sync body handed to a worker thread and back, 1,000 in a row: a linear flow's case,
    where each hand-off waits for a thread to wake up (latency)."""
    _lane_rounds(benchmark, _one_by_one)


def test_thread_lane_all_at_once(benchmark):
    """1,000 sync bodies queued at once, a foreach's case: jobs per second (throughput)."""
    _lane_rounds(benchmark, _all_at_once)


def test_to_thread_all_at_once_baseline(benchmark):
    """For scale: the same 1,000 no-ops through asyncio.to_thread."""

    async def go():
        await _all_at_once(asyncio.to_thread)

    benchmark.pedantic(lambda: asyncio.run(go()), rounds=10, warmup_rounds=1)


def test_minimal_run(benchmark, tmp_path):
    """run_flow of start -> end in-process: run row, two tasks, final commit."""
    root = tmp_path / "store"
    benchmark(run_flow_sync, MinimalFlow, root=root, quiet=True)


def test_foreach_1000_per_task(benchmark, tmp_path):
    """run_flow of a 1,000-wide foreach of trivial tasks; extra_info has the cost per task."""
    root = tmp_path / "store"

    def run():
        return run_flow_sync(FanFlow, n=1000, root=root, quiet=True, max_num_splits=1000)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["us_per_task"] = benchmark.stats.stats.mean / 1000 * 1e6
