"""The client API (Flow, Run, Step, Task, DataArtifact) over runs made here, and its errors.

Semantics and messages follow Metaflow's client (see notes §7): newest first, `Run.finished`
is the end task's, a failed task is neither successful nor finished, `Task.exception` looks
like Metaflow's exception wrapper, and errors read "Run('F/9') does not exist",
"Expects Run('FlowName/RunID'), not Run('F')" and "Object not in namespace '...': ..." (Metaflow's
messages, followed by what was given or looked at).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from blake3 import blake3

from aioflow import (
    DataArtifact,
    Flow,
    FlowFailed,
    FlowSpec,
    Parameter,
    Run,
    Step,
    Task,
    default_namespace,
    get_namespace,
    namespace,
    run_flow_sync,
    step,
)
from aioflow.client.namespaces import _namespace
from aioflow.exceptions import (
    InvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    StoreError,
)
from aioflow.store import SMALL
from aioflow.store.keys import is_identity
from aioflow.store.serde import encode
from aioflow.testing import run_in_temp_store

BIG = b"\x01" * (SMALL + 1024)  # stored as a file blob rather than in the database


class ClientFlow(FlowSpec):
    fail = Parameter("fail", default=False)

    @step
    def start(self):
        print("hello from start")
        self.x = 1
        self.items = ["a", "b", "c"]
        self._hidden = "h"
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        self.letter = self.input.upper()
        if self.fail and self.index == 1:
            raise ValueError(f"bad item {self.input}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.letters = [i.letter for i in inputs]
        self.merge_artifacts(inputs, exclude=["letter"])
        self.next(self.end)

    @step
    def end(self):
        self.big = BIG
        self.same_as_x = 1


def _run_as(user: str, **kwargs: object) -> str:
    os.environ["AIOFLOW_USER"] = user
    try:
        return run_flow_sync(ClientFlow, quiet=True, **kwargs).id
    except FlowFailed as exc:
        assert exc.run is not None
        return exc.run.id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One store with four runs of ClientFlow:

    1: tester, succeeded; 2: tester, succeeded, tag "blue"; 3: tester, failed;
    4: alice, succeeded.
    """
    root = tmp_path_factory.mktemp("client") / "store"
    saved = {k: os.environ.get(k) for k in ("AIOFLOW_ROOT", "AIOFLOW_USER")}
    os.environ["AIOFLOW_ROOT"] = str(root)
    try:
        ids = [
            _run_as("tester"),
            _run_as("tester", tags=["blue"]),
            _run_as("tester", fail=True),
            _run_as("alice"),
        ]
        assert ids == ["1", "2", "3", "4"]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield root


@pytest.fixture(autouse=True)
def _env(store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIOFLOW_ROOT", str(store))
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    token = _namespace.set("__aioflow_default_namespace__")
    yield
    _namespace.reset(token)


# -- navigation -------------------------------------------------------------------------------


def test_flow_runs_in_the_default_namespace_newest_first() -> None:
    assert get_namespace() == "user:tester"
    flow = Flow("ClientFlow")
    assert repr(flow) == "Flow('ClientFlow')" and flow.id == "ClientFlow"
    assert [r.id for r in flow] == ["3", "2", "1"]  # alice's run 4 is not in user:tester
    assert flow.latest_run == Run("ClientFlow/3")
    assert flow.latest_successful_run == Run("ClientFlow/2")
    assert [r.id for r in flow.runs("blue")] == ["2"]
    assert "1" in flow and "4" not in flow and "99" not in flow


def test_namespaces() -> None:
    assert namespace(None) is None
    flow = Flow("ClientFlow")
    assert [r.id for r in flow] == ["4", "3", "2", "1"]
    assert flow.latest_run.id == "4"
    assert Run("ClientFlow/4").successful

    namespace("user:alice")
    assert [r.id for r in Flow("ClientFlow")] == ["4"]
    namespace("blue")
    assert [r.id for r in Flow("ClientFlow")] == ["2"]
    assert Flow("ClientFlow").latest_successful_run.id == "2"

    assert default_namespace() == "user:tester"
    assert get_namespace() == "user:tester"
    assert Flow("ClientFlow").latest_run.id == "3"


def test_successful_run() -> None:
    run = Run("ClientFlow/1")
    assert repr(run) == "Run('ClientFlow/1')" and run.id == "1"
    assert run.successful and run.finished and run.status == "succeeded"
    assert run.parent == Flow("ClientFlow")
    assert "blue" not in run.tags and "user:tester" in run.system_tags
    assert Run("ClientFlow/2").user_tags == {"blue"}
    # steps, newest first
    assert [s.id for s in run] == ["end", "join", "work", "start"]
    assert "work" in run and "nope" not in run
    end = run["end"].task
    assert end == run.end_task
    assert run.data.letters == ["A", "B", "C"]
    assert run.finished_at is not None and run.created_at <= run.finished_at


def test_failed_run() -> None:
    run = Run("ClientFlow/3")
    assert not run.successful and not run.finished
    assert run.status == "failed"
    assert [s.id for s in run] == ["work", "start"]
    assert run.end_task is None and run.data is None
    with pytest.raises(KeyError):
        run["end"]


def test_step_tasks_newest_first() -> None:
    work = Run("ClientFlow/1")["work"]
    assert repr(work) == "Step('ClientFlow/1/work')" and work.id == "work"
    assert work.parent == Run("ClientFlow/1")
    tasks = list(work.tasks())
    assert [int(t.id) for t in tasks] == sorted((int(t.id) for t in tasks), reverse=True)
    assert [t.index for t in tasks] == [2, 1, 0]
    assert [t.data.letter for t in tasks] == ["C", "B", "A"]
    assert list(work) == tasks
    assert work.task == tasks[0]  # the newest, as Metaflow's
    assert all(t.parent == work for t in tasks)


def test_task_data_and_artifacts() -> None:
    run = Run("ClientFlow/1")
    start = run["start"].task
    assert repr(start) == f"Task('ClientFlow/1/start/{start.id}')"
    assert start.successful and start.finished and start.exception is None
    assert start.index is None
    assert start.data.x == 1
    assert start.data.items == ["a", "b", "c"]
    assert "x" in start.data and "nope" not in start.data
    assert "x" in start and "nope" not in start
    with pytest.raises(AttributeError):
        _ = start.data.nope

    names = [a.id for a in start.artifacts]
    assert names == ["fail", "items", "name", "x"]  # public ones, sorted; `_hidden` is not listed
    assert {a.id: a.data for a in start.artifacts} == {
        "fail": False,
        "items": ["a", "b", "c"],
        "name": "ClientFlow",
        "x": 1,
    }
    assert start.artifacts.x.data == 1
    assert start["x"].data == 1
    assert start["_hidden"].data == "h"  # stored, reachable by name
    assert start.stdout == "hello from start\n" and start.stderr == ""

    join = run["join"].task
    assert join.index is None  # the join closes the only foreach
    assert join.data.letters == ["A", "B", "C"]
    assert join.data.x == 1  # merged
    assert "letter" not in join.data  # excluded from the merge


def test_data_artifact() -> None:
    run = Run("ClientFlow/1")
    end = run["end"].task
    x = end["x"]
    assert isinstance(x, DataArtifact)
    assert repr(x) == f"DataArtifact('{end.pathspec}/x')" and x.id == "x"
    assert x.parent == end
    assert DataArtifact(f"{end.pathspec}/x").data == 1
    # content addressed: equal values share a sha, whatever the task or name
    assert x.sha == end["same_as_x"].sha == run["start"].task["x"].sha
    assert x.sha != end["letters"].sha
    assert x.size > 0
    big = end["big"]
    assert big.data == BIG
    assert big.size >= len(BIG)
    # the same run read through explicit pathspecs
    assert Task(end.pathspec).data.letters == ["A", "B", "C"]
    assert Step("ClientFlow/1/end").task == end


def test_a_value_kept_in_its_key_shows_the_same_sha_size_and_data() -> None:
    # `x = 1` is a blob of two bytes ("M", msgpack's 1): its key holds it (an identity key),
    # but a user sees what a stored blob shows: the BLAKE3 hash of those bytes, their size.
    x = Run("ClientFlow/1")["end"].task["x"]
    blob = encode(1).tobytes()
    assert is_identity(x.parent.manifest["x"])
    assert x.sha == blake3(blob).hexdigest(length=20) and len(x.sha) == 40
    assert x.size == len(blob) == 2
    assert x.data == 1
    letters = Run("ClientFlow/1")["join"].task["letters"]  # ["A", "B", "C"]: 8 bytes, kept too
    assert letters.sha == blake3(encode(["A", "B", "C"]).tobytes()).hexdigest(length=20)
    big = Run("ClientFlow/1")["end"].task["big"]  # a stored blob's sha is its key, as before
    assert big.sha == big.parent.manifest["big"] and big.size == encode(BIG).size


def test_failed_task() -> None:
    run = Run("ClientFlow/3")
    failed = [t for t in run["work"].tasks() if t.index == 1]
    assert len(failed) == 1
    task = failed[0]
    assert task.index == 1
    assert not task.successful and not task.finished
    exc = task.exception
    assert exc.type == "builtins.ValueError"
    assert exc.exception == "bad item b"
    assert "Traceback (most recent call last):" in exc.stacktrace
    assert exc.stacktrace.rstrip().endswith("ValueError: bad item b")
    assert str(exc) == repr(exc) == exc.stacktrace
    assert task.data.letter == "B"  # set before the step raised
    assert "ValueError: bad item b" in task.stderr
    start = run["start"].task
    assert start.successful and start.finished


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "pathspec", "message"),
    [
        (Flow, "ClientFlow/1", "Expects Flow('FlowName')"),
        (Run, "ClientFlow", "Expects Run('FlowName/RunID')"),
        (Run, "ClientFlow/1/start", "Expects Run('FlowName/RunID')"),
        (Step, "ClientFlow/1", "Expects Step('FlowName/RunID/StepName')"),
        (Task, "ClientFlow/1/start", "Expects Task('FlowName/RunID/StepName/TaskID')"),
        (
            DataArtifact,
            "ClientFlow/1/start/1",
            "Expects DataArtifact('FlowName/RunID/StepName/TaskID/ArtifactName')",
        ),
        (Run, "ClientFlow//", "Expects Run('FlowName/RunID')"),
    ],
)
def test_malformed_pathspec(cls: type, pathspec: str, message: str) -> None:
    with pytest.raises(InvalidPathspec) as info:
        cls(pathspec)
    # Metaflow's message, then what was given
    assert str(info.value) == f"{message}, not {cls.__name__}({pathspec!r})"


def test_missing_objects() -> None:
    start_id = Run("ClientFlow/1")["start"].task.id
    cases = [
        (Flow, "NoSuchFlow", "Flow('NoSuchFlow') does not exist"),
        (Run, "ClientFlow/99", "Run('ClientFlow/99') does not exist"),
        (Run, "ClientFlow/abc", "Run('ClientFlow/abc') does not exist"),
        (Run, "NoSuchFlow/1", "Run('NoSuchFlow/1') does not exist"),
        (Step, "ClientFlow/1/nope", "Step('ClientFlow/1/nope') does not exist"),
        (Task, "ClientFlow/1/start/999", "Task('ClientFlow/1/start/999') does not exist"),
        (Task, "ClientFlow/99/start/1", "Run('ClientFlow/99') does not exist"),
        (
            DataArtifact,
            f"ClientFlow/1/start/{start_id}/nope",
            f"DataArtifact('ClientFlow/1/start/{start_id}/nope') does not exist",
        ),
    ]
    for cls, pathspec, message in cases:
        with pytest.raises(MetaflowNotFound) as info:
            cls(pathspec)
        assert str(info.value) == message, pathspec


def test_missing_children_raise_key_error() -> None:
    run = Run("ClientFlow/1")
    task = run["start"].task
    for obj, key in [(Flow("ClientFlow"), "99"), (run, "nope"), (run["start"], "999"),
                     (task, "nope")]:  # fmt: skip
        with pytest.raises(KeyError):
            obj[key]


def test_objects_outside_the_namespace() -> None:
    with pytest.raises(MetaflowNamespaceMismatch) as info:
        Run("ClientFlow/4")  # alice's run, seen from user:tester
    assert str(info.value).startswith(
        "Object not in namespace 'user:tester': Run('ClientFlow/4') does not carry the tag "
        "'user:tester'. Switch with namespace("
    )
    alice_end = None
    namespace(None)
    alice_end = Run("ClientFlow/4")["end"].task.pathspec
    namespace("user:nobody")
    for make, what in (
        (lambda: Flow("ClientFlow"), "no run of Flow('ClientFlow') carries the tag"),
        (lambda: Run("ClientFlow/1"), "Run('ClientFlow/1') does not carry the tag"),
        (lambda: Step("ClientFlow/1/start"), "Run('ClientFlow/1') does not carry the tag"),
        (lambda: Task(alice_end), "Run('ClientFlow/4') does not carry the tag"),
        (lambda: DataArtifact(f"{alice_end}/name"), "Run('ClientFlow/4') does not carry"),
    ):
        with pytest.raises(MetaflowNamespaceMismatch) as info:
            make()
        assert str(info.value).startswith(f"Object not in namespace 'user:nobody': {what}")
    namespace("user:alice")
    assert Task(alice_end).data.name == "ClientFlow"


def test_a_store_folder_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    missing = tmp_path / "no-store-here"
    monkeypatch.setenv("AIOFLOW_ROOT", str(missing))
    for make in (lambda: Flow("ClientFlow"), lambda: Run("ClientFlow/1")):
        with pytest.raises(StoreError) as info:
            make()
        assert str(missing) in str(info.value)
    assert not missing.exists()  # reading never creates a store


# -- runs in progress -------------------------------------------------------------------------


SLOW: dict[str, anyio.Event] = {}


class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.wait)

    @step
    async def wait(self):
        SLOW["entered"].set()
        await SLOW["release"].wait()
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_run_in_progress_is_neither_finished_nor_successful(aioflow_root: Path) -> None:
    SLOW.update(entered=anyio.Event(), release=anyio.Event())
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_in_temp_store(SlowFlow, aioflow_root))
        with anyio.fail_after(10):
            await SLOW["entered"].wait()
        run = Flow("SlowFlow").latest_run
        assert run is not None
        assert run.status == "running"
        assert not run.finished and not run.successful and run.end_task is None
        SLOW["release"].set()
    run = Flow("SlowFlow").latest_run
    assert run.status == "succeeded" and run.finished and run.successful
