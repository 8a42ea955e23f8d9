"""Fixtures of the store tests: one real S3 server (moto) and one real Azure Blob Storage
emulator (Azurite) per session, each started when first asked for, and a fresh bucket or
container per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.azurite_server import AzuriteServer
from tests.s3_server import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's S3 server on 127.0.0.1, started when first asked for."""
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<a new bucket>/blobs`, with the environment pointing obstore at the server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.bucket()}/blobs"


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """The session's Azurite on 127.0.0.1, started when first asked for."""
    server = AzuriteServer()
    yield server
    server.stop()


@pytest.fixture
def az_url(azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """`az://<a new container>/blobs`, with the environment pointing obstore at Azurite."""
    for name, value in azurite_server.env().items():
        monkeypatch.setenv(name, value)
    return f"az://{azurite_server.container()}/blobs"
