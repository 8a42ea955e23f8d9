"""Tests of aioflow.console: the Console listener turns run events into Metaflow-style lines."""

from __future__ import annotations

import io
import re
import sys
from datetime import datetime

import pytest

from aioflow.console import Console
from aioflow.events import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskFinished,
    TaskStarted,
)
from aioflow.runtime import logs

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
        token = logs.set_task_log(task_log)
        try:
            print("captured by the task")
            console(started())
            console(RunFinished("MyFlow", "7", "failed", 1.0, "MyFlow/7/start/1"))
        finally:
            logs.reset_task_log(token)
    finally:
        logs.uninstall()
    captured = capsys.readouterr()
    assert "[7/start/1] Task is starting." in captured.out
    assert "captured by the task" not in captured.out
    assert "Step start (task-id 1) failed." in captured.err
    assert [line for _, line in task_log.stdout] == ["captured by the task"]
    assert task_log.stderr == []
