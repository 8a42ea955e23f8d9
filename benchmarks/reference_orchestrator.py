"""A minimal orchestrator persisting what aioflow persists: the floor issue 19 measures against.

    python -m benchmarks.reference_orchestrator --case sync|async|empty [--n 10000] [--root DIR]

It runs the three flow shapes of `benchmarks/floor_flows/` (start -> a foreach over n items ->
join -> end, the foreach step a sync step setting one int, the same step async, or an empty sync
step) with the same step bodies, written for it: `self.input`, `self.next(...)`, artifacts as
attributes. Nothing in it is general: no retries, no decorators, no events, no checks of the
graph; only what it takes to run these shapes and persist them. It does not import aioflow.

What it persists is aioflow's store of the same run, row for row and byte for byte where the
bytes do not hold a clock, a pid or a source line (`benchmarks.floor` compares the two stores
after every case; `reference_store.py` says how each part is written):

- the run's row (flow, user, tags, system tags, the graph's description, the parameters'
  manifest), its lock file and fault report, and at its end its status and finish time;
- one row per task (task ids in aioflow's order: start 1, the foreach tasks 2..n+1, join, end)
  with its 15 columns: status, start and finish times, the split frames and parents (msgpack),
  the artifact manifest (name -> BLAKE3 key, msgpack), the transition record (msgpack), and
  `running` rows for tasks that are running when a batch is taken;
- one blob per distinct value (tag byte + msgpack, keyed by the first 20 bytes of its BLAKE3
  hash): the parameters, each foreach item, the item list, each task's new artifact, and the
  list of item keys (a file when over 256 KiB); but a blob of at most 29 bytes (the
  parameters, each int item, each task's int artifact) gets an identity key holding it, as
  aioflow's (`store/keys.py`), and is stored nowhere: the item keys' list is then 79 KB at
  n = 10,000, a small blob.

How that was matched: aioflow ran each flow (`aioflow run`, n = 5, 300 and 10,000) and its
store was read back: the tables and their SQL, every task row's columns unpacked, every blob's
key, size and bytes, the files under `blobs/`, `running/` and `faults/`. This reproduces each,
and `floor_compare.py` checks, after every `benchmarks.floor` session and in its test, that the
two stores hold the same schema, the same row counts, the same blob keys and files, and task
rows equal column by column but for the clock.

What it leaves out is what aioflow does around persisting, not in it: no capture of printed
lines (none are printed here: aioflow then stores no log blob either), no `current`, no events,
no retries or @catch, no checks of the graph or of `self.next`'s target, no cache eviction (the
64 MiB cache aioflow keeps does not fill at 10,000 tasks).

How it runs, the way aioflow runs these shapes: an asyncio loop schedules at most 16 tasks at
once (aioflow's default max_workers); a sync step runs in a worker thread (one: aioflow's pool
grows only when its threads stop taking jobs, which tiny tasks never do), jobs going there and
results coming back in batches (a deque each way, a wake-up only when the other side may be
asleep); an async step runs on one of 16 worker coroutines. A task snapshots its attributes
(encode, hash, compare with the inherited manifest), its row is built where it finished, and a
writer thread commits every 10 ms. Like aioflow, it moves the objects alive at the start out of
the garbage collector's generations (`gc.freeze()`) and again every 1,024 finished tasks.

The flows' bodies and the codec are in `reference_flows.py`, the store in `reference_store.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import platform
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .reference_flows import (
    CASES,
    Input,
    Task,
    aioflow_version,
    encode,
    graph_description,
    pack,
    stored,
)
from .reference_store import SMALL, ReferenceStore, ReferenceWriter

MAX_WORKERS = 16
FREEZE_EVERY = 1024


class Spec:
    """A task to run: identity, split frames, parents, the manifest it inherits."""

    __slots__ = ("frames", "inputs", "manifest", "parents", "started_at", "step", "stored",
                 "task_id")  # fmt: skip

    def __init__(self, task_id: int, step: str, frames: tuple, parents: tuple, manifest: dict,
                 inputs: list | None = None) -> None:  # fmt: skip
        self.task_id, self.step, self.frames, self.parents = task_id, step, frames, parents
        self.manifest, self.inputs = manifest, inputs
        self.started_at = 0.0
        self.stored = False


class Outcome:
    """A finished task: its manifest, new small blobs, row, and a split's item keys."""

    __slots__ = ("items", "manifest", "row", "small", "spec")

    def __init__(self, spec: Spec, manifest: dict, small: list, row: tuple, items: list | None):
        self.spec = spec
        self.manifest = manifest
        self.small = small
        self.row = row
        self.items = items


class Run:
    """One run of a case, from its row to its recorded end."""

    def __init__(self, case: str, n: int, root: Path) -> None:
        self.flow, self.steps = CASES[case]
        self.n = n
        self.store = ReferenceStore(root)
        user = getpass.getuser()
        self.base: dict[str, str] = {}
        params: list[tuple[str, bytes]] = []
        for name, value in (("name", self.flow), ("n", n)):
            key, blob = encode(value)
            self.base[name] = key
            if stored(key):
                params.append((key, blob))
        self.store.write_batch([], params, [])  # before the run's row, never after
        tags = [f"user:{user}", "runtime:dev", f"python_version:{platform.python_version()}",
                f"aioflow_version:{aioflow_version()}"]  # fmt: skip
        self.run_id = self.store.create_run(
            self.flow, user, pack([]), pack(tags), pack(graph_description(self.flow, self.steps)),
            pack(self.base), platform.node(),
        )  # fmt: skip
        self.running: dict[int, Spec] = {}
        self.writer = ReferenceWriter(self.store, self._running_rows)
        for key, blob in params:  # again with the first batch, as aioflow does
            self.writer.put_blob(key, blob)
        self.async_steps = {
            s for s, body in self.steps.items() if asyncio.iscoroutinefunction(body)
        }
        self.ready: deque[Spec] = deque()
        self.spawned = 0
        self.in_flight = 0
        self.done_tasks = 0
        self.arrived: list[Outcome | None] = []
        self.arrivals = 0
        self._parents: tuple[tuple | None, bytes | None] = (None, None)
        self._manifest: tuple[dict | None, bytes] = (None, b"")
        self.records: dict[tuple, bytes] = {}
        # Both ways between the loop and the worker thread, many items per wake-up: a deque,
        # and a wake-up only when the other side may be asleep (`handing`, `idle`).
        self.results: deque[Outcome] = deque()
        self.handing = False
        self.jobs: deque[Spec | None] = deque()
        self.idle = False
        self.jobs_ready = threading.Event()
        self.coroutine_jobs: asyncio.Queue[Spec | None] | None = None
        self.finished: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: CPU seconds of the run by thread: the loop's, the worker's, the writer's
        self.cpu: dict[str, float] = {}

    # -- the loop's side ------------------------------------------------------------------------

    async def run(self) -> None:
        started = time.thread_time()
        self.loop = asyncio.get_running_loop()
        self.finished = self.loop.create_future()
        self.coroutine_jobs = asyncio.Queue()
        gc.freeze()
        thread = threading.Thread(target=self._thread, name="reference-worker", daemon=True)
        thread.start()
        workers = [asyncio.ensure_future(self._coroutine()) for _ in range(MAX_WORKERS)]
        self._spawn("start", (), (), self.base)
        self._pump()
        await self.finished
        self.jobs.append(None)
        self.jobs_ready.set()
        for _ in workers:
            self.coroutine_jobs.put_nowait(None)
        await asyncio.gather(*workers)
        self.writer.update_run(self.run_id, status="succeeded", finished_at=time.time(), error=None)
        await asyncio.to_thread(self._close, thread)
        gc.unfreeze()
        self.cpu["loop"] = time.thread_time() - started
        self.cpu["writer"] = self.writer.cpu

    def _close(self, thread: threading.Thread) -> None:
        thread.join()
        self.writer.close()
        self.store.close()

    def _spawn(self, step: str, frames: tuple, parents: tuple, manifest: dict,
               inputs: list | None = None) -> None:  # fmt: skip
        self.spawned += 1
        self.ready.append(Spec(self.spawned, step, frames, parents, manifest, inputs))

    def _pump(self) -> None:
        ready = self.ready
        if not ready or self.in_flight >= MAX_WORKERS:
            return
        running, jobs, async_steps = self.running, self.jobs, self.async_steps
        while ready and self.in_flight < MAX_WORKERS:
            spec = ready.popleft()
            self.in_flight += 1
            spec.started_at = time.time()
            running[spec.task_id] = spec
            if spec.step in async_steps:
                assert self.coroutine_jobs is not None
                self.coroutine_jobs.put_nowait(spec)
            else:
                jobs.append(spec)
        self.writer.wake()  # their running rows go with the next commit, if they still run
        if self.idle:
            self.jobs_ready.set()

    def _drain(self) -> None:
        self.handing = False
        results = self.results
        while results:
            self._completed(results.popleft())

    def _completed(self, outcome: Outcome) -> None:
        spec = outcome.spec
        self.in_flight -= 1
        del self.running[spec.task_id]
        writer = self.writer
        for key, blob in outcome.small:
            writer.put_blob(key, blob)
        writer.put_task(outcome.row)
        self.done_tasks += 1
        if self.done_tasks % FREEZE_EVERY == 0:
            gc.freeze()
        self._follow(outcome)
        self._pump()

    def _follow(self, outcome: Outcome) -> None:
        spec = outcome.spec
        if spec.step == "start":
            assert outcome.items is not None
            count = len(outcome.items)
            parents = (spec.task_id,)  # one tuple for the split's children: packed once
            self.arrived = [None] * count
            for i, key in enumerate(outcome.items):
                frame = (spec.task_id, count, i, "start", "items", key)
                self._spawn("work", (frame,), parents, outcome.manifest)
        elif spec.step == "work":
            outcome.small = []  # what the join needs is the identity and the manifest
            outcome.row = ()
            frame = spec.frames[-1]
            self.arrived[frame[2]] = outcome
            self.arrivals += 1
            if self.arrivals == frame[1]:
                arrived, self.arrived = self.arrived, []
                parents = tuple(o.spec.task_id for o in arrived if o is not None)
                self._spawn("join", (), parents, self.base, arrived)
        elif spec.step == "join":
            self._spawn("end", (), (spec.task_id,), outcome.manifest)
        else:
            assert self.finished is not None
            self.finished.set_result(None)

    def _running_rows(self) -> list[tuple[Any, ...]]:
        """Rows of tasks running now and not stored yet (the writer thread asks)."""
        rows = []
        for spec in list(self.running.values()):
            if not spec.stored:
                spec.stored = True
                frames = pack(spec.frames) if spec.frames else None
                parents = pack(spec.parents) if spec.parents else None
                rows.append((self.run_id, spec.task_id, 0, spec.step, "running",
                             spec.started_at, None, frames, parents, None, None, None, None, None,
                             None))  # fmt: skip
        return rows

    # -- where bodies run ---------------------------------------------------------------------

    def _thread(self) -> None:
        started = time.thread_time()
        try:
            self._work()
        finally:
            self.cpu["worker"] = time.thread_time() - started

    def _work(self) -> None:
        """The worker thread: sync bodies, handed back to the loop in batches."""
        jobs, results, ready, task = self.jobs, self.results, self.jobs_ready, self._task
        assert self.loop is not None
        call_soon = self.loop.call_soon_threadsafe
        while True:
            while jobs:
                spec = jobs.popleft()
                if spec is None:
                    return
                results.append(task(spec, None))
                if not self.handing:
                    self.handing = True
                    call_soon(self._drain)
            ready.clear()
            self.idle = True  # then look again: a job queued before the loop saw this flag
            if not jobs:
                ready.wait()
            self.idle = False

    async def _coroutine(self) -> None:
        """A worker coroutine: async bodies, finished on the loop."""
        jobs = self.coroutine_jobs
        assert jobs is not None
        while True:
            try:
                spec = jobs.get_nowait()
            except asyncio.QueueEmpty:
                spec = await jobs.get()
            if spec is None:
                return
            task = self._instance(spec)
            await self.steps[spec.step](task)
            self._completed(self._task(spec, task))

    def _instance(self, spec: Spec) -> Task:
        task = Task()
        if spec.frames:  # the foreach item's key: `self.input` reads its blob, as aioflow's does
            task._item = spec.frames[-1][5]
            task._blobs = self.writer.cache
        task._next = None
        if spec.step == "start":
            task.n = self.n  # a parameter: read-only, never stored by a task
        return task

    def _task(self, spec: Spec, task: Task | None) -> Outcome:
        """Run a sync body (unless `task` ran already), snapshot it, build its row."""
        if task is None:
            task = self._instance(spec)
            body = self.steps[spec.step]
            if spec.inputs is None:
                body(task)
            else:
                cache = self.writer.cache
                body(task, [Input(o.manifest, cache) for o in spec.inputs])
        attributes = task.__dict__
        attributes.pop("n", None)
        inherited = spec.manifest
        small: list[tuple[str, bytes]] = []
        changed = None
        for name, value in attributes.items():
            key, blob = encode(value)
            if inherited.get(name) == key:
                continue
            self._store(key, blob, small)
            if changed is None:
                changed = {}
            changed[name] = key
        manifest = inherited if changed is None else {**inherited, **changed}
        items = None
        transition = None
        if task._next is not None:
            targets, foreach = task._next
            if foreach is None:
                transition = self.records.get(task._next)
                if transition is None:
                    transition = self.records[task._next] = pack([list(targets), None, None])
            else:
                items = []
                for value in attributes[foreach]:
                    key, blob = encode(value)
                    self._store(key, blob, small)
                    items.append(key)
                list_key, list_blob = encode(items)
                self._store(list_key, list_blob, small)
                transition = pack([list(targets), foreach, list_key])
        frames = pack(spec.frames) if spec.frames else None
        shared = self._parents  # (tuple, packed), replaced whole: any thread may read it
        if shared[0] is not spec.parents:
            shared = self._parents = (spec.parents, pack(spec.parents) if spec.parents else None)
        parents = shared[1]
        packed = self._manifest  # a manifest passed on unchanged is packed once, like parents
        if packed[0] is not manifest:
            packed = self._manifest = (manifest, pack(manifest))
        row = (self.run_id, spec.task_id, 0, spec.step, "succeeded", spec.started_at, time.time(),
               frames, parents, packed[1], None, None, None, None, transition)  # fmt: skip
        return Outcome(spec, manifest, small, row, items)

    def _store(self, key: str, blob: bytes, small: list[tuple[str, bytes]]) -> None:
        if not stored(key):  # an identity key holds its blob
            return
        if len(blob) <= SMALL:
            small.append((key, blob))
        else:
            self.store.put_large(key, blob)


def run(case: str, n: int, root: Path) -> Run:
    """Run one case to its end in a new event loop."""
    flow = Run(case, n, root)
    asyncio.run(flow.run())
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=sorted(CASES), default="sync")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--root", type=Path, default=Path(".reference-store"))
    args = parser.parse_args()
    json.dump({"run_id": run(args.case, args.n, args.root).run_id}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
