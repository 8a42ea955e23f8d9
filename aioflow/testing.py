"""Helpers for testing flows: run one in a throwaway store and get its `Run` back.

    from aioflow.testing import run_in_temp_store

    async def test_my_flow(tmp_path):
        run = await run_in_temp_store(MyFlow, tmp_path, alpha=0.5)
        assert run["end"].task.data.result == 42

The pytest fixture `aioflow_root` (enable with `pytest_plugins = ["aioflow.testing"]`) gives a
fresh store folder per test and points `AIOFLOW_ROOT` at it, so client objects read it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .api import run_flow
from .client import Run
from .flowspec import FlowSpec

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pytest = None  # type: ignore[assignment]


async def run_in_temp_store(
    flow_cls: type[FlowSpec], root: str | os.PathLike[str], **kwargs: Any
) -> Run:
    """`run_flow` with the store at `root` and the console quiet unless asked otherwise."""
    kwargs.setdefault("quiet", True)
    return await run_flow(flow_cls, root=root, **kwargs)


if pytest is not None:

    @pytest.fixture
    def aioflow_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        """A fresh store folder for one test, also set as $AIOFLOW_ROOT."""
        root = tmp_path / "aioflow-store"
        monkeypatch.setenv("AIOFLOW_ROOT", str(root))
        yield root
