"""Console output of a run, Metaflow style, built only on the run's events.

    2026-11-22 17:37:38.986 Workflow starting (run-id 3):
    2026-11-22 17:37:38.990 [3/start/1] Task is starting.
    2026-11-22 17:37:38.991 [3/start/1] hello from start
    2026-11-22 17:37:38.992 [3/start/1] Task finished successfully.
    ...
    2026-11-22 17:37:39.011 Done!

Progress goes to stdout; the failure summary ("Step failure: ...") goes to stderr, as Metaflow's.

On a terminal, the console also keeps a one-line live status under those lines (the run, how
many tasks are running, done and failed, and the elapsed time), redrawn as events arrive and
erased before every line and when the run ends. Off a terminal (a pipe, a file, a notebook) it
prints only the lines above, exactly. The console is an ordinary event listener: whatever it
shows, a caller can build from `aioflow.events` too.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TextIO

from .events import Event, LogLine, RunFinished, RunStarted, TaskFailed, TaskFinished, TaskStarted
from .streams import uncaptured


def _short(pathspec: str) -> str:
    # "Flow/run/step/task" -> "run/step/task", as Metaflow prints it.
    return pathspec.split("/", 1)[1]


#: Erase the current terminal line: carriage return, then "erase in line".
CLEAR_LINE = "\r\x1b[2K"


class Console:
    """An event listener that prints a run's progress and its tasks' output.

    `progress`: show the live status line; None (the default) shows it when stdout is a
    terminal.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        err: TextIO | None = None,
        *,
        timestamps: bool = True,
        progress: bool | None = None,
    ) -> None:
        self._stream = stream
        self._err = err
        self.timestamps = timestamps
        self.progress = progress
        self._run: str | None = None
        self._started_at = 0.0
        self._running: set[str] = set()
        self._done = 0
        self._failed = 0
        self._status_shown = False
        self._stamp_second = -1
        self._stamp_text = ""

    def _out(self) -> TextIO:
        return uncaptured(self._stream or sys.stdout)

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
        self._clear_status()
        stream.write(text + "\n")
        stream.flush()

    # -- the live status line (terminals only) ----------------------------------------------

    def _progress_on(self) -> bool:
        if self.progress is None:
            out = self._out()
            self.progress = bool(getattr(out, "isatty", lambda: False)())
        return self.progress

    def status_line(self) -> str:
        """The status text: `MyFlow/12: 3 running, 10 done, 1 failed (2.4 s)`."""
        text = f"{self._run}: {len(self._running)} running, {self._done} done"
        if self._failed:
            text += f", {self._failed} failed"
        return f"{text} ({time.time() - self._started_at:.1f} s)"

    def _clear_status(self) -> None:
        if self._status_shown:
            out = self._out()
            out.write(CLEAR_LINE)
            out.flush()
            self._status_shown = False

    def _show_status(self) -> None:
        if self._run is None or not self._progress_on():
            return
        out = self._out()
        out.write(CLEAR_LINE + self.status_line())
        out.flush()
        self._status_shown = True

    def _count(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._run, self._started_at = event.pathspec, event.timestamp
            self._running.clear()
            self._done = self._failed = 0
        elif isinstance(event, TaskStarted):
            self._running.add(event.pathspec)
        elif isinstance(event, TaskFinished):
            self._running.discard(event.pathspec)
            self._done += 1
        elif isinstance(event, TaskFailed):
            self._running.discard(event.pathspec)
            if event.caught:
                self._done += 1
            elif not event.retrying:
                self._failed += 1
        elif isinstance(event, RunFinished):
            self._run = None

    def echo(self, text: str, timestamp: float | None = None) -> None:
        """Print one line to stdout (the real one, even while tasks' output is captured)."""
        self._write(uncaptured(self._stream or sys.stdout), text, timestamp)

    def echo_err(self, text: str) -> None:
        """Print one line to stderr."""
        self._write(uncaptured(self._err or sys.stderr), text, None)

    def __call__(self, event: Event) -> None:
        self._count(event)
        self._print(event)
        self._show_status()

    def _print(self, event: Event) -> None:
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
            lines = event.traceback.rstrip("\n").splitlines()
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
