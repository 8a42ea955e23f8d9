"""Output that does not come from `print` in the task's own context: records of `logging`
handlers the user configured, output of subprocesses a process step runs, and what a task
prints after its run has returned.

A task's output reaches its log (and from there the console, prefixed, and `aioflow logs`), or
nothing; never the host's streams unprefixed.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import pytest
from typer.testing import CliRunner

import aioflow
from aioflow import FlowSpec, step
from aioflow.cli import app
from aioflow.events import Event, LogLine
from aioflow.testing import run_in_temp_store

pytestmark = pytest.mark.timeout(90)

USER_LOGGER = "userflow"
FORMAT = "%(levelname)s %(name)s: %(message)s"


@pytest.fixture
def user_logger() -> Iterator[logging.Logger]:
    """The user's logger, put back as it was after the test."""
    logger = logging.getLogger(USER_LOGGER)
    yield logger
    for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def configure(logger: logging.Logger) -> logging.StreamHandler[TextIO]:
    """Configure `logger` the usual way, before any run: a handler holding the stderr of the
    time (in a test, pytest changes sys.stderr between a fixture and the test)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


class LoggingFlow(FlowSpec):
    @step
    def start(self):
        logging.getLogger(USER_LOGGER).info("from a thread step")
        self.next(self.middle)

    @step
    async def middle(self):
        logging.getLogger(USER_LOGGER).warning("from an async step")
        self.next(self.end)

    @step
    def end(self):
        logging.getLogger(USER_LOGGER).debug("below the configured level")


def collect_lines(into: list[tuple[str, str, str]]) -> object:
    def listener(event: Event) -> None:
        if isinstance(event, LogLine):
            into.append((event.pathspec.split("/", 2)[2], event.stream, event.line))

    return listener


async def test_logging_records_go_to_the_task_log_and_the_console_prefixed(
    aioflow_root: Path,
    capsys: pytest.CaptureFixture[str],
    user_logger: logging.Logger,
) -> None:
    user_handler = configure(user_logger)
    configured_stream = user_handler.stream
    handlers = list(user_logger.handlers)
    root_handlers = list(logging.getLogger().handlers)
    lines: list[tuple[str, str, str]] = []

    run = await run_in_temp_store(
        LoggingFlow, aioflow_root, quiet=False, listeners=[collect_lines(lines)]
    )

    assert run["start"].task.stderr == f"INFO {USER_LOGGER}: from a thread step\n"
    assert run["middle"].task.stderr == f"WARNING {USER_LOGGER}: from an async step\n"
    assert run["end"].task.stderr == ""
    assert lines == [
        ("start/1", "stderr", f"INFO {USER_LOGGER}: from a thread step"),
        ("middle/2", "stderr", f"WARNING {USER_LOGGER}: from an async step"),
    ]
    console = capsys.readouterr()
    shown = console.out + console.err
    assert re.search(rf"start/1\] INFO {USER_LOGGER}: from a thread step$", shown, re.M)
    assert not re.search(rf"^(INFO|WARNING) {USER_LOGGER}", shown, re.M)  # never unprefixed

    result = CliRunner().invoke(app, ["logs", f"{run.pathspec}/start", "--stderr"])
    assert result.exit_code == 0, result.output
    assert f"INFO {USER_LOGGER}: from a thread step\n" in result.stdout

    # The user's configuration is as it was, and a record logged outside a task goes through.
    assert user_logger.handlers == handlers and user_logger.level == logging.INFO
    assert user_handler.stream is configured_stream
    assert logging.getLogger().handlers == root_handlers
    user_logger.info("after the run")
    assert capsys.readouterr().err == f"INFO {USER_LOGGER}: after the run\n"


SHELL_FLOW = f"""
    import logging
    import os
    import subprocess
    import sys

    from aioflow import FlowSpec, step

    # Configured when the module is imported, as flow files do: the handler holds the stderr
    # of that moment.
    log = logging.getLogger("procflow")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter({FORMAT!r}))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


    class ShellFlow(FlowSpec):
        @step(executor="process")
        def start(self):
            print("before")
            subprocess.run(["echo", "from echo"], check=True)
            os.system("echo from os.system >&2")
            log.info("from a process step")
            os.system("printf 'unterminated'")
            print(" line, then after")
            self.next(self.end)

        @step
        def end(self):
            pass
"""


@pytest.fixture
def shell_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FlowSpec]]:
    """ShellFlow from an importable module, so that worker processes import it too."""
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "shell_flow_module.py").write_text(textwrap.dedent(SHELL_FLOW))
    monkeypatch.syspath_prepend(str(folder))
    import shell_flow_module

    yield shell_flow_module.ShellFlow
    shell_flow_module.log.removeHandler(shell_flow_module.handler)
    del sys.modules["shell_flow_module"]


async def test_a_process_step_captures_its_subprocesses_and_its_logging(
    aioflow_root: Path, shell_flow: type[FlowSpec]
) -> None:
    lines: list[tuple[str, str, str]] = []
    run = await run_in_temp_store(shell_flow, aioflow_root, listeners=[collect_lines(lines)])
    task = run["start"].task
    # In the order written, Python's prints and the subprocesses' output alike.
    assert task.stdout == "before\nfrom echo\nunterminated line, then after\n"
    assert task.stderr == "from os.system\nINFO procflow: from a process step\n"
    # Live lines come with the reply, both streams in the order they were written.
    assert [line for step_task, _, line in lines if step_task == "start/1"] == [
        "before",
        "from echo",
        "from os.system",
        "INFO procflow: from a process step",
        "unterminated line, then after",
    ]


FLOW_FILE = """
    import logging

    from aioflow import FlowSpec, step

    log = logging.getLogger("fileflow")


    class FileFlow(FlowSpec):
        @step(executor="process")
        def start(self):
            log.info("from a process step of a flow file")
            log.debug("below the configured level")
            self.next(self.end)

        @step
        def end(self):
            pass
"""


async def test_a_flow_file_s_process_step_logs_as_the_host_configured(
    aioflow_root: Path, make_flow: Callable[[str], type[FlowSpec]]
) -> None:
    # A flow file travels to its workers by value: its module's top level (where logging is
    # usually configured) never runs there, so the workers take the host's configuration.
    flow = make_flow(FLOW_FILE)
    file_logger = logging.getLogger("fileflow")
    configure(file_logger)
    try:
        run = await run_in_temp_store(flow, aioflow_root)
    finally:
        for handler in file_logger.handlers[:]:
            file_logger.removeHandler(handler)
        file_logger.setLevel(logging.NOTSET)
        file_logger.propagate = True
    assert run["start"].task.stderr == "INFO fileflow: from a process step of a flow file\n"


ABANDONING_SCRIPT = """
    import sys
    import threading

    from aioflow import FlowFailed, FlowSpec, run_flow_sync, step

    started = threading.Event()
    release = threading.Event()
    printed = threading.Event()


    class AbandonFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.slow, self.fails)

        @step
        def slow(self):
            started.set()
            release.wait(60)  # until the run has returned
            print("late line from a task left running", end="")
            print("late error from a task left running", file=sys.stderr)
            printed.set()
            self.next(self.join)

        @step
        def fails(self):
            started.wait(60)
            raise ValueError("boom")
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass


    try:
        run_flow_sync(AbandonFlow, root=sys.argv[1], quiet=sys.argv[2] == "quiet", max_workers=4)
    except FlowFailed:
        print("the run returned")
    release.set()
    assert printed.wait(60)
    print("the host goes on")
"""


@pytest.mark.parametrize("console", ["quiet", "loud"])
def test_an_abandoned_task_prints_nothing_into_the_host(tmp_path: Path, console: str) -> None:
    script = tmp_path / "abandon.py"
    script.write_text(textwrap.dedent(ABANDONING_SCRIPT))
    env = dict(os.environ, PYTHONPATH=str(Path(aioflow.__file__).parents[1]))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store"), console],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "left running" not in done.stdout + done.stderr
    assert done.stdout.endswith("the run returned\nthe host goes on\n")
    if console == "loud":
        assert re.search(r"Workflow failed\.$", done.stdout, re.M)  # a whole line
