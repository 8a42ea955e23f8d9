"""Issue 19's five per-task costs of a wide foreach, each on its own, with aioflow's own objects.

`benchmarks.floor` measures a whole task (and the reference orchestrator's); these take it apart,
so that a regression shows up here first, in the part it is in:

1. the writer's SQLite commit of about 1,000 finished tasks: each a 15-column task row and a
   small blob (of 32 bytes: an int artifact is kept in its key, no blob at all), through
   `SqliteMetadataStore.write_batch` (what the batch writer's thread calls);
   the rows alone, and the same commit in fixed-size statements (a floor), beside it;
2. the thread hand-off: 1,000 no-op jobs through `ThreadLane.submit` with a callback, 16 in
   flight, as the scheduler hands sync steps over; a bare batched hand-off (a deque and one
   `call_soon_threadsafe` per batch) beside it, for the floor;
3. the task's own path: `run_sync_task` (TaskRun, the body, the snapshot, the outcome) of a step
   setting one int, of an empty step, and `run_async_task` of the async step;
4. the scheduler's bookkeeping on the loop: `TaskRecorder.started` and `finished` and
   `FlowWalk.follow` of 1,000 finished tasks, into a writer that only queues;
5. the join reading one artifact from each of 1,000 inputs: `test_join.py`'s
   `test_join_reads_1000_inputs`.

Each records microseconds per task in `extra_info`: `us_per_task` (wall) and `cpu_us_per_task`
(the process's CPU time, every thread), which the machine's load moves less.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio

from aioflow import FlowSpec
from aioflow.runtime.executors import ThreadLane
from aioflow.runtime.graphs import linted_graph
from aioflow.runtime.recorder import TaskRecorder
from aioflow.runtime.task import RunEnv, TaskOutcome, TaskSpec, run_async_task, run_sync_task
from aioflow.runtime.walk import Fanout, FlowWalk
from aioflow.store.keys import read_identity
from aioflow.store.metadata import TASK_COLUMNS, task_row
from aioflow.store.serde import Buffer, encode, pack
from aioflow.transitions import Transition

from ..floor_flows.async_artifact import FloorAsyncFlow
from ..floor_flows.sync_artifact import FloorSyncFlow
from ..floor_flows.sync_empty import FloorEmptyFlow
from ..reference_store import insert_rows

WIDTH = 1000
IN_FLIGHT = 16  # aioflow's default max_workers
_ids = itertools.count(10)


class _Blobs:
    """The run's small blobs as the batch writer's cache holds them (`BatchWriter.read_blob`),
    and a writer that only queues (`put_task`, `put_blob`, `wake`): no commit is measured."""

    def __init__(self) -> None:
        self.cache: dict[str, bytes] = {}
        self.rows: list[Any] = []

    def read_blob(self, key: str) -> tuple[int, Buffer]:
        data = self.cache.get(key)
        if data is None:  # an identity key holds its blob, as the writer's reader knows
            found = read_identity(key)
            assert found is not None, key
            return found
        return data[0], memoryview(data)[1:]

    def put_blob(self, key: str, data: bytes) -> None:
        self.cache.setdefault(key, data)

    def put_task(self, row: Any) -> None:
        self.rows.append(row)

    def wake(self) -> None:
        pass


def _env(flow_cls: type[FlowSpec], blobs: _Blobs, store: Any) -> RunEnv:
    """The run's environment, as `lifecycle.OpenRun._env` builds it (the parameter n = WIDTH)."""
    base = {}
    for name, value in (("name", flow_cls.__name__), ("n", WIDTH)):
        encoded = encode(value)
        blobs.put_blob(encoded.key, encoded.tobytes())
        base[name] = encoded.key
    return RunEnv(
        flow_cls=flow_cls, graph=linted_graph(flow_cls), flow_name=flow_cls.__name__,
        run_id="1", username="bench", namespace="user:bench", tags=frozenset(),
        parameter_names=("n",), readonly=frozenset({"n"}), base_manifest=base, reader=blobs,
        blobs=store.blobs, line_sink=lambda *_: None, max_num_splits=WIDTH,
    )  # fmt: skip


def _split(flow_cls: type[FlowSpec], store: Any) -> tuple[RunEnv, _Blobs, FlowWalk, deque]:
    """A walk whose start task ran for real: WIDTH foreach tasks ready, their items readable."""
    blobs = _Blobs()
    env = _env(flow_cls, blobs, store)
    ready: deque[TaskSpec] = deque()
    walk = FlowWalk(env, ready)
    walk.start()
    start = run_sync_task(env, ready.popleft())
    assert start.error is None, start.error
    for key, data in start.small:
        blobs.put_blob(key, data)
    walk.follow(start)
    # The split queued one Fanout; its children are made here, as the scheduler's slots would.
    (fanout,) = ready
    assert isinstance(fanout, Fanout)
    ready.clear()
    while fanout.left:
        ready.append(fanout.take())
    assert len(ready) == WIDTH
    return env, blobs, walk, ready


def _pedantic(benchmark: Any, fn: Callable[..., Any], setup: Callable[[], Any]) -> None:
    """10 rounds of `fn(*setup())`, after one warm-up; records the median round's wall and CPU
    microseconds per task (CPU time moves less with the machine's load). `fn` returns how many
    tasks it handled, or None for WIDTH."""
    rounds: list[tuple[float, float]] = []

    def timed(*args: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        count = fn(*args) or WIDTH
        rounds.append(((time.perf_counter() - wall) / count, (time.process_time() - cpu) / count))

    benchmark.pedantic(timed, setup=lambda: (setup(), {}), rounds=10, warmup_rounds=1)
    timed_rounds = rounds[1:] or rounds  # not the warm-up
    benchmark.extra_info["us_per_task"] = statistics.median(w for w, _ in timed_rounds) * 1e6
    benchmark.extra_info["cpu_us_per_task"] = statistics.median(c for _, c in timed_rounds) * 1e6


# -- 1. the writer's commit -------------------------------------------------------------------


_sizes = itertools.count()


def _finished_tasks(with_blobs: bool) -> tuple[list[Any], list[tuple[str, bytes]]]:
    """About WIDTH rows of finished foreach tasks (new ids) and their blobs (new keys), as the
    recorder makes them: frames, parents and transition packed, the manifest naming the blob.

    A few more rows each round: a run's commits take what finished in the last 10 ms, a number
    that changes from commit to commit, and so does the text of aioflow's statements (SQLite
    parses a statement whose text it has not seen on that connection; a VALUES list of a
    thousand rows costs microseconds per row to parse)."""
    rows, blobs = [], []
    base = {"name": encode("FloorSyncFlow").key, "n": encode(WIDTH).key, "items": "0" * 40}
    parents, transition = pack((1,)), pack([["join"], None, None])
    now = time.time()
    for i in range(WIDTH + next(_sizes)):
        task_id = next(_ids)
        # A value just over an identity key's 29 bytes, so that it is a stored blob under a
        # BLAKE3 key (an int, as the floor's tasks set, is kept in its key and stored nowhere).
        encoded = encode(f"{-task_id:030d}")
        frames = pack([(1, WIDTH, i, "start", "items", encode(i).key)])
        manifest = pack({**base, "x": encoded.key})
        rows.append(task_row(1, task_id, 0, "work", "succeeded", started_at=now, finished_at=now,
                             frames=frames, parents=parents, manifest=manifest,
                             transition=transition))  # fmt: skip
        if with_blobs:
            blobs.append((encoded.key, encoded.tobytes()))
    return rows, blobs


def _commit(benchmark: Any, store: Any, with_blobs: bool) -> None:
    def commit(rows: list[Any], blobs: list[tuple[str, bytes]]) -> int:
        store.metadata.write_batch(rows, blobs)
        return len(rows)

    _pedantic(benchmark, commit, lambda: _finished_tasks(with_blobs))


def test_commit_1000_tasks_rows_and_blobs(benchmark, store):
    """Cost 1: one transaction of about 1,000 task rows and as many small blobs, through
    `write_batch` (later rounds insert into larger tables, as a run's later commits do)."""
    _commit(benchmark, store, with_blobs=True)


def test_commit_1000_task_rows_only(benchmark, store):
    """Cost 1, the rows' share: the same rows without their blobs."""
    _commit(benchmark, store, with_blobs=False)


def test_commit_1000_tasks_fixed_statements_floor(benchmark, store):
    """For scale, cost 1's floor: the same rows and blobs into the same tables in one
    transaction, in statements of a few fixed sizes that SQLite parses once (as the reference
    orchestrator writes them)."""
    conn = store.metadata.connection()
    insert = f"INSERT OR REPLACE INTO tasks ({TASK_COLUMNS}) VALUES"

    def commit(rows: list[Any], blobs: list[tuple[str, bytes]]) -> int:
        with conn:
            insert_rows(conn, "INSERT OR IGNORE INTO blobs VALUES", 2, blobs)
            insert_rows(conn, insert, 15, rows)
        return len(rows)

    _pedantic(benchmark, commit, lambda: _finished_tasks(with_blobs=True))


# -- 2. the thread hand-off -------------------------------------------------------------------


def _per_task(
    benchmark: Any, go: Callable[..., Any], setup: Callable[[], tuple[Any, ...]] = tuple
) -> None:
    """Time `go(*setup())` (an anyio entry point returning (wall, cpu) seconds of WIDTH tasks)
    by rounds; record the median round's per-task wall and CPU microseconds, timed inside the
    loop (the rounds' own times include starting an event loop)."""
    figures: list[tuple[float, float]] = []
    benchmark.pedantic(
        lambda *args: figures.append(anyio.run(go, *args)),
        setup=lambda: (setup(), {}),
        rounds=10,
        warmup_rounds=1,
    )
    rounds = figures[1:] or figures  # not the warm-up
    benchmark.extra_info["us_per_task"] = statistics.median(w for w, _ in rounds) / WIDTH * 1e6
    benchmark.extra_info["cpu_us_per_task"] = statistics.median(c for _, c in rounds) / WIDTH * 1e6


def test_thread_handoff_lane_submit(benchmark):
    """Cost 2: 1,000 no-op jobs through ThreadLane.submit, a callback on the loop each, the next
    job submitted from the callback (16 in flight): the path of every sync step."""

    async def go() -> tuple[float, float]:
        lane = ThreadLane(IN_FLIGHT)
        await lane.run(int)  # the first thread starts outside the timed part
        finished = asyncio.Event()
        counts = {"submitted": 0, "done": 0}

        def done(ok: bool, value: Any) -> None:
            counts["done"] += 1
            if counts["submitted"] < WIDTH:
                counts["submitted"] += 1
                lane.submit(int, (), done)
            elif counts["done"] == WIDTH:
                finished.set()

        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(IN_FLIGHT):
            counts["submitted"] += 1
            lane.submit(int, (), done)
        await finished.wait()
        figures = time.perf_counter() - wall, time.process_time() - cpu
        lane.close()
        return figures

    _per_task(benchmark, go)


def test_thread_handoff_batched_floor(benchmark):
    """For scale, cost 2's floor: the same 1,000 jobs, 16 in flight, handed over in batches both
    ways (a deque each way, a wake-up only when the other side may sleep), as the reference
    orchestrator does."""
    import threading

    async def go() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        jobs: deque[int | None] = deque()
        results: deque[int] = deque()
        ready, finished = threading.Event(), asyncio.Event()
        state = {"handing": False, "idle": False, "submitted": 0, "done": 0}

        def drain() -> None:
            state["handing"] = False
            while results:
                results.popleft()
                state["done"] += 1
                if state["submitted"] < WIDTH:
                    state["submitted"] += 1
                    jobs.append(0)
            if state["idle"]:
                ready.set()
            if state["done"] == WIDTH:
                finished.set()

        def work() -> None:
            while True:
                while jobs:
                    job = jobs.popleft()
                    if job is None:
                        return
                    results.append(int(job))
                    if not state["handing"]:
                        state["handing"] = True
                        loop.call_soon_threadsafe(drain)
                ready.clear()
                state["idle"] = True
                if not jobs:
                    ready.wait()
                state["idle"] = False

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        wall, cpu = time.perf_counter(), time.process_time()
        state["submitted"] = IN_FLIGHT
        jobs.extend([0] * IN_FLIGHT)
        ready.set()
        await finished.wait()
        figures = time.perf_counter() - wall, time.process_time() - cpu
        jobs.append(None)
        ready.set()
        thread.join()
        return figures

    _per_task(benchmark, go)


# -- 3. the task's own path -------------------------------------------------------------------


def _sync_tasks(benchmark: Any, flow_cls: type[FlowSpec], store: Any) -> None:
    def tasks(env: RunEnv, specs: deque[TaskSpec]) -> None:
        for spec in specs:
            outcome = run_sync_task(env, spec)
        assert outcome.error is None, outcome.error  # a failing task would time its failure

    def setup() -> tuple[RunEnv, deque[TaskSpec]]:
        env, _, _, ready = _split(flow_cls, store)
        return env, ready

    _pedantic(benchmark, tasks, setup)


def test_task_path_sync_one_artifact(benchmark, store):
    """Cost 3: run_sync_task of 1,000 foreach tasks setting one int (self.input read from its
    blob, self.next, the snapshot encoding and hashing the int, the outcome)."""
    _sync_tasks(benchmark, FloorSyncFlow, store)


def test_task_path_sync_empty(benchmark, store):
    """Cost 3 of an empty step: run_sync_task of 1,000 foreach tasks setting nothing."""
    _sync_tasks(benchmark, FloorEmptyFlow, store)


def test_task_path_async_one_artifact(benchmark, store):
    """Cost 3 of the async step: run_async_task of 1,000 foreach tasks on the loop (the int is
    quick to encode, so the snapshot is taken on the loop too)."""

    async def go(env: RunEnv, ready: deque[TaskSpec]) -> tuple[float, float]:
        async def offload(fn: Callable[..., Any], *args: Any) -> Any:
            return fn(*args)  # not taken by quick values; here in case a change makes it so

        wall, cpu = time.perf_counter(), time.process_time()
        for spec in ready:
            outcome = await run_async_task(env, offload, None, spec)
        figures = time.perf_counter() - wall, time.process_time() - cpu
        assert outcome.error is None, outcome.error
        return figures

    def setup() -> tuple[RunEnv, deque[TaskSpec]]:
        env, _, _, ready = _split(FloorAsyncFlow, store)
        return env, ready

    _per_task(benchmark, go, setup)


# -- 4. the scheduler's bookkeeping -----------------------------------------------------------


def _finished(store: Any) -> tuple[TaskRecorder, FlowWalk, list[tuple[TaskSpec, TaskOutcome]]]:
    """A recorder and a walk with WIDTH foreach tasks ready, and the outcome each will have."""
    env, blobs, walk, ready = _split(FloorSyncFlow, store)
    recorder = TaskRecorder(env, blobs, {}, None)  # type: ignore[arg-type]
    record = pack([["join"], None, None])
    pairs = []
    for spec in ready:
        encoded = encode(-1 - spec.frames[-1][2])
        manifest = {**spec.manifest, "x": encoded.key}
        small = [(encoded.key, encoded.tobytes())]
        outcome = TaskOutcome(spec, manifest, small, None, transition=Transition(("join",)),
                              transition_record=record)  # fmt: skip
        pairs.append((spec, outcome))
    ready.clear()
    return recorder, walk, pairs


def test_scheduler_bookkeeping(benchmark, store):
    """Cost 4: for each of 1,000 foreach tasks, what the loop does around it: the recorder's
    `started` and `finished` (the row packed and queued, its blob queued) and the walk's
    `follow` (the join's bucket; the last arrival spawns the join)."""

    def bookkeeping(recorder: TaskRecorder, walk: FlowWalk, pairs: list) -> None:
        for spec, outcome in pairs:
            recorder.started(spec)
            recorder.finished(outcome)
            walk.follow(outcome)
        assert walk.ready[-1].step == "join"

    _pedantic(benchmark, bookkeeping, lambda: _finished(store))
