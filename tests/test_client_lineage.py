"""The client beyond navigation: attempts, logs with timestamps, metadata, lineage, times,
tags on every object, `Metaflow()`, the shared store, and stores written by older versions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aioflow import (
    DataArtifact,
    Flow,
    FlowSpec,
    Metaflow,
    Run,
    Step,
    Task,
    current,
    get_namespace,
    namespace,
    scoped_namespace,
    step,
)
from aioflow.client import shared_store
from aioflow.client.namespaces import _UNSET, _namespace
from aioflow.exceptions import MetaflowNamespaceMismatch, MetaflowNotFound, StoreError
from aioflow.store.metadata import TASK_COLUMNS
from aioflow.store.serde import pack
from aioflow.testing import run_in_temp_store


@pytest.fixture(autouse=True)
def _namespace_reset() -> Iterator[None]:
    """Each test starts in the default namespace and leaves it so."""
    token = _namespace.set(_UNSET)
    yield
    _namespace.reset(token)


class LineageFlow(FlowSpec):
    @step
    def start(self):
        print("one")
        print("two")
        self.items = ["p", "q", "r"]
        self._secret = 42
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.attempt_seen = current.retry_count
        print(f"work {self.input} attempt {current.retry_count}")
        if self.input == "q" and current.retry_count == 0:
            raise ValueError("q fails once")
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.seen = sorted(i.input for i in inputs)
        self.next(self.fan)

    @step
    def fan(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        import sys

        print("to stderr", file=sys.stderr)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture
async def run(aioflow_root: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    with scoped_namespace("user:tester"):
        return await run_in_temp_store(
            LineageFlow, aioflow_root, tags=["lineage"], with_decorators=["retry:times=2"]
        )


def task_of(run: Run, step_name: str, index: int | None = None) -> Task:
    return next(t for t in run[step_name] if index is None or t.index == index)


# -- attempts -----------------------------------------------------------------------------------


def test_attempts_of_a_retried_task(run: Run) -> None:
    latest = task_of(run, "work", 1)
    assert latest.successful and latest.current_attempt == 1
    assert latest.data.attempt_seen == 1
    first = Task(latest.pathspec, attempt=0)
    assert repr(first) == f"Task('{latest.pathspec}', attempt=0)"
    assert first != latest and first == Task(latest.pathspec, 0)
    assert first.current_attempt == 0 and first.status == "failed"
    assert not first.successful and not first.finished
    assert first.exception.type == "builtins.ValueError"
    assert first.exception.exception == "q fails once"
    assert first.stdout == "work q attempt 0\n"
    assert "ValueError: q fails once" in first.stderr  # the traceback is kept in stderr
    assert latest.stdout == "work q attempt 1\n" and latest.exception is None
    assert Task(latest.pathspec, attempt=1) == Task(latest.pathspec, "1")
    earlier = DataArtifact(f"{latest.pathspec}/attempt_seen", attempt=0)
    assert earlier.data == 0
    assert repr(earlier) == f"DataArtifact('{latest.pathspec}/attempt_seen', attempt=0)"
    assert DataArtifact(f"{latest.pathspec}/attempt_seen").data == 1
    assert first.metadata_dict["attempt"] == "0"
    assert first.metadata_dict["attempt_ok"] == "False"
    # a task that never failed has a single attempt
    once = task_of(run, "work", 0)
    assert once.current_attempt == 0


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        ("x", "Attempt can only be an integer"),
        (-1, "Attempt can only be non-negative"),
        (6, "Attempt can only be smaller than 6"),
    ],
)
def test_invalid_attempts(run: Run, attempt: object, message: str) -> None:
    pathspec = task_of(run, "work", 1).pathspec
    with pytest.raises(MetaflowNotFound) as info:
        Task(pathspec, attempt=attempt)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_an_attempt_that_never_happened(run: Run) -> None:
    pathspec = task_of(run, "work", 1).pathspec
    with pytest.raises(MetaflowNotFound) as info:
        Task(pathspec, attempt=2)
    assert str(info.value) == f"Task('{pathspec}', attempt=2) does not exist"


# -- logs ---------------------------------------------------------------------------------------


def test_loglines_carry_timestamps(run: Run) -> None:
    start = run["start"].task
    lines = list(start.loglines("stdout"))
    assert [line for _, line in lines] == ["one", "two"]
    stamps = [ts for ts, _ in lines]
    assert all(isinstance(ts, datetime) and ts.tzinfo == timezone.utc for ts in stamps)
    assert stamps == sorted(stamps)
    assert start.created_at <= stamps[0] and stamps[-1] <= start.finished_at
    assert list(start.loglines()) == lines  # stdout by default
    assert list(start.loglines("stderr")) == []
    b = run["b"].task
    assert [line for _, line in b.loglines("stderr")] == ["to stderr"]
    assert b.stdout == "" and b.stderr == "to stderr\n"
    with pytest.raises(ValueError, match="'stdout' or 'stderr'"):
        list(start.loglines("stdlog"))


# -- metadata and lineage -----------------------------------------------------------------------


def test_metadata_dict(run: Run) -> None:
    work = task_of(run, "work", 2)
    meta = work.metadata_dict
    assert meta["attempt"] == "0" and meta["attempt_ok"] == "True"
    assert meta["status"] == "succeeded"
    assert meta["foreach-indices"] == "2"
    assert meta["foreach-execution-path"] == "start:2"
    assert meta["parents"] == run["start"].task.id
    assert meta["ds-type"] == "aioflow" and meta["ds-root"] == str(work._store.root)
    assert datetime.fromisoformat(meta["started-at"]) == work.created_at
    assert datetime.fromisoformat(meta["finished-at"]) == work.finished_at
    assert "origin-run-id" not in meta and "origin-task-id" not in meta
    a = run["a"].task.metadata_dict
    assert a["split-path"] == "fan:0" and "foreach-indices" not in a
    assert run["b"].task.metadata_dict["split-path"] == "fan:1"
    assert all(isinstance(v, str) for v in meta.values())


def test_parent_and_child_tasks(run: Run) -> None:
    start = run["start"].task
    assert list(start.parent_tasks) == []
    works = sorted(start.child_tasks, key=lambda t: t.index)
    assert [t.index for t in works] == [0, 1, 2]
    assert works == sorted(run["work"], key=lambda t: t.index)
    assert works[1].current_attempt == 1  # the latest attempt, as everywhere
    gather = run["gather"].task
    assert sorted(t.index for t in gather.parent_tasks) == [0, 1, 2]
    for work in works:
        assert list(work.parent_tasks) == [start]
        assert list(work.child_tasks) == [gather]
    fan = run["fan"].task
    assert list(gather.child_tasks) == [fan] and list(fan.parent_tasks) == [gather]
    assert {t.path_components[2] for t in fan.child_tasks} == {"a", "b"}
    join = run["join"].task
    assert {t.path_components[2] for t in join.parent_tasks} == {"a", "b"}
    assert list(join.child_tasks) == [run["end"].task]
    assert list(run["end"].task.child_tasks) == []


# -- times, tags, parents on every object --------------------------------------------------------


def test_times_and_tags_on_every_object(run: Run) -> None:
    flow = run.parent
    start = run["start"]
    task = start.task
    artifact = task["items"]
    assert flow.created_at <= run.created_at <= start.created_at <= task.created_at
    assert task.finished_at <= run["end"].finished_at <= run.finished_at
    assert artifact.created_at == artifact.finished_at == task.finished_at
    assert start.finished_at == task.finished_at  # one task
    assert flow.finished_at is None and flow.parent is None
    assert run.user_tags == {"lineage"}
    assert {"user:tester", "runtime:dev"} <= run.system_tags
    assert any(t.startswith("python_version:") for t in run.system_tags)
    assert any(t.startswith("aioflow_version:") for t in run.system_tags)
    for obj in (start, task, artifact):
        assert obj.tags == run.tags
        assert obj.user_tags == run.user_tags and obj.system_tags == run.system_tags
        assert obj.origin_pathspec is None
    assert flow.tags == frozenset()
    assert artifact.parent == task and task.parent == start and start.parent == run
    assert run.user == "tester"
    assert run.is_in_namespace() and task.is_in_namespace() and flow.is_in_namespace()
    with scoped_namespace("user:nobody"):
        assert not run.is_in_namespace() and not flow.is_in_namespace()
        assert get_namespace() == "user:nobody"
    assert get_namespace() != "user:nobody"


def test_private_artifacts_are_reachable_by_name(run: Run) -> None:
    start = run["start"].task
    assert "_secret" in start and "_secret" in start.data
    assert start.data._secret == 42
    assert start.artifacts._secret.data == 42
    assert "_secret" not in [a.id for a in start.artifacts]
    assert len(start.artifacts) == len(list(start)) == 2  # items, name
    assert "_secret" not in repr(start.data)


def test_children_share_the_store_and_top_level_objects_share_one_too(run: Run) -> None:
    reread = Run(run.pathspec)
    task = reread["start"].task
    assert task._store is reread._store
    assert task["items"]._store is reread._store
    assert Run(run.pathspec)._store is reread._store is Flow("LineageFlow")._store
    assert shared_store() is reread._store


def test_steps_and_tasks_by_id_and_membership(run: Run) -> None:
    work = run["work"]
    ids = [t.id for t in work]
    assert ids == sorted(ids, key=int, reverse=True)  # newest first
    assert ids[0] in work and "999" not in work and "x" not in work
    assert work[ids[0]] == Task(f"{work.pathspec}/{ids[0]}")
    with pytest.raises(KeyError):
        work["999"]
    assert [s.id for s in run.steps("lineage")] == [s.id for s in run]
    assert list(run.steps("not-a-tag")) == []
    assert [t.id for t in work.tasks("lineage")] == ids
    assert list(work.tasks("not-a-tag")) == []
    assert "gather" in run and "nope" not in run


# -- Metaflow() -----------------------------------------------------------------------------------


async def test_metaflow_lists_flows_in_the_namespace(run: Run, aioflow_root: Path) -> None:
    class OtherFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with scoped_namespace(None):
        await run_in_temp_store(OtherFlow, aioflow_root, tags=["other"])
        everything = Metaflow()
        assert repr(everything) == "Metaflow()"
        assert sorted(f.id for f in everything.flows) == ["LineageFlow", "OtherFlow"]
        assert everything["OtherFlow"] == Flow("OtherFlow")
        assert "OtherFlow" in everything and "Nope" not in everything
        with pytest.raises(KeyError):
            everything["Nope"]
    with scoped_namespace("lineage"):
        assert [f.id for f in Metaflow().flows] == ["LineageFlow"]
        assert "OtherFlow" not in Metaflow()
        with pytest.raises(MetaflowNamespaceMismatch):
            Metaflow()["OtherFlow"]
    with scoped_namespace("no-such-tag"):
        assert Metaflow().flows == []


def test_namespace_rejects_what_is_not_a_tag() -> None:
    for bad in ("", 3):
        with pytest.raises(ValueError, match="non-empty tag string or None"):
            namespace(bad)  # type: ignore[arg-type]


# -- stores ------------------------------------------------------------------------------------


OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL,
    status TEXT NOT NULL, user TEXT, created_at REAL NOT NULL, finished_at REAL,
    origin_run_id TEXT, tags BLOB, system_tags BLOB, params BLOB, graph BLOB, pid INTEGER,
    host TEXT, error BLOB);
CREATE TABLE tasks (run_id INTEGER NOT NULL, task_id INTEGER NOT NULL, attempt INTEGER NOT NULL,
    step TEXT NOT NULL, status TEXT NOT NULL, started_at REAL, finished_at REAL, frames BLOB,
    parents BLOB, manifest BLOB, stdout TEXT, stderr TEXT, exception BLOB,
    PRIMARY KEY (run_id, task_id, attempt)) WITHOUT ROWID;
CREATE TABLE blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""


def test_a_store_from_an_older_version_is_read(tmp_path: Path) -> None:
    root = tmp_path / "old-store"
    root.mkdir()
    conn = sqlite3.connect(root / "metadata.db")
    conn.executescript(OLD_SCHEMA)
    conn.execute(
        "INSERT INTO runs (flow, status, user, created_at, finished_at, tags, system_tags) "
        "VALUES ('OldFlow', 'succeeded', 'x', 1.0, 2.0, ?, ?)",
        (pack(["old"]), pack(["user:x"])),
    )
    conn.execute(
        "INSERT INTO tasks VALUES (1, 1, 0, 'end', 'succeeded', 1.0, 2.0, NULL, NULL, ?, "
        "NULL, NULL, NULL)",
        (pack({}),),
    )
    conn.commit()
    conn.close()
    with scoped_namespace(None):
        run = Flow("OldFlow", _store=shared_store(root)).latest_run
        assert run.successful and run.user_tags == {"old"}
        assert run.end_task.origin_pathspec is None
    conn = sqlite3.connect(root / "metadata.db")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    conn.close()
    assert ", ".join(columns) == TASK_COLUMNS  # brought up to date on open


def test_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "metadata.db").write_bytes(b"this is not a database, not at all" * 100)
    with pytest.raises(StoreError) as info:
        shared_store(tmp_path)
    assert str(tmp_path / "metadata.db") in str(info.value)


def test_a_store_made_again_in_the_same_folder_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from aioflow import run_flow_sync

    root = tmp_path / "store"
    monkeypatch.setenv("AIOFLOW_ROOT", str(root))
    with scoped_namespace(None):
        run_flow_sync(LineageFlow, quiet=True, with_decorators=["retry:times=2"])
        first = shared_store()
        assert [r.id for r in Flow("LineageFlow")] == ["1"]
        shutil.rmtree(root)
        run_flow_sync(LineageFlow, quiet=True, with_decorators=["retry:times=2"])
        run_flow_sync(LineageFlow, quiet=True, with_decorators=["retry:times=2"])
        assert shared_store() is not first
        assert [r.id for r in Flow("LineageFlow")] == ["2", "1"]
        assert Step("LineageFlow/2/end").task.successful
