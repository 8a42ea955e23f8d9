"""Shared fixtures: a store per test, and flow files written to temp folders and loaded."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aioflow.flowspec import FlowSpec
from aioflow.loader import load_flow
from tests.postgres_server import PostgresServer

pytest_plugins = ["aioflow.testing"]

_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _no_store_above_the_temp_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stop the session, saying why, when a `.aioflow` store sits above pytest's temp folders.

    A command run in a test's tmp_path uses the nearest `.aioflow` in that folder or its
    parents, as in real use: one left in /tmp (by `aioflow run` there) would take the runs of
    every such test, which then fail in ways that do not point at it.
    """
    base = tmp_path_factory.getbasetemp()
    for folder in base.parents:
        if (folder / ".aioflow").is_dir():
            pytest.exit(
                f"{folder / '.aioflow'} is an aioflow store above pytest's temporary folders "
                f"({base}): tests that run aioflow there would use it. Remove it, or run "
                "pytest with --basetemp=<a folder with no .aioflow above it>.",
                returncode=4,
            )


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole session, started when first asked for."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL (with its password) of a new, empty database on the session's server."""
    return postgres_server.database()
