"""`copy_runs` (`aioflow store copy`): a run's cards go with it, readable from the copy through
the client; a large blob is streamed between blob stores in pieces, so copying it holds a few
pieces in memory, never the blob (a tracemalloc bound, deterministic); a damaged source blob is
refused before the target keeps anything under its key. Blob stores: folders, obstore's local
store and Azure (Azurite on 127.0.0.1)."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import aioflow.store.copy
import aioflow.store.objects
from aioflow import FlowSpec, card, current, run_flow_sync, step
from aioflow.cards import Markdown, get_cards
from aioflow.client import Flow
from aioflow.exceptions import BlobCorrupted
from aioflow.store import Store
from aioflow.store.blobs import FileBlobStore
from aioflow.store.copy import copy_runs
from aioflow.store.keys import is_identity
from aioflow.store.metadata import SqliteMetadataStore
from aioflow.store.objects import ObjectBlobStore
from aioflow.store.open import open_blobs
from aioflow.store.serde import unpack
from aioflow.testing import run_in_temp_store

#: The artifact streamed by the memory test, and the piece size it is streamed in.
BIG = 48 * 1024 * 1024
PIECE = 1024 * 1024


class CardFlow(FlowSpec):
    @card(type="blank", id="notes")
    @card
    @step
    def start(self):
        self.value = 42
        current.card["notes"].append(Markdown("# Copied along"))
        self.next(self.end)

    @card(type="blank")
    @step
    def end(self):
        current.card.append(Markdown("the end"))


class BigFlow(FlowSpec):
    @step
    def start(self):
        self.big = os.urandom(BIG)  # random: no encoding makes it smaller
        self.next(self.end)

    @step
    def end(self):
        pass


def _folder_store(folder: Path, blobs_url: str | None) -> Store:
    """SQLite in `folder`, blobs there or at `blobs_url`."""
    blobs = FileBlobStore(folder / "blobs") if blobs_url is None else open_blobs(blobs_url)
    return Store(folder, metadata=SqliteMetadataStore(folder / "metadata.db"), blobs=blobs)


@pytest.fixture(params=["sqlite+files", "postgres+s3"])
def team(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A target store folder: SQLite and files, or PostgreSQL metadata and S3 blobs (real
    servers on 127.0.0.1), as the client opens it from the environment."""
    folder = tmp_path / "team"
    if request.param == "postgres+s3":
        monkeypatch.setenv("AIOFLOW_METADATA", request.getfixturevalue("postgres_url"))
        monkeypatch.setenv("AIOFLOW_BLOBS", request.getfixturevalue("s3_url"))
    else:
        monkeypatch.delenv("AIOFLOW_METADATA", raising=False)
        monkeypatch.delenv("AIOFLOW_BLOBS", raising=False)
    return folder


async def test_copied_runs_carry_their_cards(
    tmp_path: Path, team: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop = tmp_path / "laptop"
    with monkeypatch.context() as local:  # the run is made on a laptop's own store
        local.delenv("AIOFLOW_METADATA", raising=False)
        local.delenv("AIOFLOW_BLOBS", raising=False)
        ran = await run_in_temp_store(CardFlow, laptop)
        source = Store(laptop)
        made = {
            name: [(c.id, c.type, c.html) for c in get_cards(ran[name].task)]
            for name in ("start", "end")
        }
    assert [(i, t) for i, t, _ in made["start"]] == [(None, "default"), ("notes", "blank")]
    target = Store(team)
    try:
        report = copy_runs(source, target, "CardFlow")
        [(_, _, new_id)] = report.copied
        assert report.cards == 3
        cards = target.metadata.cards(new_id)
        assert len(cards) == 3 and {c.run_id for c in cards} == {new_id}
    finally:
        target.close()
        source.close()
    copy = Flow("CardFlow", root=team)[str(new_id)]
    for step_name, expected in made.items():
        task = copy[step_name].task
        assert [(c.id, c.type, c.html) for c in get_cards(task)] == expected
    assert "Copied along" in get_cards(copy["start"].task, id="notes")[0].html
    assert "the end" in get_cards(f"CardFlow/{new_id}/end/{copy['end'].task.id}", root=team)[0].html


@pytest.fixture
def big_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A store folder holding one run of BigFlow, and the key of its `big` blob."""
    monkeypatch.delenv("AIOFLOW_METADATA", raising=False)
    monkeypatch.delenv("AIOFLOW_BLOBS", raising=False)
    folder = tmp_path / "laptop"
    run = run_flow_sync(BigFlow, root=folder, quiet=True)
    store = Store(folder)
    [start] = store.metadata.task_attempts(int(run.id), "start")
    assert start.manifest is not None
    key = unpack(start.manifest)["big"]
    store.close()
    yield folder, key


def _blob_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str | None:
    """Where a store's large blobs go: its folder ("files"), obstore's local store ("local"),
    or Azurite on 127.0.0.1 ("az", a real Azure Blob Storage API)."""
    if kind == "files":
        return None
    if kind == "local":
        return (tmp_path / name).as_uri()
    url: str = request.getfixturevalue("az_url")
    return url


@pytest.mark.parametrize(
    "pair", ["files->files", "files->local", "local->files", "files->az", "az->files"]
)
def test_a_large_blob_is_streamed_in_pieces(
    big_run: tuple[Path, str],
    tmp_path: Path,
    pair: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, key = big_run
    made = folder / "blobs" / key[:2] / key[2:]
    source_kind, target_kind = pair.split("->")
    source_url = _blob_url(source_kind, request, tmp_path, "source-objects")
    if source_url is not None:  # the source's blobs in an object store (the same bytes)
        with open(made, "rb") as f:
            open_blobs(source_url).write_stream(key, BIG + 1, iter(lambda: f.read(PIECE), b""))
    source = _folder_store(folder, source_url)
    target_url = _blob_url(target_kind, request, tmp_path, "target-objects")
    target = _folder_store(tmp_path / "team", target_url)
    # Pieces of 1 MB, and parts of 1 MB for obstore's uploads (a local store and Azure take
    # any size; S3's smallest is 5 MB): a copy holds at most STREAM_CONCURRENCY + 2 of them.
    monkeypatch.setattr(aioflow.store.copy, "CHUNK", PIECE)
    monkeypatch.setattr(aioflow.store.objects, "PART_SIZE", PIECE)
    tracemalloc.start()
    try:
        report = copy_runs(source, target, "BigFlow")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Python held a few pieces at a time, never the 48 MB blob (nor a quarter of it).
    assert peak < BIG // 4, f"copying held {peak:,} bytes at once"
    assert report.bytes > BIG and len(report.copied) == 1
    assert isinstance(target.blobs, FileBlobStore if target_url is None else ObjectBlobStore)
    assert target.blobs.size(key) == BIG + 1
    tag, payload = target.blobs.get(key)  # whole and verified
    with open(made, "rb") as f:
        assert bytes((tag,)) + bytes(payload) == f.read()
    source.close()
    target.close()


@pytest.mark.parametrize("to", ["files", "local", "az"])
def test_a_damaged_source_blob_leaves_nothing_in_the_target(
    big_run: tuple[Path, str], tmp_path: Path, to: str, request: pytest.FixtureRequest
) -> None:
    folder, key = big_run
    path = folder / "blobs" / key[:2] / key[2:]
    with open(path, "r+b") as f:  # one flipped byte in the last piece
        f.seek(BIG - 10)
        byte = f.read(1)
        f.seek(BIG - 10)
        f.write(bytes((byte[0] ^ 0xFF,)))
    source = _folder_store(folder, None)
    target = _folder_store(tmp_path / "team", _blob_url(to, request, tmp_path, "objects"))
    with pytest.raises(BlobCorrupted) as info:
        copy_runs(source, target, "BigFlow")
    assert key in str(info.value) and "BigFlow/1 (copying)" in str(info.value)
    assert not target.blobs.has(key)
    assert list(target.blobs.keys()) == [] and target.metadata.flows() == []
    if to == "files":
        assert list((tmp_path / "team" / "blobs" / "tmp").iterdir()) == []
    source.close()
    target.close()


class SmallValuesFlow(FlowSpec):
    @step
    def start(self):
        self.count = 3  # an identity key: the value is in the key
        self.label = "a label longer than any identity key can hold"  # a stored small blob
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_run_of_identity_keys_copies_only_its_stored_blobs(
    tmp_path: Path, team: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop = tmp_path / "laptop"
    with monkeypatch.context() as local:
        local.delenv("AIOFLOW_METADATA", raising=False)
        local.delenv("AIOFLOW_BLOBS", raising=False)
        await run_in_temp_store(SmallValuesFlow, laptop)
        source = Store(laptop)
    target = Store(team)
    try:
        run_id = source.metadata.run_page("SmallValuesFlow", before=None, limit=1)[0].run_id
        keys = aioflow.store.copy.run_blob_keys(source, run_id)
        stored = [k for k in keys if not is_identity(k)]
        assert stored and len(stored) < len(keys)  # both kinds are named
        report = copy_runs(source, target, "SmallValuesFlow")
        assert report.blobs == len(stored)  # an identity key is copied with the row naming it
        assert report.bytes == sum(source.blob_size(k) for k in stored)
    finally:
        target.close()
        source.close()
    copy = Flow("SmallValuesFlow", root=team).latest_run
    assert copy is not None
    assert copy["start"].task.data.count == 3
    assert copy["start"].task.data.label.startswith("a label")
    assert copy["join"].task.data.squares == [1, 4]
    assert sorted(t.data.square for t in copy["each"]) == [1, 4]
