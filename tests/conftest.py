"""Shared fixtures: a store per test, and flow files written to temp folders and loaded."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from aioflow.flowspec import FlowSpec
from aioflow.loader import load_flow

pytest_plugins = ["aioflow.testing"]

_counter = itertools.count()


@pytest.fixture
def write_flow(tmp_path: Path) -> Callable[[str], Path]:
    """Write flow source (dedented) to a fresh file in tmp_path and return its path."""

    def write(source: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"flow_{next(_counter)}.py")
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def make_flow(write_flow: Callable[[str], Path]) -> Callable[[str], type[FlowSpec]]:
    """Write flow source to a temp file and return the loaded flow class."""

    def make(source: str) -> type[FlowSpec]:
        return load_flow(write_flow(source))

    return make
