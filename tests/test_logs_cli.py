"""Task logs: captured per task and per stream, stored for every attempt, read back in full
with the client (`Task.stdout`, `.stderr`, `.loglines()`) and with `aioflow logs`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from aioflow import FlowFailed, FlowSpec, Run, current, step
from aioflow.client.namespaces import _namespace
from aioflow.events import Event, LogLine
from aioflow.testing import run_in_temp_store
from tests.helpers import invoke

WIDTH = 12  # tasks of each kind (sync, async) printing at once
LINES = 60  # lines each of them prints to each stream
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


@pytest.fixture(autouse=True)
def _everyone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    token = _namespace.set(None)
    yield
    _namespace.reset(token)


def plain(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


class ChattyFlow(FlowSpec):
    """Many sync and async tasks printing to both streams at the same time, one retried."""

    @step
    def start(self):
        print("start says hi")
        self.ids = list(range(WIDTH))
        self.next(self.sync_talk, self.async_talk)

    @step
    def sync_talk(self):
        self.next(self.sync_each, foreach="ids")

    @step
    def sync_each(self):
        for i in range(LINES):
            print(f"sync {self.input} out {i}")
            print(f"sync {self.input} err {i}", file=sys.stderr)
            time.sleep(0)  # let the other threads in
        if self.input == 3 and current.retry_count == 0:
            raise RuntimeError("sync 3 fails once")
        self.next(self.sync_join)

    @step
    def sync_join(self, inputs):
        self.next(self.join)

    @step
    def async_talk(self):
        self.next(self.async_each, foreach="ids")

    @step
    async def async_each(self):
        for i in range(LINES):
            print(f"async {self.input} out {i}")
            sys.stderr.write(f"async {self.input} err ")
            await asyncio.sleep(0)  # a partial line, then the other tasks run
            sys.stderr.write(f"{i}\n")
        self.next(self.async_join)

    @step
    def async_join(self, inputs):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture
async def chatty(aioflow_root: Path) -> Run:
    return await run_in_temp_store(ChattyFlow, aioflow_root, with_decorators=["retry:times=1"])


def expected(kind: str, index: int, stream: str) -> str:
    return "".join(f"{kind} {index} {stream} {i}\n" for i in range(LINES))


def test_each_task_keeps_its_own_lines_of_each_stream(chatty: Run) -> None:
    for kind in ("sync", "async"):
        tasks = list(chatty[f"{kind}_each"])
        assert sorted(t.index for t in tasks) == list(range(WIDTH))
        for task in tasks:
            assert task.stdout == expected(kind, task.index, "out"), task.pathspec
            assert task.stderr == expected(kind, task.index, "err"), task.pathspec
            assert len(list(task.loglines("stdout"))) == LINES
    assert chatty["start"].task.stdout == "start says hi\n"
    assert chatty["end"].task.stdout == "" and chatty["end"].task.stderr == ""


def test_a_retried_task_keeps_the_logs_of_every_attempt(chatty: Run) -> None:
    from aioflow import Task

    task = next(t for t in chatty["sync_each"] if t.index == 3)
    assert task.current_attempt == 1
    first = Task(task.pathspec, attempt=0)
    assert first.stdout == expected("sync", 3, "out")
    assert first.stderr.startswith(expected("sync", 3, "err"))
    assert "RuntimeError: sync 3 fails once" in first.stderr
    assert task.stderr == expected("sync", 3, "err")  # the second attempt did not fail


def test_aioflow_logs_of_a_step_and_of_a_task(chatty: Run) -> None:
    tasks = sorted(chatty["sync_each"], key=lambda t: int(t.id))
    code, out, err = invoke("logs", f"{chatty.pathspec}/sync_each")
    assert code == 0, err
    assert out == "".join(t.stdout + t.stderr for t in tasks)
    headers = [line for line in err.splitlines() if line.startswith("Dumping logs of")]
    assert headers == [f"Dumping logs of {t.pathspec} (attempt {t.current_attempt})" for t in tasks]
    assert err.splitlines()[1:3] == ["stdout", "stderr"]

    one = tasks[0]
    code, out, _ = invoke("logs", one.pathspec, "--stdout")
    assert code == 0 and out == one.stdout
    code, out, err = invoke("logs", one.pathspec, "--stderr")
    assert code == 0 and out == one.stderr and "stdout" not in err.splitlines()
    code, out, _ = invoke("logs", one.pathspec, "--stdout", "--stderr")
    assert out == one.stdout + one.stderr
    code, out, _ = invoke("logs", one.pathspec, "--stdout", "--timestamps")
    lines = out.splitlines()
    assert len(lines) == LINES and all(STAMP.match(line) for line in lines)
    assert [STAMP.sub("", line) for line in lines] == one.stdout.splitlines()


def test_aioflow_logs_of_an_earlier_attempt(chatty: Run) -> None:
    task = next(t for t in chatty["sync_each"] if t.index == 3)
    code, out, err = invoke("logs", task.pathspec, "--stderr", "--attempt", "0")
    assert code == 0
    assert f"Dumping logs of {task.pathspec} (attempt 0)" in err
    assert "RuntimeError: sync 3 fails once" in out
    code, out, _ = invoke("logs", f"{chatty.pathspec}/sync_each", "--attempt", "1", "--stdout")
    assert code == 0 and out == task.stdout  # the only task with a second attempt
    code, _, err = invoke("logs", task.pathspec, "--attempt", "3")
    assert code == 1 and f"Task('{task.pathspec}', attempt=3) does not exist" in err
    code, _, err = invoke("logs", f"{chatty.pathspec}/start", "--attempt", "1")
    assert code == 1 and f"Attempt 1 of any task of Step('{chatty.pathspec}/start')" in err


def test_aioflow_logs_errors(chatty: Run, tmp_path: Path) -> None:
    flow = "ChattyFlow"
    for pathspec, code, message in [
        (f"{flow}/{chatty.id}", 2, "Expects a step or a task"),
        (f"{flow}/{chatty.id}/a/b/c", 2, "Expects a step or a task"),
        (f"{flow}//start", 2, "Expects a step or a task"),
        (f"{flow}/99/start", 1, f"Run('{flow}/99') does not exist"),
        (f"Nope/{chatty.id}/start", 1, f"Run('Nope/{chatty.id}') does not exist"),
        (f"{flow}/{chatty.id}/nope", 1, f"Step('{flow}/{chatty.id}/nope') does not exist"),
        (f"{flow}/{chatty.id}/start/999", 1, f"Task('{flow}/{chatty.id}/start/999') does not"),
        (f"{flow}/{chatty.id}/start/x", 1, f"Task('{flow}/{chatty.id}/start/x') does not"),
    ]:
        result, _, err = invoke("logs", pathspec)
        assert result == code, (pathspec, err)
        assert message in plain(err), (pathspec, err)
    code, _, err = invoke("logs", f"{flow}/{chatty.id}/start", "--attempt", "-1")
    assert code == 2 and "--attempt" in plain(err)
    code, _, err = invoke("logs", f"{flow}/1/start", "--root", str(tmp_path / "none"))
    assert code == 1 and err.splitlines()[0] == "    Store error:"
    assert str(tmp_path / "none") in err


class FailingFlow(FlowSpec):
    @step
    def start(self):
        print("about to fail")
        if self.name:
            raise KeyError("missing thing")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_failed_task_keeps_its_output_and_traceback(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(FailingFlow, aioflow_root)
    task = info.value.run["start"].task
    assert task.stdout == "about to fail\n"
    assert task.stderr.startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing thing'" in task.stderr
    code, out, _ = invoke("logs", task.pathspec)
    assert code == 0 and out == task.stdout + task.stderr


# -- a very long log ------------------------------------------------------------------------------

HUGE = 100_000


class LongLogFlow(FlowSpec):
    @step
    def start(self):
        for i in range(HUGE):
            print(f"line {i}")
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_a_hundred_thousand_lines_are_stored_in_full_without_stalling_the_loop(
    aioflow_root: Path,
) -> None:
    seen = 0
    lag = 0.0

    def listen(event: Event) -> None:
        nonlocal seen
        if isinstance(event, LogLine):
            seen += 1

    async def ticker(done: anyio.Event) -> None:
        nonlocal lag
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(0.005)
            lag = max(lag, time.perf_counter() - before - 0.005)

    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker, done)
        run = await run_in_temp_store(LongLogFlow, aioflow_root, listeners=[listen])
        done.set()
    assert seen == HUGE  # every line reached the listeners too
    # Encoding and storing the log happen off the loop: the loop never stops for long.
    assert lag < 0.5, f"the event loop stalled for {lag:.3f} s"
    task = run["start"].task
    text = task.stdout
    assert text.count("\n") == HUGE
    assert text.startswith("line 0\nline 1\n") and text.endswith(f"line {HUGE - 1}\n")
    assert sum(1 for _ in task.loglines()) == HUGE
    code, out, _ = invoke("logs", task.pathspec, "--stdout")
    assert code == 0 and out == text
