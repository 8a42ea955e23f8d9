"""Typed events of a run: the one stream the console, `start_flow` callers and tests read.

Events are delivered on the event loop, in order, to every listener registered for the run.
Listeners must be quick (they run on the loop); a slow consumer should queue.
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
    def successful(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"


Listener = Callable[[Event], None]
