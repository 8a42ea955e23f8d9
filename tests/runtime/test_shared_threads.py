"""Idle runs hold no thread (issue 13, item 11): sync bodies of every run share the process's
bounded worker threads, and a job whose caller stopped waiting gives its place up."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import FlowSpec, step
from aioflow.api import run_flow
from aioflow.runtime.bridge import LoopInbox
from aioflow.runtime.executors import ThreadLane, thread_lane
from aioflow.runtime.executors.thread_lane import MAX_THREADS, SharedThreads, shared_threads

RUNS = 40


class Waiting:
    arrived = 0
    all_arrived: anyio.Event
    release: anyio.Event


class IdleFlow(FlowSpec):
    @step
    def start(self):  # a sync step: runs in a worker thread
        self.x = 1
        self.next(self.wait)

    @step
    async def wait(self):  # the run idles here, on the loop
        Waiting.arrived += 1
        if Waiting.arrived == RUNS:
            Waiting.all_arrived.set()
        await Waiting.release.wait()
        self.next(self.end)

    @step
    def end(self):
        pass


def worker_threads() -> int:
    return sum(t.name.startswith("aioflow-worker-") for t in threading.enumerate())


async def test_idle_runs_hold_no_worker_thread(aioflow_root: Path) -> None:
    Waiting.arrived = 0
    Waiting.all_arrived, Waiting.release = anyio.Event(), anyio.Event()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(RUNS):
                tg.start_soon(lambda: run_flow(IdleFlow, root=aioflow_root, quiet=True))
            await Waiting.all_arrived.wait()
            # Every run ran a sync step and now idles: one thread each would be RUNS threads.
            assert worker_threads() <= min(MAX_THREADS, RUNS // 2)
            Waiting.release.set()


def _block(gate: threading.Event) -> str:
    gate.wait(timeout=30)
    return "late"


async def test_a_cancelled_wait_gives_the_lane_slot_to_the_next_job() -> None:
    lane = ThreadLane(1)
    gate = threading.Event()
    try:
        with anyio.move_on_after(0.05):  # the caller stops waiting (a @timeout does this)
            await lane.run(_block, gate)
        # The blocked job still holds its thread, but not the lane's only slot.
        with anyio.fail_after(20):
            assert await lane.run(sum, [1, 2]) == 3
    finally:
        gate.set()
        lane.close()


@pytest.mark.parametrize("jobs", [1, 5])
async def test_a_lane_runs_at_most_its_limit_at_once(jobs: int) -> None:
    lane = ThreadLane(2)
    running = 0
    most = 0
    lock = threading.Lock()
    gate = threading.Event()

    def job() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait(timeout=0.02)  # a short block: the pool may grow meanwhile
        with lock:
            running -= 1

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(jobs):
                    tg.start_soon(lane.run, job)
    finally:
        lane.close()
    assert most <= 2


async def test_worker_threads_are_started_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Thread.start() waits for the new thread to run: on a busy machine, milliseconds that the
    # loop must not wait through (with 1,000 runs, it held the loop up to 130 ms).
    workers_started = 0
    started_on_loop: list[str] = []
    loop_thread = threading.get_ident()
    start = threading.Thread.start

    def recording_start(thread: threading.Thread) -> None:
        nonlocal workers_started
        workers_started += thread.name.startswith("aioflow-worker-")
        # Any thread, a helper's own too; but the one starter thread, started once per process.
        if threading.get_ident() == loop_thread and thread.name != "aioflow-thread-starter":
            started_on_loop.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    before = shared_threads().threads
    jobs = min(MAX_THREADS, before + 3)
    together = threading.Barrier(jobs, timeout=30)  # every job must run at once: the pool grows
    lane = ThreadLane(jobs)
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(jobs):
                    tg.start_soon(lane.run, together.wait)
    finally:
        lane.close()
    assert workers_started >= jobs - before
    assert started_on_loop == []


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> SharedThreads:
    """A pool of its own with a single worker thread, so jobs run one after another."""
    pool = SharedThreads(max_threads=1)
    monkeypatch.setattr(thread_lane, "_shared", pool)
    return pool


async def test_results_of_a_burst_of_jobs_come_back_with_one_wake_up(
    one_thread: SharedThreads, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each wake-up of the loop is a socket write and a hand-over of the GIL: a thread that
    # takes the next job at once leaves its result for the loop without one.
    counts = {"woken": 0, "quiet": 0}
    put, put_quiet = LoopInbox.put, LoopInbox.put_quiet

    def counting_put(inbox: LoopInbox[Any], item: Any) -> None:
        counts["woken"] += 1
        put(inbox, item)

    def counting_put_quiet(inbox: LoopInbox[Any], item: Any) -> None:
        counts["quiet"] += 1
        put_quiet(inbox, item)

    monkeypatch.setattr(LoopInbox, "put", counting_put)
    monkeypatch.setattr(LoopInbox, "put_quiet", counting_put_quiet)
    jobs = 40
    lane = ThreadLane(jobs)
    gate = threading.Event()
    results: list[int] = []
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lane.run, _block, gate)  # holds the one thread: the rest queue
                for i in range(jobs - 1):
                    tg.start_soon(lambda i=i: _append(results, lane, i))
                await anyio.wait_all_tasks_blocked()
                gate.set()
    finally:
        lane.close()
    assert sorted(results) == list(range(jobs - 1))
    assert counts == {"woken": 1, "quiet": jobs - 1}


async def _append(results: list[int], lane: ThreadLane, i: int) -> None:
    results.append(await lane.run(int, i))


async def test_a_result_left_without_a_wake_up_is_not_held_by_a_long_next_job(
    one_thread: SharedThreads,
) -> None:
    # The quick job's result is left for the loop because the next job follows at once; that
    # job then blocks. The loop's own drain hands the result over meanwhile.
    lane = ThreadLane(2)
    next_queued, release = threading.Event(), threading.Event()
    quick_done = anyio.Event()

    def quick() -> str:
        next_queued.wait(timeout=30)
        return "quick"

    async def first() -> None:
        assert await lane.run(quick) == "quick"
        quick_done.set()

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(lane.run, _block, release)
                await anyio.wait_all_tasks_blocked()
                next_queued.set()
                await quick_done.wait()  # while the long job still runs
                assert not release.is_set()
                release.set()
    finally:
        release.set()
        lane.close()


async def test_only_growth_checks_on_time_that_find_the_threads_stuck_add_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A check that runs late (the loop or the machine was busy) cannot tell a blocked thread
    # from one that never got the GIL or a core: on a loaded machine such checks started a
    # thread each, 15 for a run of tiny tasks.
    pool = SharedThreads(max_threads=4)
    monkeypatch.setattr(thread_lane, "_shared", pool)
    monkeypatch.setattr(thread_lane, "GROW_AFTER", 3600.0)  # no check but the ones below
    lane = ThreadLane(4)
    gate = threading.Event()
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(2):  # the first blocks the one thread, the second waits
                    tg.start_soon(lane.run, _block, gate)
                await anyio.wait_all_tasks_blocked()
                on = lane._on
                assert on is not None and pool.threads == 1
                for _ in range(3):
                    pool._grow_check(on, pool._taken, on.loop.time() - 7200)  # late
                assert pool.threads == 1
                pool._grow_check(on, pool._taken, on.loop.time())
                assert pool.threads == 1  # one window without progress is not enough
                pool._grow_check(on, pool._taken, on.loop.time())
                assert pool.threads == 2
                gate.set()
    finally:
        gate.set()
        lane.close()
