"""Console output of a run, Metaflow style, built only on the run's events.

    2026-11-22 17:37:38.986 Workflow starting (run-id 3):
    2026-11-22 17:37:38.990 [3/start/1] Task is starting.
    2026-11-22 17:37:38.991 [3/start/1] hello from start
    2026-11-22 17:37:38.992 [3/start/1] Task finished successfully.
    ...
    2026-11-22 17:37:39.011 Done!

Progress goes to stdout; the failure summary ("Step failure: ...") goes to stderr, as Metaflow's.

That is the console off a terminal (CI logs, pipes, files). `console_for` chooses the console
of a run: on a terminal the live display of `console_live.py` (rich, imported only then), in a
Jupyter kernel the updated text of `console_notebook.py`, elsewhere these lines. Every console
is an ordinary event listener: whatever it shows, a caller can build from `aioflow.events` too.
`failure_lines` is what `--quiet` still prints of a failed run.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .graph import FlowGraph
from .streams import uncaptured

if TYPE_CHECKING:
    from .events import Event, RunFinished, TaskFailed


def _short(pathspec: str) -> str:
    # "Flow/run/step/task" -> "run/step/task", as Metaflow prints it.
    return pathspec.split("/", 1)[1]


class RunConsole(Protocol):
    """What the command line needs of a console: a listener that can print a notice."""

    #: True when the console closes a run with a summary saying how to resume it.
    summarizes: bool

    def __call__(self, event: Event) -> None: ...

    def notice(self, text: str) -> None:
        """Print a line of the caller's own (Ctrl-C's "Cancelling the run...")."""


class Console:
    """An event listener that prints a run's progress and its tasks' output, line by line."""

    summarizes = False

    def __init__(
        self,
        stream: TextIO | None = None,
        err: TextIO | None = None,
        *,
        timestamps: bool = True,
        verbose: bool = False,
    ) -> None:
        """`verbose` prints a failure's whole chain where the traceback is a one-line message."""
        self._stream = stream
        self.verbose = verbose
        self._err = err
        self.timestamps = timestamps
        self._stamp_second = -1
        self._stamp_text = ""

    def _stamp(self, timestamp: float) -> str:
        # Formatting a datetime costs microseconds; a task printing many lines prints many in
        # the same second, so the seconds part is formatted once per second.
        second = int(timestamp)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp_text = datetime.fromtimestamp(second).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self._stamp_text}.{int((timestamp - second) * 1000):03d}"

    def _write(self, stream: TextIO, text: str, timestamp: float | None) -> None:
        if self.timestamps and timestamp is not None:
            text = f"{self._stamp(timestamp)} {text}"
        stream.write(text + "\n")
        stream.flush()

    def echo(self, text: str, timestamp: float | None = None) -> None:
        """Print one line to stdout (the real one, even while tasks' output is captured)."""
        self._write(uncaptured(self._stream or sys.stdout), text, timestamp)

    def echo_err(self, text: str) -> None:
        """Print one line to stderr."""
        self._write(uncaptured(self._err or sys.stderr), text, None)

    def notice(self, text: str) -> None:
        """Print a line of the caller's own to stderr, on a line of its own on a terminal
        (where Ctrl-C has just echoed `^C`)."""
        err = uncaptured(self._err or sys.stderr)
        if getattr(err, "isatty", lambda: False)():
            text = "\n" + text
        self.echo_err(text)

    def __call__(self, event: Event) -> None:
        self._print(event)

    def _print(self, event: Event) -> None:
        LogLine, TaskStarted, TaskFinished, TaskFailed, RunStarted, RunFinished = _event_types()
        ts = event.timestamp
        if isinstance(event, LogLine):
            self.echo(f"[{_short(event.pathspec)}] {event.line.rstrip()}", ts)
        elif isinstance(event, TaskStarted):
            retry = " (retry)" if event.attempt else ""
            self.echo(f"[{_short(event.pathspec)}] Task is starting{retry}.", ts)
        elif isinstance(event, TaskFinished):
            prefix = f"[{_short(event.pathspec)}]"
            if event.origin_pathspec is not None:
                origin = _short(event.origin_pathspec)
                self.echo(f"{prefix} Cloning results of a previously successful task {origin}", ts)
                return
            if event.foreach_splits is not None:
                self.echo(f"{prefix} Foreach yields {event.foreach_splits} child steps.", ts)
            self.echo(f"{prefix} Task finished successfully.", ts)
        elif isinstance(event, TaskFailed):
            prefix = f"[{_short(event.pathspec)}]"
            lines = failure_text(event, self.verbose).rstrip("\n").splitlines()
            if event.caught:
                if lines:
                    self.echo(
                        f"{prefix} @catch caught an exception from step {event.step_name}", ts
                    )
                for line in lines:
                    self.echo(f"{prefix} >  {line}", ts)
                self.echo(f"{prefix} Task failed; @catch handled it and the run goes on.", ts)
                return
            for line in lines:
                self.echo(f"{prefix} {line}", ts)
            self.echo(f"{prefix} Task failed.", ts)
        elif isinstance(event, RunStarted):
            self.echo(f"Workflow starting (run-id {event.run_id}):", ts)
        elif isinstance(event, RunFinished):
            self._finished(event)

    def _finished(self, event: RunFinished) -> None:
        ts = event.timestamp
        if event.successful:
            self.echo("Done!", ts)
            return
        self.echo("Workflow cancelled." if event.status == "cancelled" else "Workflow failed.", ts)
        self.echo(f"Terminating {len(event.interrupted)} active tasks...", ts)
        if event.failed_pathspec:
            _, _, step, task_id = event.failed_pathspec.split("/")
            self.echo_err("    Step failure:")
            self.echo_err(f"    Step {step} (task-id {task_id}) failed.")
            self.echo_err("")


@cache
def _event_types() -> tuple[Any, ...]:
    # Imported on the first event: `aioflow run --quiet` makes a Console (for its notices)
    # and no event, and importing their classes costs 5 ms.
    from .events import LogLine, RunFinished, RunStarted, TaskFailed, TaskFinished, TaskStarted

    return LogLine, TaskStarted, TaskFinished, TaskFailed, RunStarted, RunFinished


def failure_text(event: TaskFailed, verbose: bool) -> str:
    """What a console prints of a failure: the traceback, or with `verbose` the whole chain
    behind a one-line message."""
    return event.detail if verbose and event.detail else event.traceback


def failure_lines(pathspec: str, traceback: str) -> list[str]:
    """A failed task's traceback and the failure summary, as the line console prints them."""
    _, run_id, step, task_id = pathspec.split("/")
    prefix = f"[{run_id}/{step}/{task_id}]"
    lines = [f"{prefix} {line}" for line in traceback.rstrip("\n").splitlines()]
    return [*lines, f"{prefix} Task failed.", "    Step failure:",
            f"    Step {step} (task-id {task_id}) failed.", ""]  # fmt: skip


def _in_notebook() -> bool:
    # A Jupyter kernel has loaded IPython and made its shell a kernel shell; a terminal
    # IPython (which has no `kernel`) gets the terminal display instead.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def console_for(
    *,
    verbose: bool = False,
    graph: FlowGraph | None = None,
    resume_hint: str | None = None,
) -> RunConsole:
    """The console of a run printing to the real stdout: live on a terminal, updated in place
    in a notebook, lines elsewhere (see the module docstring)."""
    if _in_notebook():
        from .console_notebook import NotebookConsole

        return NotebookConsole(graph=graph, resume_hint=resume_hint)
    # A dumb terminal (Emacs' shell, some CI runners) cannot redraw lines in place.
    terminal = getattr(uncaptured(sys.stdout), "isatty", lambda: False)()
    if terminal and os.environ.get("TERM") != "dumb":
        from .console_live import LiveConsole

        return LiveConsole(verbose=verbose, graph=graph, resume_hint=resume_hint)
    return Console(verbose=verbose)
