"""Resume: a new run clones every successful task of the origin that is not the named step or
downstream of it, and re-runs the rest.

Clones are matched by step and place (foreach / split index path), never by task id, reuse the
origin's artifact keys (no copies), and say where they came from (`origin_pathspec`,
`metadata_dict`). Parameters are the origin's; `current.origin_run_id` names the origin. The
failures resumed from: inside a nested foreach, at a foreach join, at a split (the splitting
step and a branch), and in the end step. The Python entry point (`resume_flow`) is used here;
the command lines (`aioflow resume`, `python flow.py resume`) are at the end, as processes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from aioflow import (
    FlowFailed,
    FlowSpec,
    Parameter,
    Run,
    Task,
    current,
    resume_flow,
    step,
)
from aioflow.client.namespaces import _namespace
from aioflow.exceptions import ParameterError
from aioflow.loader import load_flow
from aioflow.store import SMALL, Store
from aioflow.store.keys import is_identity
from aioflow.testing import run_in_temp_store

#: What the flows below should do: which places fail, and how often each step body ran.
FAIL: dict[str, object] = {}
CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    FAIL.clear()
    CALLS.clear()
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    token = _namespace.set(None)  # every run, whoever ran it
    yield
    _namespace.reset(token)


async def run_failing(flow_cls: type[FlowSpec], root: Path, **params: object) -> Run:
    """Run a flow that must fail; return its Run."""
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(flow_cls, root, **params)
    run = info.value.run
    assert run is not None and not run.successful
    return run


def clones(run: Run) -> dict[str, list[Task]]:
    """The run's tasks by step that were cloned (origin_pathspec set)."""
    found: dict[str, list[Task]] = {}
    for s in run:
        for task in s:
            if task.origin_pathspec is not None:
                found.setdefault(s.id, []).append(task)
    return found


def reran(run: Run) -> dict[str, int]:
    """How many tasks of each step ran (were not clones)."""
    return {s.id: n for s in run if (n := sum(1 for t in s if t.origin_pathspec is None))}


def check_clone(task: Task) -> Task:
    """A clone matches its origin: same step and place, same artifacts (same keys), status."""
    origin = Task(task.origin_pathspec)
    assert origin.path_components[2] == task.path_components[2]  # same step
    assert origin.successful and task.successful
    mine, theirs = task.metadata_dict, origin.metadata_dict
    assert mine.get("foreach-indices") == theirs.get("foreach-indices")
    assert mine.get("split-path") == theirs.get("split-path")
    assert task.manifest == origin.manifest  # no copies: the very same keys
    assert mine["origin-task-id"] == origin.id
    assert mine["origin-run-id"] == origin.path_components[1]
    assert task.stdout == origin.stdout
    return origin


# -- failure inside a nested foreach -------------------------------------------------------------


class NestedFlow(FlowSpec):
    scale = Parameter("scale", default=1)

    @step
    def start(self):
        CALLS["start"] += 1
        self.outer = [0, 1, 2]
        self.next(self.mid, foreach="outer")

    @step
    def mid(self):
        CALLS["mid"] += 1
        self.o = self.input
        self.inner = ["a", "b"]
        self.next(self.leaf, foreach="inner")

    @step
    async def leaf(self):
        CALLS["leaf"] += 1
        print(f"leaf {self.o}{self.input}")
        if (self.o, self.input) == FAIL.get("leaf"):
            # Fail only once the two other inner joins are done, so that the origin run is
            # the same every time: everything succeeded but this leaf and what follows it.
            with anyio.fail_after(10):
                await FAIL["gate"].wait()  # type: ignore[attr-defined]
            raise ValueError(f"leaf {self.o}{self.input} failed")
        self.value = f"{self.o}{self.input}" * self.scale
        self.origin_seen = current.origin_run_id
        self.next(self.inner_join)

    @step
    async def inner_join(self, inputs):
        CALLS["inner_join"] += 1
        self.values = [i.value for i in inputs]
        if "gate" in FAIL:
            CALLS["joined"] += 1
            if CALLS["joined"] == 2:
                FAIL["gate"].set()  # type: ignore[attr-defined]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        CALLS["outer_join"] += 1
        self.all = [v for i in inputs for v in i.values]
        self.next(self.end)

    @step
    def end(self):
        CALLS["end"] += 1
        self.origin_seen = current.origin_run_id


async def test_resume_after_a_failure_inside_a_nested_foreach(aioflow_root: Path) -> None:
    FAIL.update(leaf=(1, "b"), gate=anyio.Event())
    origin = await run_failing(NestedFlow, aioflow_root, scale=2)
    failed = [t for t in origin["leaf"] if not t.successful]
    assert len(failed) == 1 and failed[0].exception.exception == "leaf 1b failed"
    assert failed[0].metadata_dict["foreach-indices"] == "1,1"
    assert origin.end_task is None and origin.origin_pathspec is None
    CALLS.clear()
    FAIL.clear()

    run = await resume_flow(NestedFlow, root=aioflow_root, quiet=True)

    assert run.successful
    assert run.origin_pathspec == f"NestedFlow/{origin.id}"
    assert run.data.all == ["0a0a", "0b0b", "1a1a", "1b1b", "2a2a", "2b2b"]  # scale=2 kept
    # Only the failed leaf ran again, and what depends on it: its inner join (1), the outer
    # join and end. Every other leaf, both other inner joins, mid and start were cloned.
    assert CALLS == {"leaf": 1, "inner_join": 1, "outer_join": 1, "end": 1}
    cloned = clones(run)
    assert {s: len(ts) for s, ts in cloned.items()} == {
        "start": 1, "mid": 3, "leaf": 5, "inner_join": 2,
    }  # fmt: skip
    for tasks in cloned.values():
        for task in tasks:
            check_clone(task)
    rerun_leaf = [t for t in run["leaf"] if t.origin_pathspec is None]
    assert len(rerun_leaf) == 1
    assert rerun_leaf[0].metadata_dict["foreach-indices"] == "1,1"
    assert "origin-task-id" not in rerun_leaf[0].metadata_dict
    assert rerun_leaf[0].metadata_dict["origin-run-id"] == origin.id
    assert rerun_leaf[0].data.origin_seen == origin.id  # current.origin_run_id
    assert run["end"].task.data.origin_seen == origin.id
    # the re-run inner join joined four clones... of its own outer index only
    for join in run["inner_join"]:
        parents = list(join.parent_tasks)
        assert len(parents) == 2
        assert {p.metadata_dict["foreach-indices"].split(",")[0] for p in parents} == {
            join.metadata_dict.get("foreach-indices")
        }


async def test_a_normal_run_has_no_origin(aioflow_root: Path) -> None:
    run = await run_in_temp_store(NestedFlow, aioflow_root)
    assert run.origin_pathspec is None
    assert run["start"].origin_pathspec is None
    task = run["end"].task
    assert task.origin_pathspec is None and task["all"].origin_pathspec is None
    assert task.data.origin_seen is None
    assert "origin-run-id" not in task.metadata_dict


# -- failure at a foreach join, and the cost of clones --------------------------------------------


class JoinFlow(FlowSpec):
    @step
    def start(self):
        CALLS["start"] += 1
        self.big = b"\x07" * (SMALL + 10)  # a file blob, to count files
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        CALLS["work"] += 1
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        CALLS["join"] += 1
        if FAIL.get("join"):
            raise RuntimeError("join failed")
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        CALLS["end"] += 1


def blob_files(root: Path) -> int:
    return sum(1 for p in (root / "blobs").rglob("*") if p.is_file())


async def test_resume_at_a_failed_foreach_join_clones_without_copies(aioflow_root: Path) -> None:
    FAIL["join"] = True
    origin = await run_failing(JoinFlow, aioflow_root)
    assert [t.successful for t in origin["join"]] == [False]
    files = blob_files(aioflow_root)
    CALLS.clear()
    FAIL.clear()

    run = await resume_flow(JoinFlow, root=aioflow_root, quiet=True)

    assert run.successful and run["end"].task.data.total == 55
    assert CALLS == {"join": 1, "end": 1}
    assert reran(run) == {"join": 1, "end": 1}
    assert len(clones(run)["work"]) == 6
    for task in clones(run)["work"]:
        origin_task = check_clone(task)
        assert task["square"].sha == origin_task["square"].sha
    start = run["start"].task
    assert start["big"].sha == origin["start"].task["big"].sha
    assert start.data.big == b"\x07" * (SMALL + 10)
    assert blob_files(aioflow_root) == files  # the big artifact was not copied
    # lineage of the clones inside the new run
    join = run["join"].task
    assert sorted(p.index for p in join.parent_tasks) == list(range(6))
    assert {c.id for c in start.child_tasks} == {t.id for t in run["work"]}


async def test_a_resume_reads_the_origins_identity_keys(aioflow_root: Path) -> None:
    # Each `square` and each item is a value of a few bytes: the clones' manifests carry keys
    # holding the values, which the resumed join decodes with no blob of the origin's to find.
    FAIL["join"] = True
    await run_failing(JoinFlow, aioflow_root)
    FAIL.clear()
    run = await resume_flow(JoinFlow, root=aioflow_root, quiet=True)
    assert run.successful and run["join"].task.data.total == 55
    work = clones(run)["work"]
    assert all(is_identity(task.manifest["square"]) for task in work)
    assert sorted(task.data.square for task in work) == [0, 1, 4, 9, 16, 25]
    assert sorted(task.data.items[task.index] for task in work) == list(range(6))
    with sqlite3.connect(aioflow_root / "metadata.db") as conn:
        (stored,) = conn.execute("SELECT count(*) FROM blobs WHERE key LIKE '=%'").fetchone()
    conn.close()
    assert stored == 0


async def test_resume_from_a_named_step_reruns_it_and_what_follows(aioflow_root: Path) -> None:
    origin = await run_in_temp_store(JoinFlow, aioflow_root)
    CALLS.clear()

    run = await resume_flow(JoinFlow, root=aioflow_root, step="work", quiet=True)

    assert run.successful and run.data.total == 55
    assert CALLS == {"work": 6, "join": 1, "end": 1}
    assert list(clones(run)) == ["start"]
    assert run["start"].task.origin_pathspec == origin["start"].task.pathspec
    assert run["work"].origin_pathspec == f"JoinFlow/{origin.id}/work"


# -- failures at a split ---------------------------------------------------------------------------


class SplitFlow(FlowSpec):
    @step
    def start(self):
        CALLS["start"] += 1
        self.x = 1
        self.next(self.fan)

    @step
    def fan(self):
        CALLS["fan"] += 1
        if FAIL.get("fan"):
            raise RuntimeError("fan failed")
        self.next(self.a, self.b)

    @step
    def a(self):
        CALLS["a"] += 1
        self.from_a = "A"
        self.next(self.join)

    @step
    def b(self):
        CALLS["b"] += 1
        if FAIL.get("b"):
            raise RuntimeError("b failed")
        self.from_b = "B"
        self.next(self.join)

    @step
    def join(self, inputs):
        CALLS["join"] += 1
        self.both = inputs.a.from_a + inputs.b.from_b
        self.next(self.end)

    @step
    def end(self):
        CALLS["end"] += 1
        if FAIL.get("end"):
            raise RuntimeError("end failed")


async def test_resume_after_the_splitting_step_failed(aioflow_root: Path) -> None:
    FAIL["fan"] = True
    await run_failing(SplitFlow, aioflow_root)
    CALLS.clear()
    FAIL.clear()
    run = await resume_flow(SplitFlow, root=aioflow_root, quiet=True)
    assert run.successful and run.data.both == "AB"
    assert CALLS == {"fan": 1, "a": 1, "b": 1, "join": 1, "end": 1}
    assert list(clones(run)) == ["start"]


async def test_resume_after_a_branch_of_a_split_failed(aioflow_root: Path) -> None:
    FAIL["b"] = True
    origin = await run_failing(SplitFlow, aioflow_root)
    assert origin["b"].task.exception.type == "builtins.RuntimeError"
    CALLS.clear()
    FAIL.clear()
    run = await resume_flow(SplitFlow, root=aioflow_root, quiet=True)
    assert run.successful and run.data.both == "AB"
    assert CALLS == {"b": 1, "join": 1, "end": 1}
    assert sorted(clones(run)) == ["a", "fan", "start"]
    for tasks in clones(run).values():
        check_clone(tasks[0])
    assert run["a"].task.metadata_dict["split-path"] == "fan:0"


async def test_resume_after_the_end_step_failed(aioflow_root: Path) -> None:
    FAIL["end"] = True
    origin = await run_failing(SplitFlow, aioflow_root)
    assert origin.end_task is not None and not origin.end_task.successful
    assert not origin.finished and origin.status == "failed"
    assert origin.exception.type == "builtins.RuntimeError"  # why the run failed
    assert origin.exception.exception == "end failed"
    CALLS.clear()
    FAIL.clear()
    run = await resume_flow(SplitFlow, root=aioflow_root, quiet=True)
    assert run.successful and run.finished and run.exception is None
    assert CALLS == {"end": 1}
    assert sorted(clones(run)) == ["a", "b", "fan", "join", "start"]
    assert run.end_task.origin_pathspec is None


# -- parameters, retries, defaults ---------------------------------------------------------------


class RetriedFlow(FlowSpec):
    word = Parameter("word", default="plain")

    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        CALLS[f"work{self.input}"] += 1
        print(f"attempt {current.retry_count} of {self.input}")
        if self.input == 1 and current.retry_count == 0:
            raise ValueError("first attempt fails")
        self.got = f"{self.word}-{self.input}"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.got = [i.got for i in inputs]
        if FAIL.get("join"):
            raise RuntimeError("join failed")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_resume_keeps_parameters_and_clones_the_successful_attempt(
    aioflow_root: Path,
) -> None:
    FAIL["join"] = True
    origin = await run_failing(
        RetriedFlow, aioflow_root, word="given", with_decorators=["retry:times=1"]
    )
    origin_task = next(t for t in origin["work"] if t.index == 1)
    assert origin_task.current_attempt == 1 and origin_task.successful
    assert Task(origin_task.pathspec, attempt=0).exception.exception == "first attempt fails"
    CALLS.clear()
    FAIL.clear()

    run = await resume_flow(RetriedFlow, root=aioflow_root, quiet=True)

    assert run.data.got == ["given-0", "given-1"]  # the origin's parameter value
    assert run["start"].task.data.word == "given"
    assert CALLS == {}  # both work tasks were cloned
    clone = next(t for t in run["work"] if t.index == 1)
    assert clone.origin_pathspec == origin_task.pathspec
    assert clone.stdout == "attempt 1 of 1\n"  # the successful attempt's output
    # As Metaflow: a clone is its origin's attempt (its metadata is the origin's).
    assert clone.current_attempt == 1 and clone.metadata_dict["attempt"] == "1"


async def test_resume_defaults_to_the_latest_run_not_the_latest_resume(aioflow_root: Path) -> None:
    FAIL["join"] = True
    first = await run_failing(JoinFlow, aioflow_root)
    with pytest.raises(FlowFailed) as info:
        await resume_flow(JoinFlow, root=aioflow_root, quiet=True)  # fails again
    second = info.value.run
    assert second.origin_pathspec == f"JoinFlow/{first.id}"
    FAIL.clear()
    third = await resume_flow(JoinFlow, root=aioflow_root, quiet=True)
    # as Metaflow: the latest `run`, not the latest resume (which was `second`)
    assert third.origin_pathspec == f"JoinFlow/{first.id}"
    fourth = await resume_flow(JoinFlow, root=aioflow_root, origin_run_id=second.id, quiet=True)
    assert fourth.origin_pathspec == f"JoinFlow/{second.id}"
    fifth = await resume_flow(
        JoinFlow, root=aioflow_root, origin_run_id=third.id, step="end", quiet=True
    )
    assert fifth.origin_pathspec == f"JoinFlow/{third.id}"
    assert fifth["join"].task.origin_pathspec == third["join"].task.pathspec
    # a clone of a clone names its immediate origin
    work = {t.index: t for t in third["work"]}
    assert {t.origin_pathspec for t in fifth["work"]} == {
        work[t.index].pathspec for t in fifth["work"]
    }


async def test_resume_errors_name_what_is_wrong(aioflow_root: Path) -> None:
    with pytest.raises(Exception) as info:
        await resume_flow(JoinFlow, root=aioflow_root, quiet=True)
    assert str(aioflow_root) in str(info.value)  # no store there yet: it says where it looked
    await run_in_temp_store(SplitFlow, aioflow_root)
    with pytest.raises(ParameterError) as info:
        await resume_flow(JoinFlow, root=aioflow_root, quiet=True)
    assert "There is no run of JoinFlow" in str(info.value)
    assert "--origin-run-id" in str(info.value)
    with pytest.raises(ParameterError) as info:
        await resume_flow(SplitFlow, root=aioflow_root, origin_run_id="99", quiet=True)
    assert "run SplitFlow/99 does not exist" in str(info.value)
    with pytest.raises(ParameterError) as info:
        await resume_flow(SplitFlow, root=aioflow_root, origin_run_id="x", quiet=True)
    assert "run SplitFlow/x does not exist" in str(info.value)
    with pytest.raises(ParameterError) as info:
        await resume_flow(SplitFlow, root=aioflow_root, step="nope", quiet=True)
    assert "Cannot resume from step 'nope'" in str(info.value)
    assert "start, fan, a, b, join, end" in str(info.value)


# -- the command lines --------------------------------------------------------------------------

CLI_FLOW = """
import os
from aioflow import FlowSpec, Parameter, current, step


class CliResumeFlow(FlowSpec):
    n = Parameter("n", default=3)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        print("work", self.input)
        if os.path.exists("fail-%d" % self.input):
            raise ValueError("work %d failed" % self.input)
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.origin = current.origin_run_id


if __name__ == "__main__":
    CliResumeFlow()
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "AIOFLOW_ROOT": str(cwd / "store"), "AIOFLOW_USER": "tester"},
    )  # fmt: skip


def test_resume_from_the_command_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(CLI_FLOW))
    aioflow = ["-c", "from aioflow.cli import main; main()"]
    (tmp_path / "fail-1").touch()
    first = cli(tmp_path, "flow.py", "run", "--n", "4", "--run-id-file", "first.txt")
    assert first.returncode == 1, first.stdout + first.stderr
    origin_id = (tmp_path / "first.txt").read_text()
    (tmp_path / "fail-1").unlink()

    resumed = cli(tmp_path, "flow.py", "resume", "--run-id-file", "second.txt", "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Resuming CliResumeFlow/{origin_id}" in resumed.stderr
    second_id = (tmp_path / "second.txt").read_text()
    assert second_id != origin_id

    third = cli(
        tmp_path, *aioflow, "resume", "flow.py", "join", "--origin-run-id", second_id,
        "--run-id-file", "third.txt",
    )  # fmt: skip
    assert third.returncode == 0, third.stdout + third.stderr
    third_id = (tmp_path / "third.txt").read_text()
    # the console says which tasks were cloned, and from where
    assert f"Cloning results of a previously successful task {second_id}/start/1" in third.stdout

    bad = cli(tmp_path, *aioflow, "resume", "flow.py", "nope")
    assert bad.returncode == 2 and "Cannot resume from step 'nope'" in bad.stderr

    monkeypatch.setenv("AIOFLOW_ROOT", str(tmp_path / "store"))
    second = Run(f"CliResumeFlow/{second_id}")
    third_run = Run(f"CliResumeFlow/{third_id}")
    assert second.data.total == 14 and second.data.origin == origin_id
    assert second["start"].task.data.n == 4  # the origin's parameter
    assert third_run.origin_pathspec == f"CliResumeFlow/{second_id}"
    assert third_run.data.origin == second_id
    assert {t.origin_pathspec is not None for t in third_run["work"]} == {True}
    assert third_run["join"].task.origin_pathspec is None


# -- a run whose process was killed --------------------------------------------------------------

KILLED_FLOW = """
import sys
from aioflow import FlowSpec, current, step


class KilledFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.wait)

    @step
    def wait(self):
        if current.origin_run_id is None:  # the first run waits to be killed; its resume goes on
            print("waiting", file=sys.__stderr__, flush=True)
            sys.__stdin__.read()
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    KilledFlow()
"""


def test_a_killed_run_resumes_though_its_pid_now_names_a_live_process(tmp_path: Path) -> None:
    # A pid is reused once its process is gone: the run must not read "still running" forever.
    (tmp_path / "flow.py").write_text(textwrap.dedent(KILLED_FLOW))
    root = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "flow.py", "run", "--quiet", "--run-id-file", "run.txt"],
        cwd=tmp_path, env={**os.environ, "AIOFLOW_ROOT": str(root), "AIOFLOW_USER": "tester"},
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line == "waiting\n":
                break
        else:
            raise AssertionError(f"the run ended early ({proc.wait()})")
        run_id = (tmp_path / "run.txt").read_text()
        flow_cls = load_flow(tmp_path / "flow.py")
        with pytest.raises(ParameterError, match=f"Run KilledFlow/{run_id} is still running"):
            anyio.run(lambda: resume_flow(flow_cls, root=root, quiet=True))
    finally:
        proc.kill()
        proc.communicate()
    conn = sqlite3.connect(root / "metadata.db")
    with conn:
        conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (os.getpid(), int(run_id)))
    conn.close()

    killed = Run(f"KilledFlow/{run_id}", _store=Store(root, create=False))
    assert killed.status == "failed"  # its process is gone, whoever has its pid now
    resumed = anyio.run(lambda: resume_flow(flow_cls, root=root, quiet=True))
    assert resumed.successful and resumed.origin_pathspec == f"KilledFlow/{run_id}"
    assert resumed.data.y == 2
