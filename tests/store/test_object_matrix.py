"""The graph-shape x behaviour matrix (tests/runtime/test_scheduler.py) on SQLite metadata and
blobs in object storage, S3 (moto on 127.0.0.1) and Azure (Azurite, Microsoft's emulator, on
127.0.0.1): every shape runs to its end and fails where asked, with every blob, however small,
sent to the server instead of SQLite, so each artifact of each task is put to and read back
from its API."""

from __future__ import annotations

from pathlib import Path

import pytest

import aioflow.runtime.artifacts
import aioflow.store.serde
from aioflow.store import Store
from aioflow.store.objects import ObjectBlobStore
from aioflow.store.serde import unpack

# The matrix's tests and its autouse fixture, run here with this module's `where`.
from tests.runtime.test_scheduler import (  # noqa: F401
    LinearFlow,
    _fresh_state,
    all_tasks,
    run_here,
    test_shape_fails_at_a_step,
    test_shape_runs_to_the_end,
)


@pytest.fixture(params=["s3", "az"])
def blobs_url(request: pytest.FixtureRequest) -> str:
    """A fresh bucket (S3) or container (Azure) on its server, as a blobs URL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def where(aioflow_root: Path, blobs_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store folder whose blobs all go to `blobs_url` (no blob is small, and none is kept in
    its key: the matrix's values are tiny, and would otherwise never reach the server)."""
    monkeypatch.setenv("AIOFLOW_BLOBS", blobs_url)
    monkeypatch.setattr(aioflow.runtime.artifacts, "SMALL", 0)
    monkeypatch.setattr(aioflow.store.serde, "IDENTITY_MAX", -1)
    return aioflow_root


async def test_the_matrix_store_puts_every_blob_in_object_storage(
    where: Path, blobs_url: str
) -> None:
    run = await run_here(LinearFlow, where)
    store = Store(where)
    try:
        assert isinstance(store.blobs, ObjectBlobStore) and store.blobs.url == blobs_url
        stored = set(store.blobs.keys())
        attempts = store.metadata.task_attempts(int(run.id))
        assert len(attempts) == len(all_tasks(run)) == 4
        for attempt in attempts:
            assert attempt.manifest is not None
            for key in unpack(attempt.manifest).values():
                assert key in stored
                assert store.metadata.blob_size(key) is None  # not in SQLite
    finally:
        store.close()
