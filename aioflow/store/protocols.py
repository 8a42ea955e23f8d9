"""What a store backend is: a `MetadataStore` for runs and task attempts, a `BlobStore` for blobs.

The runtime and the client talk to these two protocols only, through `Store`; SQLite and files
(`metadata.py`, `blobs.py`) and memory (`memory.py`) implement them. Records are plain typed
tuples, so no backend's row type, SQL or file path leaks out. A few fields hold values packed
with `serde.pack` (a manifest, lineage, an error): the store keeps them as they are given, and
only the runtime and the client unpack them.

Blob keys are the blake3 hex digests `serde.encode` computes; a blob's bytes are its tag byte
followed by its payload. Every read is checked against the key (`BlobCorrupted` when it does
not match) and a missing blob raises `BlobNotFound`, naming the key and where it was looked for.
A blob of a few bytes has an identity key instead (`keys.py`): the key holds the blob, nothing
stores it, and every read of it (`get`, `has`, `size`, `get_blob`, ...) answers from the key.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence, Set
from typing import Any, NamedTuple, Protocol

from .serde import Buffer


class RunRecord(NamedTuple):
    """One run, as every reader sees it (without its graph and parameters, read on demand)."""

    run_id: int
    flow: str
    #: running, succeeded, failed or cancelled; a killed run keeps reading running (see
    #: `MetadataStore.process_gone`).
    status: str
    user: str | None
    created_at: float
    finished_at: float | None
    #: The id of the run this one resumed, else None.
    origin_run_id: str | None
    tags: tuple[str, ...]
    system_tags: tuple[str, ...]
    #: The process that ran the run, and its machine.
    pid: int | None
    host: str | None
    #: Why the run failed, packed: {pathspec, type, message, traceback}.
    error: bytes | None
    #: 1 while the run's process holds a lock the store can probe; None when only the pid
    #: tells whether it is alive (runs stored before run locks, file systems without locks).
    run_lock: int | None


#: The fields of a run the runtime updates as the run goes (`MetadataStore.write_batch`).
RUN_UPDATE_FIELDS = frozenset({"status", "finished_at", "error"})


class CardRecord(NamedTuple):
    """One card of one task attempt (`@card`): whose it is, and the key of its HTML.

    The HTML is a blob in the BlobStore (a `str` encoded by `serde.encode`), put there before
    the record is stored. A card refreshed while its task runs is stored again under the same
    (run, task, attempt, position), with its new key and time.
    """

    run_id: int
    task_id: int
    attempt: int
    #: The card's place among its step's @card decorators (0, 1, ...).
    position: int
    card_id: str | None
    card_type: str
    key: str
    updated_at: float


class TaskRecord(NamedTuple):
    """One attempt of one task (fields in this order, so a record is also a plain row).

    `status` is running, succeeded, failed, caught (failed, but @catch let the run go on) or
    cancelled (interrupted: the run stopped it, after Ctrl-C or another task's failure);
    `origin` is the pathspec of the task a resumed run cloned this one from; `stdout` and
    `stderr` are blob keys of the logs. Packed (`serde.pack`): `frames` (where the task sits in
    its splits), `parents` (the task ids it came from), `manifest` (artifact name -> blob key),
    `exception` and `transition` (`[targets, foreach variable, key of the foreach items]`).
    """

    run_id: int
    task_id: int
    attempt: int
    step: str
    status: str
    started_at: float | None
    finished_at: float | None
    frames: bytes | None
    parents: bytes | None
    manifest: bytes | None
    stdout: str | None
    stderr: str | None
    exception: bytes | None
    origin: str | None
    transition: bytes | None


class MetadataStore(Protocol):
    """Runs, task attempts and small blobs; safe to share between threads.

    Writes come in batches, each all-or-nothing. A run created through one object is alive
    (`process_gone` is False for it, from anywhere) until that object is closed or its process
    ends.
    """

    #: Where the metadata lives, for messages (a file, a URL, "memory").
    location: str

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
        """Store a new running run and return its id: larger than any id given before."""
        ...

    def write_batch(
        self,
        tasks: Iterable[TaskRecord],
        blobs: Iterable[tuple[str, bytes]],
        run_updates: Sequence[tuple[int, Mapping[str, Any]]] = (),
    ) -> None:
        """Store blobs (kept if present), task attempts (replaced if present) and run updates
        (fields of `RUN_UPDATE_FIELDS`), all or nothing."""
        ...

    def get_blob(self, key: str) -> bytes | None:
        """A small blob's bytes (tag, then payload), or None when it is not here; for an
        identity key (`keys.py`), the blob the key holds, which is never stored."""
        ...

    def blob_size(self, key: str) -> int | None:
        """A small blob's length in bytes, or None when it is not here (an identity key's
        blob's length: it is never stored)."""
        ...

    def flows(self) -> list[str]:
        """Names of every flow with at least one run, sorted."""
        ...

    def run(self, flow: str, run_id: int) -> RunRecord | None:
        """One run of a flow, or None."""
        ...

    def run_page(
        self, flow: str | None, *, before: int | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Up to `limit` runs of a flow (of every flow when None), newest first; `before` pages
        on to runs with smaller ids."""
        ...

    def latest_run_id(self, flow: str, *, resumed: bool | None = None) -> int | None:
        """The newest run id of a flow, or None; `resumed` True or False counts only runs
        started by a resume, or only those that were not."""
        ...

    def first_run_time(self, flow: str) -> float | None:
        """When the flow's first stored run started, or None."""
        ...

    def run_graph(self, run_id: int) -> bytes | None:
        """The packed graph description stored with a run."""
        ...

    def run_params(self, run_id: int) -> bytes | None:
        """The packed manifest every task of the run starts from (name, parameters,
        constants), which a resume reuses."""
        ...

    def update_run_tags(
        self, flow: str, run_id: int, mutate: Callable[[list[str], list[str]], list[str]]
    ) -> list[str] | None:
        """Set a run's user tags to `mutate(user_tags, system_tags)`, atomically against any
        other writer; the tags now stored, or None when there is no such run. `mutate` may
        raise to change nothing."""
        ...

    def process_gone(self, run: RunRecord) -> bool:
        """True when `run` reads running but nothing runs it any more (its process died);
        False for a run whose liveness cannot be told from here."""
        ...

    def task_attempts(
        self, run_id: int, step: str | None = None, task_id: int | None = None
    ) -> list[TaskRecord]:
        """Attempts of a run's tasks (of one step, of one task), by task id then attempt."""
        ...

    def task_attempts_by_id(self, run_id: int, task_ids: Sequence[int]) -> list[TaskRecord]:
        """Every attempt of the given tasks of a run, by task id then attempt."""
        ...

    def steps(self, run_id: int) -> list[tuple[str, float | None]]:
        """(step name, first start time) of every step with a task in the run, in the order
        their first tasks were created."""
        ...

    def put_card(self, card: CardRecord) -> None:
        """Store a card's record, replacing the one at its run, task, attempt and position
        (written while the task runs, apart from batches). Deleting the run deletes it."""
        ...

    def cards(self, run_id: int, task_id: int | None = None) -> list[CardRecord]:
        """The cards of a run's tasks (of one task), by task id, attempt and position."""
        ...

    def close(self) -> None:
        """Let go of what this object holds; the runs it created read ended. It may be used
        again afterwards (it reopens what it needs)."""
        ...

    # -- deleting (`aioflow runs delete`, `aioflow gc`: see `store/gc.py`) ---------------------

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Remove these runs and every task attempt of theirs, all or nothing; return how many
        runs were removed (ids not stored are skipped). Blobs are left to `sweep_blobs`. It
        does not check whether a run is in progress: the caller (`gc.py`) does."""
        ...

    def sweep_blobs(self, referenced: Callable[[], Set[str]]) -> tuple[int, int]:
        """Delete every small blob whose key is not in `referenced()`; return (blobs, bytes)
        deleted.

        `referenced` reads the runs through this same object, and the read and the deletes
        are one transaction that excludes writers (SQLite: BEGIN IMMEDIATE; memory: the lock),
        so a batch committed at the same time is either seen by `referenced` or lands after
        the sweep and stores its blobs again: small blobs commit with the rows naming them.
        """
        ...

    def compact(self) -> None:
        """Give the space of deleted rows back to the file system (SQLite: VACUUM); a no-op
        for a backend that does so itself. Called by gc only when no run is in progress."""
        ...


class BlobStore(Protocol):
    """Where large blobs go: put once under their key, read back verified."""

    #: Where the blobs live, for messages (a folder, a bucket, "memory").
    location: str

    def has(self, key: str) -> bool:
        """True when a blob with this key is stored (always, for an identity key)."""
        ...

    def put(self, key: str, chunks: tuple[Buffer, ...]) -> None:
        """Store the blob made of `chunks` under `key`; when it is already there, only mark it
        as put now (see `delete`)."""
        ...

    def get(self, key: str) -> tuple[int, Buffer]:
        """(tag, payload) of a stored blob; BlobNotFound when absent, BlobCorrupted when it
        does not match its key."""
        ...

    def size(self, key: str) -> int:
        """The stored size of a blob in bytes; BlobNotFound when absent."""
        ...

    # -- streaming (`store/copy.py`: a blob of any size, a piece at a time) --------------------

    def read_stream(self, key: str, chunk_size: int) -> Generator[Buffer, None, None]:
        """The stored blob's bytes, its tag byte first, in pieces of about `chunk_size` read
        as they are asked for; BlobNotFound when absent, and BlobCorrupted after the last
        piece when the bytes do not match the key (so a reader keeps nothing before the
        end)."""
        ...

    def write_stream(self, key: str, size: int, chunks: Iterable[Buffer]) -> None:
        """Store a blob of `size` bytes given as pieces (consumed once, never all held at
        once where the backend can avoid it); as `put` when it is there already. When
        `chunks` raises, nothing is stored and the exception propagates."""
        ...

    # -- deleting (`store/gc.py`) ---------------------------------------------------------------

    def keys(self) -> Iterator[str]:
        """Every stored blob's key, in no order (blobs put while it runs may be missed)."""
        ...

    def delete(self, key: str, *, untouched_since: float) -> int:
        """Remove the blob unless it was put at or after `untouched_since` (a `time.time()`);
        return the bytes freed (0: absent, or kept because it was put since).

        `put` of a blob already there marks it as put now, so a writer about to reference an
        old blob keeps it from this delete; `gc.py` explains why that closes the race between
        a writer's put and the commit of the row naming the blob.
        """
        ...


__all__ = [
    "RUN_UPDATE_FIELDS",
    "BlobStore",
    "CardRecord",
    "MetadataStore",
    "RunRecord",
    "TaskRecord",
]
