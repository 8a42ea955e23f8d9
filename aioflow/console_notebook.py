"""The console of a run in a Jupyter notebook: one text output updated in place, no widgets.

The run's progress (the terminal display's lines, `progress.py`) is one `text/plain` output
created with `display(..., display_id=True)` and rewritten with `update(...)`, which every
notebook front end renders, widgets installed or not, and which a saved notebook keeps as its
last state: the summary. Lines the steps print and failures are printed as they come, below
it. Updates are throttled (4 a second) so a run of many tasks does not flood the kernel.

IPython is not a dependency of aioflow: `console.console_for` chooses this console only when a
kernel has loaded it, and it is looked up from there.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

from .events import Event, LogLine, RunFinished, RunStarted, TaskFailed
from .graph import FlowGraph
from .progress import RunProgress, step_line
from .streams import uncaptured

#: Seconds between two updates of the progress output.
UPDATE_INTERVAL = 0.25


def _ipython_display() -> Any:
    # Imported by name: only reached inside a kernel, where IPython is loaded already.
    return importlib.import_module("IPython.display").display


class NotebookConsole:
    """An event listener showing a run in a notebook cell (see the module docstring).

    `display` is IPython's `display` (tests pass a fake one).
    """

    summarizes = True

    def __init__(
        self,
        *,
        graph: FlowGraph | None = None,
        resume_hint: str | None = None,
        display: Any = None,
    ) -> None:
        self.progress = RunProgress(graph)
        self.resume_hint = resume_hint
        self._display = display
        self._handle: Any = None
        self._updated = 0.0

    def __call__(self, event: Event) -> None:
        self.progress(event)
        if isinstance(event, LogLine):
            self._print(f"[{event.pathspec.split('/', 1)[1]}] {event.line.rstrip()}")
        elif isinstance(event, TaskFailed) and not event.caught:
            prefix = f"[{event.pathspec.split('/', 1)[1]}]"
            for line in event.traceback.rstrip("\n").splitlines():
                self._print(f"{prefix} {line}")
            self._print(f"{prefix} Task failed.")
        if isinstance(event, RunStarted):
            display = self._display or _ipython_display()
            self._handle = display({"text/plain": self.text()}, raw=True, display_id=True)
            self._updated = time.monotonic()
        elif isinstance(event, RunFinished) or time.monotonic() - self._updated >= UPDATE_INTERVAL:
            self._update()

    def _print(self, line: str) -> None:
        out = uncaptured(sys.stdout)
        out.write(line + "\n")
        out.flush()

    def _update(self) -> None:
        if self._handle is not None:
            self._handle.update({"text/plain": self.text()}, raw=True)
        self._updated = time.monotonic()

    def text(self) -> str:
        """What the progress output shows now: the active steps, or the summary at the end."""
        progress = self.progress
        if progress.finished is not None:
            return "\n".join(progress.summary(self.resume_hint))
        now = time.time()
        lines = [progress.headline(now)]
        lines.extend(f"  {step_line(step, now)}" for step in progress.active_steps())
        return "\n".join(lines)

    def notice(self, text: str) -> None:
        """Print a line of the caller's own."""
        self._print(text)
