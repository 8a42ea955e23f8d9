"""Shared fixtures of the micro-benchmarks: a fresh store per benchmark."""

from __future__ import annotations

import pytest

from aioflow.store import Store


@pytest.fixture
def store(tmp_path):
    """An empty store in a temporary folder, closed afterwards."""
    opened = Store(tmp_path / "store")
    yield opened
    opened.close()
