"""Helpers for testing flows: run one in a throwaway store and get its `Run` back.

With pytest, enable the plugin once (in `conftest.py`) and use its fixtures:

    pytest_plugins = ["aioflow.testing"]

    async def test_my_flow(flow_runner):
        run = await flow_runner(MyFlow, alpha=0.5)      # a fresh store per test, quiet
        assert run["end"].task.data.result == 42

    async def test_my_flow_fails(flow_runner):
        with pytest.raises(FlowFailed) as info:
            await flow_runner(MyFlow, alpha=-1)
        assert isinstance(info.value.__cause__, ValueError)

    async def test_events(flow_runner):
        async with flow_runner.start(MyFlow) as handle:  # start_flow in the same store
            events = [event async for event in handle.events()]

Fixtures:

- `aioflow_root`: a fresh store folder for the test, also set as `$AIOFLOW_ROOT`, so client
  objects (`Flow("MyFlow")`, `Run("MyFlow/1")`) read it too.
- `flow_runner`: a `FlowRunner` on that store: `await flow_runner(MyFlow, **parameters)` is
  `run_flow(MyFlow, root=<the store>, quiet=True, **parameters)`; `.start(...)` is `start_flow`,
  `.resume(...)` is `resume_flow`, `.sync(...)` is `run_flow_sync`, `.runs` lists the runs it
  returned, `.root` is the store folder.

Async tests need an async test runner (pytest-asyncio or anyio's pytest plugin). Without pytest,
`await run_in_temp_store(MyFlow, tmp_dir, **parameters)` does the same as `flow_runner`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .api import resume_flow, run_flow, run_flow_sync, start_flow
from .client import Run
from .flowspec import FlowSpec
from .handle import FlowHandle

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pytest = None  # type: ignore[assignment]


async def run_in_temp_store(
    flow_cls: type[FlowSpec], root: str | os.PathLike[str], **kwargs: Any
) -> Run:
    """`run_flow` with the store at `root` and the console quiet unless asked otherwise."""
    kwargs.setdefault("quiet", True)
    return await run_flow(flow_cls, root=root, **kwargs)


class FlowRunner:
    """Runs flows in one store (quietly unless `quiet=False` is given); see the module doc."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.runs: list[Run] = []

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("quiet", True)
        kwargs.setdefault("root", self.root)
        return kwargs

    async def __call__(self, flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
        """`run_flow(flow_cls, **kwargs)` in this store; returns the Run or raises FlowFailed."""
        run = await run_flow(flow_cls, **self._options(kwargs))
        self.runs.append(run)
        return run

    def start(self, flow_cls: type[FlowSpec], **kwargs: Any) -> FlowHandle:
        """`start_flow(flow_cls, **kwargs)` in this store, for `async with`."""
        return start_flow(flow_cls, **self._options(kwargs))

    async def resume(self, flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
        """`resume_flow(flow_cls, **kwargs)` in this store."""
        run = await resume_flow(flow_cls, **self._options(kwargs))
        self.runs.append(run)
        return run

    def sync(self, flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
        """`run_flow_sync(flow_cls, **kwargs)` in this store (for plain `def` tests)."""
        run = run_flow_sync(flow_cls, **self._options(kwargs))
        self.runs.append(run)
        return run

    def __repr__(self) -> str:
        return f"<FlowRunner {self.root} ({len(self.runs)} runs)>"


if pytest is not None:

    @pytest.fixture
    def aioflow_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        """A fresh store folder for one test, also set as $AIOFLOW_ROOT."""
        root = tmp_path / "aioflow-store"
        monkeypatch.setenv("AIOFLOW_ROOT", str(root))
        yield root

    @pytest.fixture
    def flow_runner(aioflow_root: Path) -> FlowRunner:
        """Runs flows in the test's own store: `run = await flow_runner(MyFlow, alpha=0.5)`."""
        return FlowRunner(aioflow_root)


__all__ = ["FlowRunner", "run_in_temp_store"]
