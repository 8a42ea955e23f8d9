"""Console output of a run, Metaflow style, built only on the run's events.

    Workflow starting (run-id 3):
    [3/start/1] Task is starting.
    [3/start/1] hello from start
    [3/start/1] Task finished successfully.
    ...
    Done!
"""

from __future__ import annotations

import sys
from typing import TextIO

from .events import Event, LogLine, RunFinished, RunStarted, TaskFailed, TaskFinished, TaskStarted
from .runtime.logs import StreamProxy


def _short(pathspec: str) -> str:
    # "Flow/run/step/task" -> "run/step/task", as Metaflow prints it.
    return pathspec.split("/", 1)[1]


class Console:
    """An event listener that prints a run's progress and its tasks' output."""

    def __init__(self, stream: TextIO | None = None, *, show_tasks: bool = True) -> None:
        self._stream = stream
        self.show_tasks = show_tasks

    @property
    def stream(self) -> TextIO:
        """Where lines go: the given stream, else the real stdout at the time of writing."""
        stream = self._stream if self._stream is not None else sys.stdout
        return stream.original if isinstance(stream, StreamProxy) else stream

    def echo(self, text: str) -> None:
        """Print one line."""
        stream = self.stream
        stream.write(text + "\n")
        stream.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogLine):
            self.echo(f"[{_short(event.pathspec)}] {event.line}")
        elif isinstance(event, TaskStarted):
            if self.show_tasks:
                self.echo(f"[{_short(event.pathspec)}] Task is starting.")
        elif isinstance(event, TaskFinished):
            if self.show_tasks:
                self.echo(f"[{_short(event.pathspec)}] Task finished successfully.")
        elif isinstance(event, TaskFailed):
            prefix = f"[{_short(event.pathspec)}]"
            for line in event.traceback.rstrip("\n").splitlines():
                self.echo(f"{prefix} {line}")
            self.echo(f"{prefix} Task failed.")
        elif isinstance(event, RunStarted):
            self.echo(f"Workflow starting (run-id {event.run_id}):")
        elif isinstance(event, RunFinished):
            self._finished(event)

    def _finished(self, event: RunFinished) -> None:
        if event.successful:
            self.echo("Done!")
            return
        self.echo("Workflow cancelled." if event.status == "cancelled" else "Workflow failed.")
        if event.failed_pathspec:
            _, run_id, step, task_id = event.failed_pathspec.split("/")
            self.echo("Step failure:")
            self.echo(f"    Step {step} (task-id {task_id}) failed.")
