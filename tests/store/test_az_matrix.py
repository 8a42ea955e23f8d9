"""The graph-shape x behaviour matrix (tests/runtime/test_scheduler.py) on SQLite metadata and
Azure blobs: every shape runs to its end and fails where asked, with every blob, however small,
sent to Azurite (Microsoft's Azure Blob Storage emulator, on 127.0.0.1) instead of SQLite, so
each artifact of each task is put to and read back from the Azure API."""

from __future__ import annotations

from pathlib import Path

import pytest

import aioflow.runtime.artifacts
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


@pytest.fixture
def where(aioflow_root: Path, az_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store folder whose blobs go to a fresh Azure container, all of them (none is small)."""
    monkeypatch.setenv("AIOFLOW_BLOBS", az_url)
    monkeypatch.setattr(aioflow.runtime.artifacts, "SMALL", 0)
    return aioflow_root


async def test_the_matrix_store_puts_every_blob_in_azure(where: Path, az_url: str) -> None:
    run = await run_here(LinearFlow, where)
    store = Store(where)
    try:
        assert isinstance(store.blobs, ObjectBlobStore) and store.blobs.url == az_url
        in_azure = set(store.blobs.keys())
        attempts = store.metadata.task_attempts(int(run.id))
        assert len(attempts) == len(all_tasks(run)) == 4
        for attempt in attempts:
            assert attempt.manifest is not None
            for key in unpack(attempt.manifest).values():
                assert key in in_azure
                assert store.metadata.blob_size(key) is None  # not in SQLite
    finally:
        store.close()
