"""Tests of the consoles of a run: Metaflow-style lines off a terminal (`aioflow.console`), the
live display on one (`console_live`, recorded by rich), the notebook's updated output
(`console_notebook`), and `aioflow run` under a pseudo-terminal, `--quiet` and Ctrl-C."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from rich.console import Console as RichConsole

from aioflow import Flow, FlowSpec, step
from aioflow.console import Console, console_for
from aioflow.console_live import LiveConsole
from aioflow.console_notebook import NotebookConsole
from aioflow.current import RunContext, TaskContext
from aioflow.events import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskFinished,
    TaskStarted,
)
from aioflow.graph import FlowGraph
from aioflow.progress import RunProgress
from aioflow.runtime import logs
from aioflow.store import Store
from tests.helpers import aioflow_command

pytestmark = pytest.mark.timeout(30)

TS = 1_700_000_000.123456
STAMP = datetime.fromtimestamp(TS).strftime("%Y-%m-%d %H:%M:%S.") + "123"
STAMP_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


def make_console(timestamps: bool = False) -> tuple[Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Console(out, err, timestamps=timestamps), out, err


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def started(task: str = "1", step: str = "start", attempt: int = 0) -> TaskStarted:
    return TaskStarted(f"MyFlow/7/{step}/{task}", step, task, attempt, timestamp=TS)


def finished(task: str = "1", step: str = "start", splits: int | None = None) -> TaskFinished:
    return TaskFinished(f"MyFlow/7/{step}/{task}", step, task, 0.01, 0, splits, timestamp=TS)


def test_run_started_with_timestamp() -> None:
    console, out, err = make_console(timestamps=True)
    console(RunStarted("MyFlow", "7", "tester", timestamp=TS))
    assert out.getvalue() == f"{STAMP} Workflow starting (run-id 7):\n"
    assert err.getvalue() == ""


def test_timestamp_is_cut_to_milliseconds() -> None:
    console, out, _ = make_console(timestamps=True)
    console(started())
    (line,) = lines(out)
    assert STAMP_RE.match(line)
    assert line == f"{STAMP} [7/start/1] Task is starting."


def test_without_timestamps() -> None:
    console, out, _ = make_console()
    console(RunStarted("MyFlow", "7", "tester", timestamp=TS))
    assert lines(out) == ["Workflow starting (run-id 7):"]


def test_task_lines_carry_run_step_task_without_flow_or_pid() -> None:
    console, out, err = make_console()
    console(started("12", "work"))
    console(finished("12", "work"))
    assert lines(out) == [
        "[7/work/12] Task is starting.",
        "[7/work/12] Task finished successfully.",
    ]
    assert err.getvalue() == ""


def test_retry_attempt() -> None:
    console, out, _ = make_console()
    console(started(attempt=1))
    assert lines(out) == ["[7/start/1] Task is starting (retry)."]


def test_foreach_split_count_comes_before_finished() -> None:
    console, out, _ = make_console()
    console(finished(splits=3))
    assert lines(out) == [
        "[7/start/1] Foreach yields 3 child steps.",
        "[7/start/1] Task finished successfully.",
    ]


def test_non_foreach_task_does_not_mention_splits() -> None:
    console, out, _ = make_console()
    console(finished(splits=None))
    assert "Foreach" not in out.getvalue()


def test_user_lines_are_rstripped_not_stripped() -> None:
    console, out, _ = make_console()
    console(LogLine("MyFlow/7/start/1", "stdout", "    indented value   \r", timestamp=TS))
    console(LogLine("MyFlow/7/start/1", "stdout", "", timestamp=TS))
    assert out.getvalue() == "[7/start/1]     indented value\n[7/start/1] \n"


def test_user_stderr_lines_are_shown_with_the_task_prefix() -> None:
    console, out, _ = make_console()
    console(LogLine("MyFlow/7/a/3", "stderr", "a warning", timestamp=TS))
    assert lines(out) == ["[7/a/3] a warning"]


def test_task_failure_prints_the_traceback_then_task_failed() -> None:
    console, out, err = make_console()
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/tmp/flow.py", line 13, in work\n'
        '    raise ValueError("boom 2")\n'
        "ValueError: boom 2\n"
    )
    console(
        TaskFailed(
            "MyFlow/7/work/3", "work", "3", "ValueError", "boom 2", traceback, 0.1,
            timestamp=TS,
        )
    )  # fmt: skip
    assert lines(out) == [
        "[7/work/3] Traceback (most recent call last):",
        '[7/work/3]   File "/tmp/flow.py", line 13, in work',
        '[7/work/3]     raise ValueError("boom 2")',
        "[7/work/3] ValueError: boom 2",
        "[7/work/3] Task failed.",
    ]
    assert err.getvalue() == ""


def test_chained_traceback_keeps_its_blank_lines() -> None:
    console, out, _ = make_console()
    traceback = "KeyError: 'x'\n\nDuring handling of the above exception:\n\nValueError: y\n"
    console(TaskFailed("MyFlow/7/a/2", "a", "2", "ValueError", "y", traceback, 0.1, timestamp=TS))
    assert lines(out) == [
        "[7/a/2] KeyError: 'x'",
        "[7/a/2] ",
        "[7/a/2] During handling of the above exception:",
        "[7/a/2] ",
        "[7/a/2] ValueError: y",
        "[7/a/2] Task failed.",
    ]


def test_failure_caught_by_catch_is_marked_and_indented() -> None:
    console, out, err = make_console()
    traceback = "Traceback (most recent call last):\nValueError: nope\n"
    console(
        TaskFailed(
            "MyFlow/7/a/2", "a", "2", "ValueError", "nope", traceback, 0.1, caught=True,
            timestamp=TS,
        )
    )  # fmt: skip
    assert lines(out) == [
        "[7/a/2] @catch caught an exception from step a",
        "[7/a/2] >  Traceback (most recent call last):",
        "[7/a/2] >  ValueError: nope",
        "[7/a/2] Task failed; @catch handled it and the run goes on.",
    ]
    assert err.getvalue() == ""


def test_successful_run_says_done() -> None:
    console, out, err = make_console(timestamps=True)
    console(RunFinished("MyFlow", "7", "succeeded", 1.0, timestamp=TS))
    assert out.getvalue() == f"{STAMP} Done!\n"
    assert err.getvalue() == ""


def test_failed_run_summary_goes_to_stderr_without_timestamps() -> None:
    console, out, err = make_console(timestamps=True)
    console(
        RunFinished(
            "MyFlow", "7", "failed", 1.0, "MyFlow/7/work/3",
            ("MyFlow/7/work/4", "MyFlow/7/work/5"), timestamp=TS,
        )
    )  # fmt: skip
    assert lines(out) == [
        f"{STAMP} Workflow failed.",
        f"{STAMP} Terminating 2 active tasks...",
    ]
    assert err.getvalue() == "    Step failure:\n    Step work (task-id 3) failed.\n\n"


def test_cancelled_run() -> None:
    console, out, err = make_console()
    console(RunFinished("MyFlow", "7", "cancelled", 1.0, None, ("MyFlow/7/wait/2",)))
    assert lines(out) == ["Workflow cancelled.", "Terminating 1 active tasks..."]
    assert err.getvalue() == ""


def test_failure_without_a_failed_task_has_no_step_failure_block() -> None:
    console, out, err = make_console()
    console(RunFinished("MyFlow", "7", "failed", 1.0))
    assert lines(out) == ["Workflow failed.", "Terminating 0 active tasks..."]
    assert err.getvalue() == ""


def test_unknown_events_are_ignored() -> None:
    console, out, err = make_console()
    console(Event(timestamp=TS))
    assert out.getvalue() == err.getvalue() == ""


def test_a_whole_run_in_order() -> None:
    console, out, err = make_console()
    events: list[Event] = [
        RunStarted("MyFlow", "7", "tester"),
        started("1"),
        LogLine("MyFlow/7/start/1", "stdout", "hello"),
        finished("1", splits=2),
        started("2", "a"),
        started("3", "a"),
        finished("2", "a"),
        finished("3", "a"),
        RunFinished("MyFlow", "7", "succeeded", 0.5),
    ]
    for event in events:
        console(event)
    assert lines(out) == [
        "Workflow starting (run-id 7):",
        "[7/start/1] Task is starting.",
        "[7/start/1] hello",
        "[7/start/1] Foreach yields 2 child steps.",
        "[7/start/1] Task finished successfully.",
        "[7/a/2] Task is starting.",
        "[7/a/3] Task is starting.",
        "[7/a/2] Task finished successfully.",
        "[7/a/3] Task finished successfully.",
        "Done!",
    ]
    assert err.getvalue() == ""


def test_default_streams_are_the_current_stdout_and_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console = Console(timestamps=False)
    console(started())
    console(RunFinished("MyFlow", "7", "failed", 1.0, "MyFlow/7/start/1"))
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "[7/start/1] Task is starting.",
        "Workflow failed.",
        "Terminating 0 active tasks...",
    ]
    assert captured.err == "    Step failure:\n    Step start (task-id 1) failed.\n\n"


def test_console_output_escapes_task_log_capture(capsys: pytest.CaptureFixture[str]) -> None:
    # Events may be delivered while a task's print capture is active in this context; the
    # console's own lines must reach the terminal, not the task's log.
    console = Console(timestamps=False)
    task_log = logs.TaskLog()
    logs.install()
    try:
        assert isinstance(sys.stdout, logs.StreamProxy)
        run = RunContext("MyFlow", "7", None, "me", "user:me", frozenset(), ())
        token = logs.enter_task(TaskContext(run, "start", "1", 0, log=task_log))
        try:
            print("captured by the task")
            console(started())
            console(RunFinished("MyFlow", "7", "failed", 1.0, "MyFlow/7/start/1"))
        finally:
            logs.exit_task(token)
    finally:
        logs.uninstall()
    captured = capsys.readouterr()
    assert "[7/start/1] Task is starting." in captured.out
    assert "captured by the task" not in captured.out
    assert "Step start (task-id 1) failed." in captured.err
    assert [line for _, line in task_log.stdout] == ["captured by the task"]
    assert task_log.stderr == []


# -- the live display on a terminal (rich, recorded) ----------------------------------------------

FAN_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/tmp/flow.py", line 13, in work\n'
    '    raise ValueError("boom")\n'
    "ValueError: boom\n"
)


class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def recording() -> RichConsole:
    return RichConsole(record=True, force_terminal=True, width=100, color_system=None)


def fan_events(fail: bool = False) -> list[Event]:
    """A run of FanFlow at fixed times: start, 4 work tasks (one failing), then the end."""
    events: list[Event] = [
        RunStarted("FanFlow", "7", "tester", timestamp=100.0),
        TaskStarted("FanFlow/7/start/1", "start", "1", timestamp=100.0),
        LogLine("FanFlow/7/start/1", "stdout", "fanning out", timestamp=100.1),
        TaskFinished("FanFlow/7/start/1", "start", "1", 0.5, 0, 4, timestamp=100.5),
    ]
    events += [
        TaskStarted(f"FanFlow/7/work/{i}", "work", str(i), timestamp=101.0) for i in range(2, 6)
    ]
    for i in range(2, 6):
        path = f"FanFlow/7/work/{i}"
        if fail and i == 3:
            failed = TaskFailed(path, "work", "3", "ValueError", "boom", FAN_TRACEBACK, 1.0,
                                timestamp=102.0)  # fmt: skip
            events.append(failed)
        else:
            events.append(TaskFinished(path, "work", str(i), 1.0, timestamp=101.0 + i))
    if fail:
        events.append(RunFinished("FanFlow", "7", "failed", 6.0, "FanFlow/7/work/3",
                                  timestamp=106.0))  # fmt: skip
    else:
        events.append(TaskFinished("FanFlow/7/join/6", "join", "6", 0.1, timestamp=105.5))
        events.append(TaskFinished("FanFlow/7/end/7", "end", "7", 0.1, timestamp=106.0))
        events.append(RunFinished("FanFlow", "7", "succeeded", 6.0, timestamp=106.0))
    return events


#: Lines of the live area (headline, step rows), which the terminal erases as it redraws.
LIVE_AREA = re.compile(r"FanFlow/7  \d+ tasks done.*|  \w+ [━╸ ]+ \d+/\d+.*|")


def live_output(events: list[Event], **options: Any) -> list[str]:
    """What stays on the terminal: the recorded output without the live area's frames."""
    rich = recording()
    console = LiveConsole(rich, graph=FlowGraph(FanFlow), **options)
    for event in events:
        console(event)
    lines = [line.rstrip() for line in rich.export_text().splitlines()]
    return [line for line in lines if not LIVE_AREA.fullmatch(line)]


def test_live_console_prints_the_steps_lines_and_a_summary_without_task_lines() -> None:
    out = live_output(fan_events())
    assert out == [
        "[7/start/1] fanning out",
        "Run FanFlow/7 succeeded in 6.0 s.",
        "    Tasks: 7 succeeded.",
        "    Slowest step: work, 5.0 s for 4 tasks.",
        "    Read it: Run('FanFlow/7'), or aioflow runs FanFlow",
    ]


def test_live_console_prints_a_failure_in_full_and_how_to_resume() -> None:
    out = live_output(
        fan_events(fail=True), resume_hint="aioflow resume f.py --origin-run-id {run_id}"
    )
    assert out[:6] == [
        "[7/start/1] fanning out",
        "[7/work/3] Traceback (most recent call last):",
        '[7/work/3]   File "/tmp/flow.py", line 13, in work',
        '[7/work/3]     raise ValueError("boom")',
        "[7/work/3] ValueError: boom",
        "[7/work/3] Task failed.",
    ]
    assert out[6:] == [
        "Run FanFlow/7 failed in 6.0 s.",
        "    Tasks: 4 succeeded, 1 failed.",
        "    Slowest step: work, 5.0 s for 4 tasks.",
        "    Step failure: step work (task-id 3) failed.",
        "    Read its log: aioflow logs FanFlow/7/work/3",
        "    Resume it: aioflow resume f.py --origin-run-id 7",
    ]


def test_live_console_prints_task_lines_when_verbose() -> None:
    out = live_output(fan_events(), verbose=True)
    assert out[:5] == [
        "[7/start/1] Task is starting.",
        "[7/start/1] fanning out",
        "[7/start/1] Task finished successfully.",
        "[7/work/2] Task is starting.",
        "[7/work/3] Task is starting.",
    ]
    assert out.count("[7/work/5] Task finished successfully.") == 1


def test_the_live_area_has_one_line_per_active_step_with_total_rate_and_eta() -> None:
    console = LiveConsole(recording(), graph=FlowGraph(FanFlow))
    for event in fan_events()[:10]:  # the start task, 4 work tasks started, 2 of them finished
        console.progress(event)
    shown = recording()
    now = 103.0  # 2 tasks done 2 s after the step started: 1 task/s, 2 to go
    with patch("aioflow.console_live.time.time", return_value=now):
        shown.print(console._render())
    text = [line.rstrip() for line in shown.export_text().splitlines()]
    assert text[0] == "FanFlow/7  3 tasks done, 2 running  3.0 s"
    assert len(text) == 2  # start is done: only work is active
    assert re.fullmatch(r"  work [━╸ ]+ 2/4  2 running  1\.0 tasks/s  ETA 2\.0 s", text[1]), text


def test_run_progress_knows_totals_from_the_graph_before_tasks_start() -> None:
    progress = RunProgress(FlowGraph(FanFlow))
    for event in fan_events()[:4]:  # the start task has finished: 4 splits announced
        progress(event)
    (work,) = progress.active_steps()
    assert (work.name, work.total, work.started, work.done) == ("work", 4, 0, 0)
    assert RunProgress()._step("work").total == 0  # without the graph: known as they start


def test_a_notebook_shows_one_output_updated_in_place() -> None:
    shown: list[tuple[str, dict[str, str]]] = []

    class Handle:
        def update(self, obj: dict[str, str], raw: bool) -> None:
            shown.append(("update", obj))

    def display(obj: dict[str, str], raw: bool, display_id: bool) -> Handle:
        assert raw and display_id
        shown.append(("display", obj))
        return Handle()

    console = NotebookConsole(graph=FlowGraph(FanFlow), display=display)
    for event in fan_events():
        console(event)
    assert [kind for kind, _ in shown].count("display") == 1
    assert shown[0][1]["text/plain"].startswith("FanFlow/7  0 tasks done, 0 running")
    assert shown[-1] == ("update", {"text/plain": "\n".join(console.progress.summary())})
    assert shown[-1][1]["text/plain"].startswith("Run FanFlow/7 succeeded in 6.0 s.")


def test_console_for_chooses_lines_off_a_terminal_and_live_on_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert type(console_for()) is Console
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    monkeypatch.setenv("TERM", "xterm")
    assert type(console_for()) is LiveConsole
    monkeypatch.setenv("TERM", "dumb")  # cannot redraw in place
    assert type(console_for()) is Console
    kernel_shell = SimpleNamespace(kernel=object())
    fake_ipython = SimpleNamespace(get_ipython=lambda: kernel_shell)
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert type(console_for()) is NotebookConsole


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- `aioflow run` under a pseudo-terminal, --quiet, Ctrl-C ---------------------------------------

COUNT_FLOW = """
import os
import time
from pathlib import Path

from aioflow import FlowSpec, step


class CountFlow(FlowSpec):
    @step
    def start(self):
        print("fanning out")
        self.items = list(range(20))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 7 and os.environ.get("FAIL_AT_7"):
            raise ValueError("no sevens")
        if self.input == 7 and os.environ.get("BLOCK_AT_7"):
            Path("marker").write_text("waiting")
            while not Path("release").exists():
                time.sleep(0.01)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        print("all done")


if __name__ == "__main__":
    CountFlow()
"""

#: Control sequences a terminal interprets (colours, cursor moves, erasing).
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class TerminalRun:
    code: int
    raw: str

    @property
    def text(self) -> str:
        """The output without control sequences."""
        return ESCAPES.sub("", self.raw).replace("\r", "")

    def screen(self) -> list[str]:
        """The lines a terminal shows after this output: the few sequences rich and the
        terminal send (carriage return, line feed, cursor up, erase in line) are applied."""
        lines: list[list[str]] = [[]]
        row = col = 0
        for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", self.raw):
            if token == "\r":
                col = 0
            elif token == "\n":
                row, col = row + 1, 0
                if row == len(lines):
                    lines.append([])
            elif token.startswith("\x1b["):
                if token.endswith("A"):
                    row = max(row - int(token[2:-1] or 1), 0)
                elif token == "\x1b[2K":
                    lines[row] = []
            else:
                line = lines[row]
                line.extend(" " * (col - len(line)))
                line[col : col + 1] = [token]
                col += 1
        return ["".join(line).rstrip() for line in lines]


def _take_the_terminal() -> None:  # in the child: the pty becomes its controlling terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_terminal(
    argv: list[str], cwd: Path, env: dict[str, str], interrupt_when: Path | None = None
) -> TerminalRun:
    """Run `argv` with a pseudo-terminal as its terminal and return all it printed there.

    With `interrupt_when`, Ctrl-C is typed (as a user does: the terminal sends SIGINT and
    echoes ^C) once that file exists.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        argv, cwd=cwd, env={**env, "TERM": "xterm", "COLUMNS": "120"},
        stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=_take_the_terminal,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    interrupted = interrupt_when is None
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not interrupted and interrupt_when is not None and interrupt_when.exists():
                os.write(master, b"\x03")
                interrupted = True
            if not ready:
                if proc.poll() is not None and not select.select([master], [], [], 0)[0]:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last holder closed it
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return TerminalRun(code, b"".join(chunks).decode("utf-8", "replace"))


@pytest.fixture
def flow_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "count_flow.py").write_text(COUNT_FLOW)
    monkeypatch.setenv("AIOFLOW_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    monkeypatch.delenv("FAIL_AT_7", raising=False)
    monkeypatch.delenv("BLOCK_AT_7", raising=False)
    return tmp_path


def aioflow_run(*args: str) -> list[str]:
    return [*aioflow_command(), "run", "count_flow.py", *args]


def test_on_a_terminal_a_run_shows_its_lines_and_a_summary_not_task_lines(flow_dir: Path) -> None:
    result = run_in_terminal(aioflow_run(), flow_dir, dict(os.environ))
    text = result.text
    assert result.code == 0, text
    assert "Task is starting" not in text
    assert "Task finished successfully" not in text
    assert "[1/start/1] fanning out\n" in text
    assert "[1/end/23] all done\n" in text
    assert text.endswith(
        "    Tasks: 23 succeeded.\n"
        "    Slowest step: " + text.split("    Slowest step: ")[-1].split("\n")[0] + "\n"
        "    Read it: Run('CountFlow/1'), or aioflow runs CountFlow\n"
    )
    assert re.search(r"^Run CountFlow/1 succeeded in \d+\.\d s\.$", text, re.MULTILINE)
    assert re.search(r"^    Slowest step: \w+, \d+\.\d s for \d+ tasks?\.$", text, re.MULTILINE)


def test_verbose_on_a_terminal_adds_the_task_lines(flow_dir: Path) -> None:
    result = run_in_terminal(aioflow_run("--verbose"), flow_dir, dict(os.environ))
    assert result.code == 0, result.text
    for task in range(2, 22):
        assert f"[1/work/{task}] Task is starting.\n" in result.text
        assert f"[1/work/{task}] Task finished successfully.\n" in result.text
    assert "    Tasks: 23 succeeded.\n" in result.text


def test_a_failure_on_a_terminal_is_printed_in_full_with_the_resume_command(
    flow_dir: Path,
) -> None:
    result = run_in_terminal(aioflow_run(), flow_dir, {**os.environ, "FAIL_AT_7": "1"})
    text = result.text
    assert result.code == 1, text
    assert "[1/work/9] Traceback (most recent call last):\n" in text
    assert "[1/work/9] ValueError: no sevens\n" in text
    assert text.count("ValueError: no sevens") == 1
    assert "    Step failure: step work (task-id 9) failed.\n" in text
    assert "    Read its log: aioflow logs CountFlow/1/work/9\n" in text
    assert "    Resume it: aioflow resume count_flow.py --origin-run-id 1\n" in text


def test_the_resume_command_is_the_one_the_user_typed(flow_dir: Path) -> None:
    argv = [sys.executable, "count_flow.py", "run"]
    result = run_in_terminal(argv, flow_dir, {**os.environ, "FAIL_AT_7": "1"})
    assert result.code == 1, result.text
    assert "    Resume it: python count_flow.py resume --origin-run-id 1\n" in result.text


def test_quiet_prints_the_error_and_the_failure_summary_only(flow_dir: Path) -> None:
    proc = subprocess.run(
        aioflow_run("--quiet"), cwd=flow_dir, env={**os.environ, "FAIL_AT_7": "1"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    header, failure = proc.stderr.split("    The graph looks good!\n")
    assert header.startswith("aioflow ")
    lines = failure.splitlines()
    assert lines[0] == "[1/work/9] Traceback (most recent call last):"
    assert (
        lines[-5:]
        == [
            "[1/work/9] ValueError: no sevens",
            "[1/work/9] Task failed.",
            "    Step failure:",
            "    Step work (task-id 9) failed.",
            "",
        ][:4]
        + lines[-1:]
    )
    assert "fanning out" not in proc.stderr


def test_quiet_on_a_successful_run_prints_nothing_but_the_header(flow_dir: Path) -> None:
    result = run_in_terminal(aioflow_run("--quiet"), flow_dir, dict(os.environ))
    assert result.code == 0
    assert result.text.splitlines()[-1] == "    The graph looks good!"


def test_ctrl_c_on_a_terminal_breaks_the_line_and_says_how_to_resume(flow_dir: Path) -> None:
    result = run_in_terminal(
        aioflow_run(), flow_dir, {**os.environ, "BLOCK_AT_7": "1"},
        interrupt_when=flow_dir / "marker",
    )  # fmt: skip
    (flow_dir / "release").write_text("go")
    assert result.code == 130, result.text
    screen = result.screen()
    # The notice has a line of its own, and the terminal's ^C echo is glued to nothing.
    assert "Cancelling the run (press Ctrl-C again to exit at once)..." in screen, screen
    assert not [line for line in screen if "^C" in line and line != "^C"], screen
    text = result.text
    assert re.search(r"^Run CountFlow/1 cancelled in \d+\.\d s\.$", text, re.MULTILINE), text
    assert "    Resume it: aioflow resume count_flow.py --origin-run-id 1\n" in text
    assert "marked as failed" not in text
    run = Flow("CountFlow", _store=Store(flow_dir / "store")).latest_run
    assert run is not None and run.status == "cancelled"
