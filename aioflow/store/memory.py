"""A MetadataStore in this process's memory: for tests, and runs nobody reads back later.

It keeps what `SqliteMetadataStore` keeps, in dictionaries behind one lock, and answers every
read the same way: run ids increase and are never reused, a batch applies whole or not at all,
tag changes are atomic, attempts come by task id then attempt. A run is alive while the object
that created it is open: `close()` is what a run's process dying is to the SQLite store, so a
run left reading `running` then reads abandoned. Nothing outlives the object.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from .keys import identity_blob
from .liveness import this_host
from .protocols import RUN_UPDATE_FIELDS, CardRecord, RunRecord, TaskRecord


@dataclass
class _Run:
    record: RunRecord
    graph: bytes
    params: bytes | None


class MemoryMetadataStore:
    """The MetadataStore in dictionaries; safe to share between threads."""

    location = "memory"

    def __init__(self) -> None:
        # Reentrant: `sweep_blobs` holds it while its caller reads the runs through `self`.
        self._lock = threading.RLock()
        self._last_run_id = 0
        self._runs: dict[int, _Run] = {}
        #: Per run, its attempts by (task id, attempt).
        self._tasks: dict[int, dict[tuple[int, int], TaskRecord]] = {}
        self._blobs: dict[str, bytes] = {}
        self._open: set[int] = set()
        #: Per run, its cards by (task id, attempt, position); read only while the run exists.
        self._cards: dict[int, dict[tuple[int, int, int], CardRecord]] = {}

    def close(self) -> None:
        """The runs created through this object read ended (abandoned if still `running`)."""
        with self._lock:
            self._open.clear()

    # -- writes -------------------------------------------------------------------------------

    def create_run(
        self,
        flow: str,
        *,
        user: str,
        tags: Sequence[str],
        system_tags: Sequence[str],
        graph: bytes,
        origin_run_id: str | None,
        params: bytes | None = None,
    ) -> int:
        """Store a new running run and return its id; it is alive until `close()`."""
        with self._lock:
            self._last_run_id += 1
            run_id = self._last_run_id
            record = RunRecord(
                run_id, flow, "running", user, time.time(), None, origin_run_id, tuple(tags),
                tuple(system_tags), os.getpid(), this_host(), None, 1,
            )  # fmt: skip
            self._runs[run_id] = _Run(record, graph, params)
            self._tasks[run_id] = {}
            self._open.add(run_id)
        return run_id

    def write_batch(
        self,
        tasks: Iterable[TaskRecord],
        blobs: Iterable[tuple[str, bytes]],
        run_updates: Sequence[tuple[int, Mapping[str, Any]]] = (),
    ) -> None:
        """Store blobs, task attempts and run updates, all or nothing."""
        # Everything is checked before anything changes, so a bad batch changes nothing.
        records = [TaskRecord._make(row) for row in tasks]  # TypeError for a wrong width
        blob_list = list(blobs)
        for _, fields in run_updates:
            unknown = set(fields) - RUN_UPDATE_FIELDS
            if unknown:
                raise ValueError(f"Cannot update the run fields {sorted(unknown)}.")
        with self._lock:
            for key, data in blob_list:  # a damaged blob is replaced, as in SQLite
                self._blobs[key] = bytes(data)
            for record in records:
                attempts = self._tasks.setdefault(record.run_id, {})
                attempts[(record.task_id, record.attempt)] = record
            for run_id, fields in run_updates:
                run = self._runs.get(run_id)
                if run is not None:
                    run.record = run.record._replace(**fields)

    def update_run_tags(
        self, flow: str, run_id: int, mutate: Callable[[list[str], list[str]], list[str]]
    ) -> list[str] | None:
        """Set a run's user tags to `mutate(user_tags, system_tags)`, atomically."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.record.flow != flow:
                return None
            new = mutate(list(run.record.tags), list(run.record.system_tags))
            run.record = run.record._replace(tags=tuple(new))
            return new

    # -- deleting (gc.py) ---------------------------------------------------------------------

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Forget these runs and their task attempts; how many runs were removed."""
        with self._lock:
            gone = [run_id for run_id in set(run_ids) if run_id in self._runs]
            for run_id in gone:
                del self._runs[run_id]
                self._tasks.pop(run_id, None)
                self._open.discard(run_id)
        return len(gone)

    def sweep_blobs(self, referenced: Callable[[], AbstractSet[str]]) -> tuple[int, int]:
        """Delete the small blobs not in `referenced()`, writers held off by the lock."""
        with self._lock:
            keep = referenced()
            gone = [key for key in self._blobs if key not in keep]
            freed = sum(len(self._blobs.pop(key)) for key in gone)
        return len(gone), freed

    def compact(self) -> None:
        """Nothing to give back: dictionaries shrink as they lose entries."""

    # -- reads --------------------------------------------------------------------------------

    def get_blob(self, key: str) -> bytes | None:
        """A small blob's bytes, or None.
        An identity key's blob is its key's (it is never in the database)."""
        blob = identity_blob(key)
        if blob is not None:
            return blob
        return self._blobs.get(key)

    def blob_size(self, key: str) -> int | None:
        """A small blob's length, or None."""
        blob = identity_blob(key)  # (its key holds it)
        if blob is not None:
            return len(blob)
        data = self._blobs.get(key)
        return None if data is None else len(data)

    def flows(self) -> list[str]:
        """Names of every flow with at least one run, sorted."""
        with self._lock:
            return sorted({run.record.flow for run in self._runs.values()})

    def run(self, flow: str, run_id: int) -> RunRecord | None:
        """One run of a flow, or None."""
        run = self._runs.get(run_id)
        return run.record if run is not None and run.record.flow == flow else None

    def run_page(
        self, flow: str | None, *, before: int | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Up to `limit` runs of a flow (of every flow when None), newest first."""
        with self._lock:
            ids = sorted(self._runs, reverse=True)
            page: list[RunRecord] = []
            for run_id in ids:
                record = self._runs[run_id].record
                if (before is None or run_id < before) and (flow is None or record.flow == flow):
                    page.append(record)
                    if len(page) == limit:
                        break
            return page

    def latest_run_id(self, flow: str, *, resumed: bool | None = None) -> int | None:
        """The newest run id of a flow (only resumes, or none of them, if asked), or None."""
        with self._lock:
            ids = [
                run_id
                for run_id, run in self._runs.items()
                if run.record.flow == flow
                and (resumed is None or (run.record.origin_run_id is not None) == resumed)
            ]
        return max(ids, default=None)

    def first_run_time(self, flow: str) -> float | None:
        """When the flow's first stored run started, or None."""
        with self._lock:
            times = [r.record.created_at for r in self._runs.values() if r.record.flow == flow]
        return min(times, default=None)

    def run_graph(self, run_id: int) -> bytes | None:
        """The packed graph description stored with a run."""
        run = self._runs.get(run_id)
        return None if run is None else run.graph

    def run_params(self, run_id: int) -> bytes | None:
        """The packed manifest every task of the run starts from."""
        run = self._runs.get(run_id)
        return None if run is None else run.params

    def process_gone(self, run: RunRecord) -> bool:
        """True when `run` reads running, still does, and its creator was closed."""
        if run.status != "running":
            return False
        with self._lock:
            now = self._runs.get(run.run_id)
            return (
                now is not None and now.record.status == "running" and run.run_id not in self._open
            )

    def task_attempts(
        self, run_id: int, step: str | None = None, task_id: int | None = None
    ) -> list[TaskRecord]:
        """Attempts of a run's tasks (of one step, of one task), by task id then attempt."""
        with self._lock:
            attempts = list(self._tasks.get(run_id, {}).items())
        return [
            record
            for _, record in sorted(attempts, key=lambda item: item[0])
            if (step is None or record.step == step)
            and (task_id is None or record.task_id == task_id)
        ]

    def task_attempts_by_id(self, run_id: int, task_ids: Sequence[int]) -> list[TaskRecord]:
        """Every attempt of the given tasks of a run, by task id then attempt."""
        wanted = set(task_ids)
        return [r for r in self.task_attempts(run_id) if r.task_id in wanted]

    def steps(self, run_id: int) -> list[tuple[str, float | None]]:
        """(step name, first start time) of every step with a task in the run, in the order
        of their first task ids."""
        first_id: dict[str, int] = {}
        started: dict[str, Any] = {}
        for record in self.task_attempts(run_id):
            first_id.setdefault(record.step, record.task_id)
            if record.started_at is not None:
                earliest = started.get(record.step)
                if earliest is None or record.started_at < earliest:
                    started[record.step] = record.started_at
        return [(name, started.get(name)) for name in sorted(first_id, key=first_id.__getitem__)]

    # -- cards --------------------------------------------------------------------------------

    def put_card(self, card: CardRecord) -> None:
        """Keep a card's record (replacing the one at its place); none for an unknown run."""
        with self._lock:
            if card.run_id in self._runs:
                place = (card.task_id, card.attempt, card.position)
                self._cards.setdefault(card.run_id, {})[place] = card

    def cards(self, run_id: int, task_id: int | None = None) -> list[CardRecord]:
        """The cards of a run (of one task), by task id, attempt and position."""
        with self._lock:
            if run_id not in self._runs:  # deleted: its cards went with it
                self._cards.pop(run_id, None)
                return []
            found = self._cards.get(run_id, {})
            return [found[k] for k in sorted(found) if task_id is None or k[0] == task_id]


__all__ = ["MemoryMetadataStore"]
