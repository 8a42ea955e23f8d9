"""Typed events of a run: the one stream the console, `start_flow` callers and tests read.

A run publishes, in this order:

    RunStarted                      once, first: flow, run id, user, origin run (resume)
      TaskStarted                   each task attempt (`attempt` counts retries from 0)
        LogLine                     each line the task prints, stdout or stderr, as printed
      TaskFinished                  the attempt succeeded (`duration`; foreach split count;
                                    `origin_pathspec` when resume cloned it)
      | TaskFailed                  the attempt raised (`exception_type`, `message`, `traceback`,
                                    `duration`; `retrying` or `caught` when the run goes on)
      | TaskRetrying                after a failed attempt that @retry runs again
    RunFinished                     once, last: "succeeded", "failed" or "cancelled", duration,
                                    the failed task and the tasks the end interrupted

Tasks run concurrently, so events of different tasks interleave; the events of one task come in
the order above, and every event of a run comes after its RunStarted and before its
RunFinished. Every event carries `timestamp` (seconds since the epoch, when it happened) and a
pathspec: `Flow/run_id` for the run events, `Flow/run_id/step/task_id` for the others.

How to listen: `run_flow(..., listeners=[callback])` (also `resume_flow` and `start_flow`) calls
each callback with each event, on the event loop, in order; a callback must be quick and must not
raise. `start_flow` hands the same events out as an async iterator, `handle.events()`
(`aioflow.handle` explains its buffering). The console (`aioflow.console`) is such a listener.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of run events; `timestamp` is seconds since the epoch."""

    timestamp: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run was created and is about to start its first task."""

    flow_name: str
    run_id: str
    username: str
    origin_run_id: str | None = None

    @property
    def pathspec(self) -> str:
        """`Flow/run_id`."""
        return f"{self.flow_name}/{self.run_id}"


@dataclass(frozen=True, slots=True)
class TaskStarted(Event):
    """A task attempt began."""

    pathspec: str
    step_name: str
    task_id: str
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class TaskFinished(Event):
    """A task attempt finished successfully (`origin_pathspec`: cloned by resume from there)."""

    pathspec: str
    step_name: str
    task_id: str
    duration: float
    attempt: int = 0
    foreach_splits: int | None = None
    origin_pathspec: str | None = None


@dataclass(frozen=True, slots=True)
class TaskFailed(Event):
    """A task attempt raised; `traceback` is the formatted traceback.

    `retrying` says another attempt follows; `caught` says @catch handled it and the run goes on.
    `detail` is the whole chain when `traceback` is a one-line message instead (an artifact that
    cannot be stored): consoles print it with `--verbose`, and the task's stderr log keeps it.
    """

    pathspec: str
    step_name: str
    task_id: str
    exception_type: str
    message: str
    traceback: str
    duration: float
    attempt: int = 0
    retrying: bool = False
    caught: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TaskRetrying(Event):
    """A failed task will run again as `attempt` (its @retry allows it)."""

    pathspec: str
    step_name: str
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class LogLine(Event):
    """One line a task printed; `stream` is "stdout" or "stderr"."""

    pathspec: str
    stream: str
    line: str


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    """The run ended; `status` is "succeeded", "failed" or "cancelled"."""

    flow_name: str
    run_id: str
    status: str
    duration: float
    failed_pathspec: str | None = None
    interrupted: tuple[str, ...] = ()

    @property
    def pathspec(self) -> str:
        """`Flow/run_id`."""
        return f"{self.flow_name}/{self.run_id}"

    @property
    def successful(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"


Listener = Callable[[Event], None]
"""A callback that receives a run's events (see the module docstring)."""

__all__ = [
    "Event",
    "Listener",
    "LogLine",
    "RunFinished",
    "RunStarted",
    "TaskFailed",
    "TaskFinished",
    "TaskRetrying",
    "TaskStarted",
]
