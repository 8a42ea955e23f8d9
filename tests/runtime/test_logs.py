"""Per-task capture of stdout/stderr, with many sync and async tasks printing at the same time.

Tasks take turns (a chain of gates) so that their writes really interleave: every task writes
between two writes of every other task, partial lines included.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import FlowFailed, FlowSpec, Parameter, current, step
from aioflow.client import Run
from aioflow.events import Event, LogLine
from aioflow.testing import run_in_temp_store
from tests.helpers import Gate

TIMEOUT = 10.0
ROUNDS = 4
WIDTH = 4  # foreach items per kind: WIDTH async tasks and WIDTH sync tasks per run


STATE = types.SimpleNamespace()


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    STATE.__dict__.clear()
    yield
    for gate in STATE.__dict__.get("turns", []):
        gate.set()


def tag_of(flow: FlowSpec, kind: str) -> str:
    return f"r{flow.run_no}-{kind}{flow.index}"


def slot(flow: FlowSpec, kind: str) -> int:
    """This task's place in the turn order: runs, then items, async and sync alternating."""
    return flow.run_no * 2 * WIDTH + 2 * flow.index + (0 if kind == "a" else 1)


def say(tag: str, turn: int) -> None:
    """One turn of output: a line on each stream, and half a line finished next turn."""
    if turn > 0:
        sys.stdout.write(f"{turn - 1}\n")  # completes the previous turn's half line
    print(f"{tag} out {turn}")
    print(f"{tag} err {turn}", file=sys.stderr)
    if turn < ROUNDS - 1:
        sys.stdout.write(f"{tag} half-")


def expected_stdout(tag: str) -> str:
    lines = []
    for turn in range(ROUNDS):
        lines.append(f"{tag} out {turn}")
        if turn < ROUNDS - 1:
            lines.append(f"{tag} half-{turn}")
    # the half line of turn t is completed at turn t+1, after turn t's "out" line
    return "".join(line + "\n" for line in lines)


def expected_stderr(tag: str) -> str:
    return "".join(f"{tag} err {turn}\n" for turn in range(ROUNDS))


def expected_events(tag: str) -> list[str]:
    """The lines of both streams in the order they were completed."""
    lines = []
    for turn in range(ROUNDS):
        if turn > 0:
            lines.append(f"{tag} half-{turn - 1}")
        lines += [f"{tag} out {turn}", f"{tag} err {turn}"]
    return lines


def open_turn(i: int) -> None:
    """Hand the turn to whoever has turn `i` (the test itself has one, half way through)."""
    if i == STATE.test_turn:
        STATE.test_gate.set()
    else:
        STATE.turns[i].set()


class ChatterFlow(FlowSpec):
    run_no = Parameter("run_no", default=0)
    participants = Parameter("participants", default=2 * WIDTH)

    @step
    def start(self):
        print("start speaking")
        self.items = list(range(WIDTH))
        self.next(self.fa, self.fs)

    @step
    def fa(self):
        self.next(self.talk_async, foreach="items")

    @step
    async def talk_async(self):
        tag = tag_of(self, "a")
        me = slot(self, "a")
        for turn in range(ROUNDS):
            await STATE.turns[turn * self.participants + me].wait()
            say(tag, turn)
            open_turn(turn * self.participants + me + 1)
        self.next(self.ja)

    @step
    def ja(self, inputs):
        self.next(self.join)

    @step
    def fs(self):
        self.next(self.talk_sync, foreach="items")

    @step
    def talk_sync(self):
        tag = tag_of(self, "s")
        me = slot(self, "s")
        for turn in range(ROUNDS):
            STATE.turns[turn * self.participants + me].wait_sync()
            say(tag, turn)
            open_turn(turn * self.participants + me + 1)
        self.next(self.js)

    @step
    def js(self, inputs):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    async def end(self):
        print("the end", file=sys.stderr)


def check_chatter(run: Run, run_no: int, log_lines: dict[str, list[str]]) -> None:
    for step_name, kind in (("talk_async", "a"), ("talk_sync", "s")):
        tasks = list(run[step_name].tasks())
        assert len(tasks) == WIDTH
        for task in tasks:
            tag = f"r{run_no}-{kind}{task.index}"
            assert task.stdout == expected_stdout(tag), task
            assert task.stderr == expected_stderr(tag), task
            # the live LogLine events carry the same lines, under the same task, in order
            assert log_lines[task.pathspec] == expected_events(tag), task
    assert run["start"].task.stdout == "start speaking\n"
    assert run["start"].task.stderr == ""
    assert run["end"].task.stderr == "the end\n"
    assert run["end"].task.stdout == ""
    assert run["join"].task.stdout == "" and run["join"].task.stderr == ""


@pytest.mark.parametrize("runs", [1, 2], ids=["one-run", "two-runs-one-loop"])
async def test_concurrent_tasks_each_capture_their_own_output(
    runs: int, aioflow_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    participants = runs * 2 * WIDTH
    STATE.turns = [Gate() for _ in range(ROUNDS * participants + 1)]
    # The test takes a turn too, half way through: what it prints is no task's output.
    STATE.test_turn = (ROUNDS // 2) * participants
    STATE.test_gate = Gate()
    log_lines: dict[str, list[str]] = {}

    def listener(event: Event) -> None:
        if isinstance(event, LogLine):
            log_lines.setdefault(event.pathspec, []).append(event.line)

    results: dict[int, Run] = {}

    async def one(run_no: int) -> None:
        results[run_no] = await run_in_temp_store(
            ChatterFlow,
            aioflow_root,
            run_no=run_no,
            participants=participants,
            max_workers=2 * WIDTH,
            listeners=[listener],
        )

    async with anyio.create_task_group() as tg:
        for run_no in range(runs):
            tg.start_soon(one, run_no)
        STATE.turns[0].set()
        await STATE.test_gate.wait()
        print("printed by the test, outside any task")
        print("test stderr, outside any task", file=sys.stderr)
        STATE.turns[STATE.test_turn].set()

    captured = capsys.readouterr()
    assert "printed by the test, outside any task" in captured.out
    assert "test stderr, outside any task" in captured.err
    for run_no, run in results.items():
        check_chatter(run, run_no, log_lines)
        for s in run:
            for task in s.tasks():
                assert "outside any task" not in task.stdout + task.stderr


class HelpersFlow(FlowSpec):
    @step
    def start(self):
        print("from the step body")
        helper = threading.Thread(target=lambda: print("from a thread the step started"))
        helper.start()
        helper.join()
        self.next(self.fan)

    @step
    async def fan(self):
        async def child(n: int) -> None:
            print(f"child {n} of {current.task_id}")

        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(child, n)
        self.next(self.end)

    @step
    def end(self):
        sys.stdout.write("no newline at the end")


async def test_output_of_helpers_and_unterminated_lines(
    aioflow_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await run_in_temp_store(HelpersFlow, aioflow_root)
    # a thread the step starts itself has no task context: its output goes to the console
    assert run["start"].task.stdout == "from the step body\n"
    assert "from a thread the step started" in capsys.readouterr().out
    # coroutines started inside an async step inherit the task's context
    fan = run["fan"].task
    assert sorted(fan.stdout.splitlines()) == [f"child {n} of {fan.id}" for n in range(3)]
    # an unterminated last line is kept
    assert run["end"].task.stdout == "no newline at the end\n"


class FailingPrinterFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        print("a says hi")
        print("a warns", file=sys.stderr)
        raise ValueError("kaboom")
        self.next(self.join)

    @step
    async def b(self):
        print("b was here")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_failed_task_keeps_its_output_and_its_traceback(aioflow_root: Path) -> None:
    with pytest.raises(FlowFailed) as info:
        await run_in_temp_store(FailingPrinterFlow, aioflow_root, max_workers=1)
    run = info.value.run
    a = run["a"].task
    assert a.stdout == "a says hi\n"
    stderr = a.stderr
    assert stderr.startswith("a warns\n")
    assert "Traceback (most recent call last):" in stderr
    assert 'raise ValueError("kaboom")' in stderr
    assert stderr.rstrip().endswith("ValueError: kaboom")
    assert "Traceback (most recent call last):" in a.exception.stacktrace
    assert a.exception.stacktrace.rstrip().endswith("ValueError: kaboom")
    # the traceback is stored once, and in no other task
    assert stderr.count("Traceback (most recent call last):") == 1
    for s in run:
        for task in s.tasks():
            if task.pathspec != a.pathspec:
                assert "kaboom" not in task.stdout + task.stderr


def test_output_outside_a_run_is_not_captured(capsys: pytest.CaptureFixture[str]) -> None:
    from aioflow.runtime.logs import StreamProxy

    assert not isinstance(sys.stdout, StreamProxy)
    print("plain print")
    assert capsys.readouterr().out == "plain print\n"


async def test_streams_are_restored_after_a_run(aioflow_root: Path) -> None:
    before: Any = (sys.stdout, sys.stderr)
    await run_in_temp_store(HelpersFlow, aioflow_root)
    assert (sys.stdout, sys.stderr) == before
