"""Copying runs from one store to another (`aioflow store copy --from A --to B [FLOW[/RUN]]`).

A run made on a laptop (SQLite and files) is published to the team's store (PostgreSQL and S3),
or the other way round. A run is copied as its metadata (its row, graph, parameters and every
task attempt) and the blobs it names (parameters, artifacts, logs, foreach items), each blob
once: one already in the target (from an earlier copy, or another run holding the same value)
is neither read nor sent again. Blobs are read verified, so a damaged source is not spread.
A run's cards (`@card`) go with it: their records, and their pages, which are blobs. A value
whose key is an identity key (`keys.py`) travels in the rows that name it: nothing to copy.

A large blob is streamed from one blob store to the other in pieces of `CHUNK` bytes (files,
S3, GCS, Azure alike: `BlobStore.read_stream` / `write_stream`), so copying a multi-GB artifact
holds a few pieces of it at a time, never the whole; it is checked against its key as it
passes, and the target keeps it only once the last piece checked out (a damaged source blob
aborts the write, leaving nothing under its key).

The target gives the copy its own run id (ids are the target store's to assign); the copy
carries the system tag `copied_from:<FLOW>/<ID>@<source>`, by which a second copy of the same
run is recognised and skipped. Runs in progress are skipped: their rows are not final yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field

from ..exceptions import BlobError, StoreError
from . import Store
from .blobs import STREAM_CHUNK
from .keys import is_identity
from .metadata import SMALL
from .protocols import CardRecord, RunRecord
from .serde import decode_plain, unpack
from .settings import redact

#: The system tag that marks a copied run, followed by `FLOW/ID@source`.
COPIED_FROM = "copied_from:"
#: Small blobs written to the target metadata per batch.
BATCH_BYTES = 16 * 1024 * 1024
#: The pieces a large blob is streamed in, from the source's blob store to the target's.
CHUNK = STREAM_CHUNK


@dataclass
class CopyReport:
    """What a copy did: (flow, source id, target id) per run copied, runs skipped and why, and
    the blobs and bytes sent (blobs the target had are not counted)."""

    copied: list[tuple[str, int, int]] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0
    cards: int = 0


def select_runs(store: Store, flow: str | None, run_id: int | None) -> list[RunRecord]:
    """The runs to copy, oldest first: one run, a flow's runs, or every run.

    StoreError when the named flow or run is not in the store.
    """
    if run_id is not None:
        assert flow is not None
        run = store.metadata.run(flow, run_id)
        if run is None:
            raise StoreError(f"No run {flow}/{run_id} in the store {redact(store.location)}.")
        return [run]
    runs: list[RunRecord] = []
    before = None
    while True:
        page = store.metadata.run_page(flow, before=before, limit=500)
        runs.extend(page)
        if len(page) < 500:
            break
        before = page[-1].run_id
    if flow is not None and not runs:
        raise StoreError(f"No runs of {flow} in the store {redact(store.location)}.")
    return sorted(runs, key=lambda r: (r.flow, r.run_id))


def run_blob_keys(store: Store, run_id: int, cards: list[CardRecord] | None = None) -> list[str]:
    """Every blob key the run names, each once, in a stable order: its cards' pages last
    (`cards`, when the caller read them already)."""
    metadata = store.metadata
    keys: dict[str, None] = {}
    params = metadata.run_params(run_id)
    if params:
        keys.update(dict.fromkeys(unpack(params).values()))
    for task in metadata.task_attempts(run_id):
        if task.manifest:
            keys.update(dict.fromkeys(unpack(task.manifest).values()))
        keys.update(dict.fromkeys(k for k in (task.stdout, task.stderr) if k))
        if task.transition:
            items_key = unpack(task.transition)[2]
            if items_key:
                keys[items_key] = None
                listed = decode_plain(*store.read_blob(items_key))
                keys.update(dict.fromkeys(k for k in listed if isinstance(k, str)))
    if cards is None:
        cards = metadata.cards(run_id)
    keys.update(dict.fromkeys(card.key for card in cards))
    return list(keys)


def _copied_tag(run: RunRecord, source: Store) -> str:
    return f"{COPIED_FROM}{run.flow}/{run.run_id}@{redact(source.location)}"


def _already_copied(target: Store, flows: Iterable[str]) -> set[str]:
    """The `copied_from:` tags of the target's runs of these flows."""
    tags: set[str] = set()
    for flow in set(flows):
        before = None
        while True:
            page = target.metadata.run_page(flow, before=before, limit=500)
            for run in page:
                tags.update(t for t in run.system_tags if t.startswith(COPIED_FROM))
            if len(page) < 500:
                break
            before = page[-1].run_id
    return tags


class _BlobCopier:
    """Copies blobs from `source` to `target`, each once; small ones go in batches to the
    target's metadata store, as the runtime writes them."""

    def __init__(self, source: Store, target: Store, report: CopyReport) -> None:
        self.source, self.target, self.report = source, target, report
        self.done: set[str] = set()
        self.small: list[tuple[str, bytes]] = []
        self.small_bytes = 0

    def copy(self, key: str) -> None:
        if key in self.done or is_identity(key):  # an identity key's blob is the key: copied
            return
        self.done.add(key)
        if self.target.metadata.blob_size(key) is not None or self.target.blobs.has(key):
            return
        size = self.source.blob_size(key)
        if size <= SMALL:  # read whole (it is small), to the target's metadata
            tag, payload = self.source.read_blob(key)
            self.small.append((key, bytes((tag,)) + bytes(payload)))
            self.small_bytes += size
            if self.small_bytes >= BATCH_BYTES:
                self.flush()
        else:  # blob store to blob store, a piece at a time, checked as it passes
            with closing(self.source.blobs.read_stream(key, CHUNK)) as chunks:
                self.target.blobs.write_stream(key, size, chunks)
        self.report.blobs += 1
        self.report.bytes += size

    def flush(self) -> None:
        if self.small:
            self.target.metadata.write_batch([], self.small, [])
            self.small, self.small_bytes = [], 0


def copy_runs(
    source: Store,
    target: Store,
    flow: str | None = None,
    run_id: int | None = None,
    *,
    on_run: Callable[[str, int, int], None] | None = None,
) -> CopyReport:
    """Copy runs (one, a flow's, or all) with the blobs they name from `source` to `target`.

    `on_run(flow, source id, target id)` is called after each run is copied. Raises StoreError
    (a BlobError naming the blob and run) when the source cannot be read or the target written;
    runs copied before stay copied.
    """
    report = CopyReport()
    runs = select_runs(source, flow, run_id)
    copied = _already_copied(target, (r.flow for r in runs))
    blobs = _BlobCopier(source, target, report)
    for run in runs:
        spec = f"{run.flow}/{run.run_id}"
        tag = _copied_tag(run, source)
        if tag in copied:
            report.skipped.append((run.flow, run.run_id, "copied before"))
            continue
        if run.status == "running" and not source.metadata.process_gone(run):
            report.skipped.append((run.flow, run.run_id, "in progress"))
            continue
        cards = source.metadata.cards(run.run_id)
        try:
            for key in run_blob_keys(source, run.run_id, cards):
                blobs.copy(key)
            blobs.flush()  # the blobs before the rows naming them, as the runtime stores them
        except BlobError as exc:
            raise exc.in_context(pathspec=f"{spec} (copying)") from None
        new_id = _copy_metadata(source, target, run, tag, cards)
        report.copied.append((run.flow, run.run_id, new_id))
        report.cards += len(cards)
        if on_run is not None:
            on_run(run.flow, run.run_id, new_id)
    return report


def _copy_metadata(
    source: Store, target: Store, run: RunRecord, tag: str, cards: list[CardRecord]
) -> int:
    """Store the run's row, task attempts and cards in the target, ended as the source's
    ended (the cards before the end: a run that reads ended has them all)."""
    graph = source.metadata.run_graph(run.run_id) or b""
    new_id = target.metadata.create_run(
        run.flow,
        user=run.user or "unknown",
        tags=run.tags,
        system_tags=(*run.system_tags, tag),
        graph=graph,
        origin_run_id=run.origin_run_id,
        params=source.metadata.run_params(run.run_id),
    )
    for card in cards:
        target.metadata.put_card(card._replace(run_id=new_id))
    tasks = [t._replace(run_id=new_id) for t in source.metadata.task_attempts(run.run_id)]
    update = {"status": run.status, "finished_at": run.finished_at, "error": run.error}
    target.metadata.write_batch(tasks, [], [(new_id, update)])
    end_run = getattr(target.metadata, "end_run", None)
    if end_run is not None:  # let go of the run's lock now: the copy is not running anywhere
        end_run(new_id)
    return new_id


__all__ = ["COPIED_FROM", "CopyReport", "copy_runs", "run_blob_keys", "select_runs"]
