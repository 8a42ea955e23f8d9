"""The graph-shape x behaviour matrix (tests/runtime/test_scheduler.py) on PostgreSQL metadata
and S3 blobs, as a team's shared store has them: a store folder whose `$AIOFLOW_METADATA` is a
real PostgreSQL server and `$AIOFLOW_BLOBS` an S3 bucket (moto on 127.0.0.1). Small blobs stay
in PostgreSQL, larger ones go to S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioflow.store import Store
from aioflow.store.objects import ObjectBlobStore
from aioflow.store.postgres import PostgresMetadataStore

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
def where(
    aioflow_root: Path, postgres_url: str, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A store folder whose metadata is in a fresh PostgreSQL database, its blobs in S3."""
    monkeypatch.setenv("AIOFLOW_METADATA", postgres_url)
    monkeypatch.setenv("AIOFLOW_BLOBS", s3_url)
    return aioflow_root


async def test_the_matrix_store_is_postgres_and_s3(where: Path) -> None:
    run = await run_here(LinearFlow, where)
    store = Store(where)
    try:
        assert isinstance(store.metadata, PostgresMetadataStore)
        assert isinstance(store.blobs, ObjectBlobStore)
        assert len(store.metadata.task_attempts(int(run.id))) == len(all_tasks(run)) == 4
        assert not (where / "metadata.db").exists()
    finally:
        store.close()
