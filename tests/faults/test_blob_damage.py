"""Fault injection: blobs corrupted, truncated or deleted, in files and in the database.

Each damage is met by one clear error naming the artifact, the task and where the blob was
looked for, whoever reads it (the client, `aioflow dump`, a step reading its parent's
artifact), and the next run that stores the same value repairs it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from aioflow import FlowSpec, Task, step
from aioflow.api import resume_flow
from aioflow.client.namespaces import scoped_namespace
from aioflow.exceptions import BlobCorrupted, BlobError, BlobNotFound, FlowFailed
from aioflow.store import SMALL, FileBlobStore
from aioflow.store.serde import encode
from aioflow.testing import run_in_temp_store
from tests.helpers import invoke

LARGE_VALUE = b"L" * (SMALL + 1000)  # a file under blobs/
SMALL_VALUE = "a small value, kept in the database"


class ValueFlow(FlowSpec):
    @step
    def start(self):
        self.in_file = LARGE_VALUE
        self.in_db = SMALL_VALUE
        self.next(self.end)

    @step
    def end(self):
        self.seen = (len(self.in_file), self.in_db)


def flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


DAMAGES: dict[str, Callable[[bytes], bytes | None]] = {
    "corrupted": flip,
    "truncated": lambda data: data[: len(data) // 2],
    "deleted": lambda data: None,
}


def damage(root: Path, artifact: str, how: str) -> str:
    """Damage the blob of `artifact` of ValueFlow's start task; return where it lives."""
    with scoped_namespace(None):
        key = Task("ValueFlow/1/start/1", root=root)[artifact].sha
    change = DAMAGES[how]
    if artifact == "in_file":
        path = FileBlobStore(root / "blobs").path(key)
        new = change(path.read_bytes())
        if new is None:
            path.unlink()
        else:
            path.write_bytes(new)
        return str(path)
    conn = sqlite3.connect(root / "metadata.db")
    with conn:
        (data,) = conn.execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
        new = change(data)
        if new is None:
            conn.execute("DELETE FROM blobs WHERE key = ?", (key,))
        else:
            conn.execute("UPDATE blobs SET data = ? WHERE key = ?", (new, key))
    conn.close()
    return "blobs table"


@pytest.fixture(params=["in_file", "in_db"])
def artifact(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(DAMAGES))
def how(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def damaged(tmp_path: Path, artifact: str, how: str) -> tuple[Path, str]:
    root = tmp_path / "store"
    await run_in_temp_store(ValueFlow, root)
    return root, damage(root, artifact, how)


def expected_error(how: str, artifact: str) -> type[BlobError]:
    # A small blob deleted from the database is looked for as a file next, and missing there.
    return BlobNotFound if how == "deleted" else BlobCorrupted


def assert_names_everything(message: str, artifact: str, task: str, where: str) -> None:
    assert f"artifact '{artifact}'" in message
    assert f"task {task}" in message
    assert where in message or (where == "blobs table" and "blobs" in message)
    assert "Delete the file" not in message  # for a database row, that would be the database


def test_the_client_names_artifact_task_and_place(
    damaged: tuple[Path, str], artifact: str, how: str
) -> None:
    root, where = damaged
    with scoped_namespace(None), pytest.raises(expected_error(how, artifact)) as info:
        getattr(Task("ValueFlow/1/start/1", root=root).data, artifact)
    assert_names_everything(str(info.value), artifact, "ValueFlow/1/start/1", where)


def test_dump_prints_one_clear_error(damaged: tuple[Path, str], artifact: str, how: str) -> None:
    root, where = damaged
    code, out, err = invoke("dump", "ValueFlow/1/start", "--include", artifact, "--root", str(root))
    assert code == 1
    assert "Traceback" not in err and "Error" not in out
    message = " ".join(line.strip() for line in err.splitlines()[1:])
    assert_names_everything(message, artifact, "ValueFlow/1/start/1", where)


async def test_a_step_reading_it_fails_naming_it(
    damaged: tuple[Path, str], artifact: str, how: str
) -> None:
    root, where = damaged
    with pytest.raises(FlowFailed) as info:
        await resume_flow(ValueFlow, root=root, origin_run_id="1", step="end", quiet=True)
    cause = info.value.__cause__
    assert isinstance(cause, expected_error(how, artifact)), repr(cause)
    assert_names_everything(str(cause), artifact, "ValueFlow/2/end/2", where)


async def test_the_next_run_storing_the_same_value_repairs_it(
    damaged: tuple[Path, str], artifact: str
) -> None:
    root, _ = damaged
    await run_in_temp_store(ValueFlow, root)
    with scoped_namespace(None):
        data = Task("ValueFlow/1/start/1", root=root).data
        assert getattr(data, artifact) == (LARGE_VALUE if artifact == "in_file" else SMALL_VALUE)


class SplitFlow(FlowSpec):
    @step
    def start(self):
        # Items longer than an identity key holds (store/keys.py): stored, so they can go missing.
        self.items = ["the first item of this foreach", "the second item of this foreach"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.got = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.got = sorted(i.got for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_missing_foreach_item_is_named_by_its_variable_and_index(tmp_path: Path) -> None:
    await run_in_temp_store(SplitFlow, tmp_path)
    conn = sqlite3.connect(tmp_path / "metadata.db")
    with conn:
        conn.execute(
            "DELETE FROM blobs WHERE key = ?", (encode("the second item of this foreach").key,)
        )
    conn.close()
    with pytest.raises(FlowFailed) as info:
        await resume_flow(SplitFlow, root=tmp_path, origin_run_id="1", step="each", quiet=True)
    cause = info.value.__cause__
    assert isinstance(cause, BlobNotFound), repr(cause)
    assert "artifact 'items[1]' of task SplitFlow/2/each/" in str(cause)
