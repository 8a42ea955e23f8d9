"""What a run report shows, read from the store through the client into plain values.

`collect(run)` reads the run's graph, every step's tasks (one store query per step), the run's
parameters, a preview of each step's artifacts (from one task per step), the logs of the
failed tasks and the pathspecs of the tasks that stored cards. The result (`RunView`) is plain
data, so the page (`page.py`) and the live UI (`aioflow.ui`) render it without touching the
store again, and the UI can compare two reads cheaply (`RunView.fingerprint`).
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from typing import Any

from ..client import Run, Task
from ..client.cards import run_cards
from ..store.serde import unpack

#: Artifacts stored in more bytes than this are listed with their size, not loaded for a preview.
PREVIEW_LOAD_LIMIT = 1024 * 1024
#: Longest preview text of one artifact.
PREVIEW_CHARS = 200
#: The failed tasks whose logs a report carries (a run failing 10,000 tasks keeps a small page).
MAX_FAILED_LOGS = 20
#: Last characters of a failed task's log kept in the report.
LOG_TAIL_CHARS = 20_000

_FAILED = ("failed", "caught", "killed")
_repr = reprlib.Repr()
_repr.maxstring = PREVIEW_CHARS
_repr.maxother = PREVIEW_CHARS


@dataclass
class TaskView:
    """One task (its latest attempt): id, step, status, times (epoch seconds), retries."""

    task_id: int
    step: str
    status: str
    attempt: int
    started: float | None
    finished: float | None
    index: int | None


@dataclass
class ArtifactView:
    """One artifact of a step's sample task: name, stored size, type and a short repr."""

    name: str
    size: int
    type: str
    preview: str


@dataclass
class StepView:
    """One step of the flow's graph and what ran of it (no tasks: the run did not reach it)."""

    name: str
    type: str
    next: list[str]
    foreach: str | None
    condition: str | None
    tasks: list[TaskView] = field(default_factory=list)
    artifacts: list[ArtifactView] = field(default_factory=list)
    sample_task: str | None = None


@dataclass
class FailedLog:
    """The logs of one failed (or @catch-caught) task."""

    pathspec: str
    status: str
    exception: str | None
    stdout: str
    stderr: str


@dataclass
class RunView:
    """Everything a report shows of one run."""

    flow: str
    run_id: str
    status: str
    user: str | None
    tags: list[str]
    created: float | None
    finished: float | None
    steps: dict[str, StepView]
    parameters: dict[str, str]
    failed_logs: list[FailedLog]
    cards: dict[str, list[tuple[int, str]]]
    error: str | None

    @property
    def pathspec(self) -> str:
        """Flow/run_id."""
        return f"{self.flow}/{self.run_id}"

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever a task starts or ends or the run's status changes."""
        counts = tuple(
            (name, len(step.tasks), sum(t.status == "running" for t in step.tasks))
            for name, step in self.steps.items()
        )
        return (self.status, counts, sum(len(c) for c in self.cards.values()))


def _timestamp(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def _task_view(task: Task, step: str) -> TaskView:
    return TaskView(
        task_id=int(task.id),
        step=step,
        status=task.status,
        attempt=task.current_attempt,
        started=_timestamp(task.created_at),
        finished=_timestamp(task.finished_at),
        index=task.index,
    )


def _preview(task: Task) -> list[ArtifactView]:
    found = []
    for artifact in task:
        if artifact.id.startswith("_"):
            continue
        size = artifact.size
        if size > PREVIEW_LOAD_LIMIT:
            found.append(ArtifactView(artifact.id, size, "?", f"({size:,} bytes, not loaded)"))
            continue
        try:
            value = artifact.data
        except Exception as exc:  # a value that does not load is shown as such, not fatal
            found.append(ArtifactView(artifact.id, size, "?", f"(cannot load: {exc})"))
            continue
        found.append(ArtifactView(artifact.id, size, type(value).__name__, _repr.repr(value)))
    return sorted(found, key=lambda a: a.name)


def _parameters(run: Run) -> dict[str, str]:
    # The run's parameter manifest names them; their values are the start task's artifacts.
    packed = run._store.metadata.run_params(int(run.id))
    names = sorted(unpack(packed)) if packed else []
    if not names or "start" not in run:
        return {}
    start = run["start"].task
    return {name: _repr.repr(start[name].data) for name in names if name in start}


def _failed_log(task: Task) -> FailedLog:
    exception = task.exception
    return FailedLog(
        pathspec=task.pathspec,
        status=task.status,
        exception=None if exception is None else f"{exception.type}: {exception.exception}",
        stdout=task.stdout[-LOG_TAIL_CHARS:],
        stderr=task.stderr[-LOG_TAIL_CHARS:],
    )


def _graph(run: Run) -> dict[str, Any]:
    packed = run._store.metadata.run_graph(int(run.id))
    steps: dict[str, Any] = unpack(packed).get("steps", {}) if packed else {}
    return steps


def collect(run: Run, *, artifacts: bool = True) -> RunView:
    """Read what a report shows of `run` (`artifacts=False` skips the previews: the live UI
    reads them once the run has ended)."""
    graph = _graph(run)
    steps = {
        name: StepView(
            name=name,
            type=str(node.get("type") or "linear"),
            next=list(node.get("next") or ()),
            foreach=node.get("foreach"),
            condition=node.get("condition"),
        )
        for name, node in graph.items()
    }
    failed: list[FailedLog] = []
    for step in reversed(list(run)):  # the client lists the latest step first
        view = steps.setdefault(step.id, StepView(step.id, "linear", [], None, None))
        tasks = sorted(step, key=lambda t: int(t.id))
        view.tasks = [_task_view(task, step.id) for task in tasks]
        for task, info in zip(tasks, view.tasks, strict=True):
            if info.status in _FAILED and len(failed) < MAX_FAILED_LOGS:
                failed.append(_failed_log(task))
        done = [t for t in tasks if t.status in ("succeeded", "caught")]
        if done:
            view.sample_task = done[0].pathspec
            if artifacts:
                view.artifacts = _preview(done[0])
    cards: dict[str, list[tuple[int, str]]] = {}
    for pathspec, container in run_cards(run).items():
        cards[pathspec] = [(n, card.id or card.type) for n, card in enumerate(container)]
    exception = run.exception
    return RunView(
        flow=run.path_components[0],
        run_id=run.id,
        status=run.status,
        user=run.user,
        tags=sorted(run.tags),
        created=_timestamp(run.created_at),
        finished=_timestamp(run.finished_at),
        steps=steps,
        parameters=_parameters(run),
        failed_logs=failed,
        cards=cards,
        error=None if exception is None else f"{exception.type}: {exception.exception}",
    )
