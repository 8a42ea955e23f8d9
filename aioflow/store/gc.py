"""Deleting runs and sweeping the blobs no remaining run references (`aioflow runs delete`, `gc`).

Blobs are content-addressed and shared: one blob may be named by many tasks of many runs, so a
run's blobs cannot go with the run. `collect` deletes the chosen runs' metadata first, then
sweeps every blob that no remaining run names (its parameters, its tasks' manifests, logs and
foreach items). An identity key (`keys.py`) names no stored blob: there is nothing to keep or
sweep for it.

Safe while other runs write. A run in progress puts a blob and commits the row naming it later;
a sweep between the two would remove a blob about to be referenced. Two rules close that
window (docs/architecture.md tells the whole argument):

- Small blobs (in the metadata store) are written in the same transaction as the rows naming
  them, and `MetadataStore.sweep_blobs` reads the references and deletes in one transaction
  that excludes writers: a batch is seen, or lands after the sweep and stores its blobs again.
  A new run's parameters are stored before its row (so a killed start is never resumable with
  missing values), and again once the row exists (`runner._open_run`), for the same reason.
- Large blobs (files) are written before their rows commit. A blob is deleted only when it
  was last put before `cutoff`: the start of the sweep, or, when runs were in progress as the
  references were read, the creation of the oldest of them. Every put of a run in progress
  comes after its creation (a put of a blob already there marks it as put again), and a run
  that starts later puts after the sweep began, so none of their blobs is older than `cutoff`.
  A run that ended while the references were read committed its rows before letting go of its
  run lock, so it reads as in progress or its rows are seen.

Runs in progress are never deleted, nor the runs a run in progress resumes (its clones name
the origin's blobs without putting them again).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field

from ..exceptions import BlobError, RunInProgress
from . import Store
from .keys import is_identity
from .protocols import RunRecord
from .serde import decode_plain, pack, unpack

#: Seconds a file's time may lag the clock (coarse file-system timestamps): a blob put this long
#: before the sweep started is still kept.
CLOCK_SLACK = 2.0

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `45m`, `90s`, `2w` (a bare number is days) as seconds; ValueError else."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an age: give a number and a unit, like 30d, 12h or 45m")
    return float(match.group(1)) * _UNIT[match.group(2)]


def in_progress(store: Store, run: RunRecord) -> bool:
    """True when a process is running `run` now (a run whose process died is not)."""
    return run.status == "running" and not store.metadata.process_gone(run)


def all_runs(store: Store) -> list[RunRecord]:
    """Every run of every flow, newest first."""
    runs: list[RunRecord] = []
    before = None
    while True:
        page = store.metadata.run_page(None, before=before, limit=1000)
        runs += page
        if len(page) < 1000:
            return runs
        before = page[-1].run_id


def protected(store: Store, runs: Iterable[RunRecord]) -> dict[int, str]:
    """Runs that must not be deleted, by id, with why: runs in progress and their origins."""
    why: dict[int, str] = {}
    for run in runs:
        if not in_progress(store, run):
            continue
        where = f"pid {run.pid} on {run.host}" if run.pid else "another process"
        why[run.run_id] = f"it is still running ({where})"
        if run.origin_run_id and run.origin_run_id.isdigit():
            origin = int(run.origin_run_id)
            why.setdefault(origin, f"run {run.run_id}, in progress, resumes it")
    return why


def choose_runs(
    runs: Sequence[RunRecord],
    *,
    keep_last: int | None = None,
    older_than: float | None = None,
    flow: str | None = None,
    tag: Sequence[str] = (),
    now: float | None = None,
) -> list[RunRecord]:
    """The runs `aioflow gc` would delete: of the runs matching `flow` and every tag in `tag`,
    per flow all but the newest `keep_last`, and of those only the ones created more than
    `older_than` seconds ago. With neither bound, none."""
    if keep_last is None and older_than is None:
        return []
    now = time.time() if now is None else now
    seen: dict[str, int] = {}
    chosen = []
    for run in sorted(runs, key=lambda r: -r.run_id):  # newest first, per flow
        if flow is not None and run.flow != flow:
            continue
        if not all(t in run.tags or t in run.system_tags for t in tag):
            continue
        rank = seen.get(run.flow, 0)
        seen[run.flow] = rank + 1
        if keep_last is not None and rank < keep_last:
            continue
        if older_than is not None and run.created_at > now - older_than:
            continue
        chosen.append(run)
    return chosen


@dataclass
class Report:
    """What a collection did (or, with `dry_run`, would do)."""

    runs: list[RunRecord] = field(default_factory=list)
    small_blobs: int = 0
    small_bytes: int = 0
    files: int = 0
    file_bytes: int = 0
    #: unreferenced files kept because they were put after `cutoff` (writes in flight)
    kept_recent: int = 0
    #: runs in progress when the references were read (the sweep then went by their start)
    in_progress: int = 0
    compacted: bool = False


class _References:
    """The blob keys the remaining runs name, read as one snapshot (see `sweep`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys: set[str] = set()
        self.oldest_in_progress: float | None = None

    def __call__(self) -> set[str]:
        keys: set[str] = set()
        oldest = None
        for run in all_runs(self.store):
            if in_progress(self.store, run):
                oldest = run.created_at if oldest is None else min(oldest, run.created_at)
            keys |= self._of_run(run.run_id)
        self.keys, self.oldest_in_progress = keys, oldest
        return keys

    def _of_run(self, run_id: int) -> set[str]:
        metadata = self.store.metadata
        keys: set[str] = set()
        params = metadata.run_params(run_id)
        if params:
            keys.update(unpack(params).values())
        for task in metadata.task_attempts(run_id):
            if task.manifest:
                keys.update(unpack(task.manifest).values())
            keys.update(k for k in (task.stdout, task.stderr) if k)
            if task.transition:
                items_key = unpack(task.transition)[2]
                if items_key:
                    keys.add(items_key)
                    keys.update(self._items(items_key))
        # The pages of its tasks' cards (@card); a card put while the sweep runs is kept by
        # the BlobStore's `untouched_since`, as any blob put then.
        keys.update(card.key for card in metadata.cards(run_id))
        # An identity key's blob is the key itself: stored nowhere, so nothing to keep.
        return {key for key in keys if not is_identity(key)}

    def _items(self, key: str) -> list[str]:
        """The keys of a task's foreach items, listed in the blob `key`."""
        try:
            listed = decode_plain(*self.store.read_blob(key))
        except (BlobError, ValueError):  # missing or damaged: nothing more it can keep
            return []
        return [k for k in listed if isinstance(k, str)] if isinstance(listed, list) else []


def delete_runs(store: Store, runs: Sequence[RunRecord]) -> None:
    """Delete runs' metadata; RunInProgress naming the first one that is (or is resumed) in
    progress, before anything is deleted."""
    if not runs:
        return
    why = protected(store, all_runs(store))
    for run in runs:
        if run.run_id in why:
            raise RunInProgress(
                f"Cannot delete run {run.flow}/{run.run_id}: {why[run.run_id]}. Wait for it to "
                "end (or cancel it), then delete it."
            )
    store.metadata.delete_runs([run.run_id for run in runs])


def sweep(store: Store, report: Report) -> None:
    """Delete every blob no run names, small ones then files (see the module doc)."""
    started = time.time()
    refs = _References(store)
    report.small_blobs, report.small_bytes = store.metadata.sweep_blobs(refs)
    cutoff = started - CLOCK_SLACK
    if refs.oldest_in_progress is not None:
        report.in_progress = 1
        cutoff = min(cutoff, refs.oldest_in_progress - CLOCK_SLACK)
    for key in list(store.blobs.keys()):
        if key in refs.keys:
            continue
        freed = store.blobs.delete(key, untouched_since=cutoff)
        if freed:
            report.files += 1
            report.file_bytes += freed
        else:
            report.kept_recent += 1


def forget_artifacts(store: Store, run_id: int, names: Set[str]) -> int:
    """Drop `names` from the manifest of every task attempt of a run (its @transient
    artifacts, once it ended); how many attempts changed. Their blobs go at the next sweep."""
    rows = []
    for record in store.metadata.task_attempts(run_id):
        manifest = unpack(record.manifest) if record.manifest else {}
        if names & manifest.keys():
            kept = {name: key for name, key in manifest.items() if name not in names}
            rows.append(record._replace(manifest=pack(kept)))
    if rows:
        store.metadata.write_batch(rows, [])
    return len(rows)


def unreferenced(store: Store) -> Report:
    """What a sweep would delete now, deleting nothing (`--dry-run`)."""
    report = Report()
    refs = _References(store)
    keys = refs()
    for key in list(store.blobs.keys()):  # a BlobStore is not iterable itself
        if key not in keys:
            report.files += 1
            report.file_bytes += store.blobs.size(key)
    return report


def collect(store: Store, runs: Sequence[RunRecord], *, dry_run: bool = False) -> Report:
    """Delete `runs` (RunInProgress if one is in progress), then sweep; compact the metadata
    when no run is in progress. With `dry_run`, report the runs and the files that are
    unreferenced now, deleting nothing (small blobs of the runs are not counted)."""
    if dry_run:
        why = protected(store, all_runs(store))
        report = unreferenced(store) if not runs else Report()
        report.runs = [run for run in runs if run.run_id not in why]
        return report
    delete_runs(store, runs)
    report = Report(runs=list(runs))
    sweep(store, report)
    if not report.in_progress and (runs or report.small_blobs):
        store.metadata.compact()
        report.compacted = True
    return report


__all__ = [
    "Report",
    "RunInProgress",
    "choose_runs",
    "collect",
    "delete_runs",
    "forget_artifacts",
    "in_progress",
    "parse_age",
    "protected",
    "sweep",
]
