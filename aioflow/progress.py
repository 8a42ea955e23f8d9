"""What a live display shows of a run, counted from its events: per-step progress and a summary.

`RunProgress` is an event listener that only counts (a few dictionary updates per event, so a
run of many tasks does not slow down); the terminal display (`console_live.py`) and the
notebook display (`console_notebook.py`) read it when they redraw. Given the flow's graph it
also knows how many tasks a step will have before they start: a foreach announces its splits
when its task finishes, a split starts one task per branch, a linear step one per parent task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .events import Event, RunFinished, RunStarted, TaskFailed, TaskFinished, TaskStarted
from .graph import FlowGraph


@dataclass(slots=True)
class StepProgress:
    """The tasks of one step so far."""

    name: str
    started: int = 0
    done: int = 0
    failed: int = 0
    #: Tasks announced by finished parents (0: not known yet).
    expected: int = 0
    running: int = 0
    first_start: float = 0.0
    last_end: float = 0.0

    @property
    def total(self) -> int:
        """How many tasks the step has, as far as is known."""
        return max(self.expected, self.started)

    @property
    def active(self) -> bool:
        """True while a task of the step runs or is still to come."""
        return self.running > 0 or self.done + self.failed < self.expected

    def rate(self, now: float) -> float | None:
        """Tasks done per second since the step's first task started."""
        elapsed = now - self.first_start
        return self.done / elapsed if self.done and elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds until the step's known tasks are done, at the current rate."""
        rate = self.rate(now)
        left = self.total - self.done - self.failed
        return left / rate if rate and left > 0 else None


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def step_line(step: StepProgress, now: float) -> str:
    """`work  1,234/2,000  1 failed  812 tasks/s  ETA 0.9 s`."""
    parts = [f"{step.name}  {step.done:,}/{step.total:,}"]
    if step.failed:
        parts.append(f"{step.failed:,} failed")
    if step.running:
        parts.append(f"{step.running:,} running")
    rate = step.rate(now)
    if rate is not None:
        parts.append(f"{rate:,.0f} tasks/s" if rate >= 10 else f"{rate:.1f} tasks/s")
    eta = step.eta(now)
    if eta is not None:
        parts.append(f"ETA {_seconds(eta)}")
    return "  ".join(parts)


class RunProgress:
    """Counts a run's tasks by step and status; call it with each event of the run."""

    def __init__(self, graph: FlowGraph | None = None) -> None:
        #: Per step, the steps its finished task announces tasks of, and how many each.
        self._follows = _follows(graph) if graph is not None else {}
        self.steps: dict[str, StepProgress] = {}
        self.pathspec: str | None = None
        self.started_at = 0.0
        self.finished: RunFinished | None = None
        self.succeeded = 0
        self.cloned = 0
        self.caught = 0
        self.failed = 0

    def _step(self, name: str) -> StepProgress:
        step = self.steps.get(name)
        if step is None:
            step = self.steps[name] = StepProgress(name)
        return step

    def _announce(self, name: str, splits: int | None) -> None:
        # A finished task tells which tasks follow it (see the module docstring).
        follows = self._follows.get(name)
        if follows is None:
            return
        children, foreach = follows
        for child in children:
            self._step(child).expected += (splits or 0) if foreach else 1

    def __call__(self, event: Event) -> None:
        # The two events of every task first: this runs 20,000 times in a 10,000-task run.
        if isinstance(event, TaskStarted):
            step = self._step(event.step_name)
            if not step.started:
                step.first_start = event.timestamp
            if not event.attempt:
                step.started += 1
            step.running += 1
        elif isinstance(event, TaskFinished):
            step = self._step(event.step_name)
            if event.origin_pathspec is None:
                step.running -= 1
            if not step.first_start:  # a task cloned by resume has no TaskStarted
                step.first_start = event.timestamp - event.duration
            if event.origin_pathspec is not None:
                self.cloned += 1
                step.started += 1
            else:
                self.succeeded += 1
            step.done += 1
            step.last_end = event.timestamp
            self._announce(event.step_name, event.foreach_splits)
        elif isinstance(event, TaskFailed):
            step = self._step(event.step_name)
            step.running -= 1
            step.last_end = event.timestamp
            if event.caught:
                self.caught += 1
                step.done += 1
                self._announce(event.step_name, None)
            elif not event.retrying:
                self.failed += 1
                step.failed += 1
        elif isinstance(event, RunStarted):
            self.pathspec, self.started_at = event.pathspec, event.timestamp
        elif isinstance(event, RunFinished):
            self.finished = event

    def active_steps(self) -> list[StepProgress]:
        """The steps with tasks running or still to come, in the order they started."""
        # Displays read from their own thread: list() copies the dict in one step.
        return [step for step in list(self.steps.values()) if step.active]

    def headline(self, now: float | None = None) -> str:
        """`MyFlow/12  1,234 tasks done, 16 running, 2.4 s`."""
        now = time.time() if now is None else now
        done = self.succeeded + self.cloned + self.caught
        running = sum(step.running for step in list(self.steps.values()))
        text = f"{self.pathspec}  {done:,} tasks done, {running:,} running"
        if self.failed:
            text += f", {self.failed:,} failed"
        return f"{text}  {_seconds(now - self.started_at)}"

    def summary(self, resume_hint: str | None = None) -> list[str]:
        """The lines closing a run: what ran, how it ended, and how to read or resume it.

        `resume_hint` is the command to resume with, a format string of `flow_name` and `run_id`.
        """
        end = self.finished
        if end is None:
            return []
        counts = [f"{self.succeeded:,} succeeded"]
        if self.cloned:
            counts.append(f"{self.cloned:,} cloned")
        if self.caught:
            counts.append(f"{self.caught:,} failed and caught")
        if self.failed:
            counts.append(f"{self.failed:,} failed")
        if end.interrupted:
            counts.append(f"{len(end.interrupted):,} cancelled")
        lines = [
            f"Run {end.pathspec} {end.status} in {_seconds(end.duration)}.",
            f"    Tasks: {', '.join(counts)}.",
        ]
        slowest = max(
            (s for s in self.steps.values() if s.last_end), default=None,
            key=lambda s: s.last_end - s.first_start,
        )  # fmt: skip
        if slowest is not None:
            took = _seconds(slowest.last_end - slowest.first_start)
            tasks = f"{slowest.total:,} task{'s' if slowest.total != 1 else ''}"
            lines.append(f"    Slowest step: {slowest.name}, {took} for {tasks}.")
        if end.failed_pathspec:
            _, _, step, task_id = end.failed_pathspec.split("/")
            lines.append(f"    Step failure: step {step} (task-id {task_id}) failed.")
        if end.failed_pathspec:
            lines.append(f"    Read its log: aioflow logs {end.failed_pathspec}")
        else:
            lines.append(f"    Read it: Run({end.pathspec!r}), or aioflow runs {end.flow_name}")
        if not end.successful and resume_hint:
            hint = resume_hint.format(flow_name=end.flow_name, run_id=end.run_id)
            lines.append(f"    Resume it: {hint}")
        return lines


def _follows(graph: FlowGraph) -> dict[str, tuple[list[str], bool]]:
    """Per step: the steps one finished task of it starts tasks of, and whether that count is
    its foreach's split count (else one each). Joins are left out: a join's count is not one
    per parent task."""
    follows: dict[str, tuple[list[str], bool]] = {}
    for node in graph:
        if node.type == "foreach":
            follows[node.name] = (node.out_funcs[:1], True)
        elif node.type == "split":
            follows[node.name] = (list(node.out_funcs), False)
        elif node.type in ("start", "linear", "join") and node.out_funcs:
            follower = graph[node.out_funcs[0]]
            if follower.type != "join":
                follows[node.name] = ([follower.name], False)
    return follows
