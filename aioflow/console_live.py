"""The console of a run on a terminal: a live display of the active steps, and a summary.

    [3/work/17] loss 0.25                                   lines the steps print, prefixed
    [3/work/18] Traceback (most recent call last): ...      failures in full
    MyFlow/3  1,234 tasks done, 16 running  2.4 s           the live area, redrawn in place
      work  ━━━━━━━━━━━━━━━╸━━━━━━  1,234/2,000  812 tasks/s  ETA 0.9 s

When the run ends the live area goes away and the summary stays (`RunProgress.summary`). Task
start and finish lines are printed only when `verbose`. This module imports rich, so it is
imported only when a terminal display is chosen (`console.console_for`), never by
`import aioflow`.

Cost: the listener only counts and queues lines; a thread of its own draws the live area 5
times a second, printing the queued lines in one write each time, so a run of 10,000 tasks pays
for 20,000 counter updates rather than 20,000 terminal writes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque

from rich.console import Console as RichConsole
from rich.console import Group, RenderableType
from rich.control import Control
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.segment import ControlType
from rich.table import Table
from rich.text import Text

from .console import failure_text
from .events import Event, LogLine, RunFinished, RunStarted, TaskFailed, TaskFinished, TaskStarted
from .graph import FlowGraph
from .progress import RunProgress, StepProgress, step_line
from .streams import uncaptured

#: At most this many step lines in the live area; the rest are counted in one line.
MAX_STEP_LINES = 8


def _short(pathspec: str) -> str:
    return pathspec.split("/", 1)[1]


class LiveConsole:
    """An event listener drawing a run on a terminal (see the module docstring).

    `console`: the rich console to draw on (the real stdout by default; tests pass a recording
    one). `graph` lets the display know a step's task count before its tasks start;
    `resume_hint` is the command the summary offers when the run did not succeed.
    """

    #: The summary says how the run ended and how to resume it: the caller need not.
    summarizes = True

    def __init__(
        self,
        console: RichConsole | None = None,
        *,
        verbose: bool = False,
        graph: FlowGraph | None = None,
        resume_hint: str | None = None,
        refresh_per_second: float = 5,
    ) -> None:
        self.console = console or RichConsole(file=uncaptured(sys.stdout), highlight=False)
        self.verbose = verbose
        self.resume_hint = resume_hint
        self.progress = RunProgress(graph)
        self._interval = 1 / refresh_per_second
        self._pending: deque[Text] = deque()
        self._live: Live | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._erase_echo = False
        self._drawer: threading.Thread | None = None

    # -- events (on the event loop: count and queue, nothing slower) ------------------------

    def __call__(self, event: Event) -> None:
        self.progress(event)
        if isinstance(event, (TaskStarted, TaskFinished)):
            if self.verbose:
                self._task_line(event)
        elif isinstance(event, LogLine):
            self._line(event.pathspec, event.line.rstrip())
        elif isinstance(event, TaskFailed):
            self._failed(event)
        elif isinstance(event, RunStarted):
            self._start()
        elif isinstance(event, RunFinished):
            self._finish()

    def _task_line(self, event: TaskStarted | TaskFinished) -> None:
        if isinstance(event, TaskStarted):
            retry = " (retry)" if event.attempt else ""
            self._line(event.pathspec, f"Task is starting{retry}.", "dim")
        else:
            origin = event.origin_pathspec
            text = "Task finished successfully."
            if origin is not None:
                text = f"Cloning results of a previously successful task {_short(origin)}"
            self._line(event.pathspec, text, "dim")

    def _line(self, pathspec: str, text: str, style: str = "") -> None:
        line = Text(f"[{_short(pathspec)}] ", style="dim")
        line.append(text, style=style)
        self._pending.append(line)

    def _failed(self, event: TaskFailed) -> None:
        lines = failure_text(event, self.verbose).rstrip("\n").splitlines()
        if event.caught:
            self._line(event.pathspec, f"@catch caught an exception from step {event.step_name}")
            for text in lines:
                self._line(event.pathspec, f">  {text}", "dim")
            return
        for text in lines:
            self._line(event.pathspec, text, "red")
        self._line(event.pathspec, "Task failed; retrying." if event.retrying else "Task failed.")

    def notice(self, text: str) -> None:
        """Print a line of the command's own (Ctrl-C's notice) above the live area, at once.

        The terminal has just echoed `^C` where the cursor was: that line is erased first, so
        nothing printed next is glued to it.
        """
        self._erase_echo = True
        self._pending.append(Text(text, style="yellow"))
        self._wake.set()
        if self._live is None:
            self._flush()

    # -- drawing (in the drawer thread while the run lasts) ---------------------------------

    def _start(self) -> None:
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,  # the run's capture owns the standard streams
            redirect_stderr=False,
        )
        self._live.start()
        self._drawer = threading.Thread(target=self._draw_until_stopped, daemon=True)
        self._drawer.start()

    def _draw_until_stopped(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        """Print the queued lines in one write (redrawing the live area below), or redraw."""
        if self._erase_echo:
            self._erase_echo = False
            self.console.control(
                Control((ControlType.CARRIAGE_RETURN,), (ControlType.ERASE_IN_LINE, 2))
            )
        lines: list[Text] = []
        while self._pending:
            lines.append(self._pending.popleft())
        if lines:
            self.console.print(Text("\n").join(lines), soft_wrap=True)
        elif self._live is not None:
            self._live.refresh()

    def _render(self) -> RenderableType:
        progress = self.progress
        if progress.pathspec is None:
            return Text("")
        now = time.time()
        grid = Table.grid(padding=(0, 1))
        steps = progress.active_steps()
        for step in steps[:MAX_STEP_LINES]:
            grid.add_row(*self._step_row(step, now))
        parts: list[RenderableType] = [Text(progress.headline(now), style="bold"), grid]
        if len(steps) > MAX_STEP_LINES:
            parts.append(Text(f"  ... and {len(steps) - MAX_STEP_LINES} more steps", "dim"))
        return Group(*parts)

    @staticmethod
    def _step_row(step: StepProgress, now: float) -> tuple[RenderableType, ...]:
        bar = ProgressBar(total=step.total or None, completed=step.done, width=24)
        name, _, rest = step_line(step, now).partition("  ")
        return Text(f"  {name}", style="cyan"), bar, Text(rest)

    def _finish(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._drawer is not None:
            self._drawer.join()
        self._flush()
        if self._live is not None:
            self._live.stop()  # transient: the live area goes, the printed lines stay
            self._live = None
        end = self.progress.finished
        style = "green" if end is not None and end.successful else "red"
        summary = self.progress.summary(self.resume_hint)
        if summary:
            self.console.print(Text(summary[0], style=f"bold {style}"))
            for line in summary[1:]:
                self.console.print(Text(line))
