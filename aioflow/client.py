"""The client API: read runs, steps, tasks and artifacts back from a store, as Metaflow's does.

`Flow("MyFlow").latest_run["end"].task.data.x`: each object is named by a pathspec
(`Flow/run_id/step/task_id[/artifact]`), reads only the store, and sees what any process stored,
including runs still in progress. Objects created from a parent share its store connection.
Objects outside the current namespace (see `namespaces.py`) raise MetaflowNamespaceMismatch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from .exceptions import (
    ExceptionWrapper,
    InvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
)
from .namespaces import get_namespace
from .store import Store
from .store.serde import unpack

_DEPTH = {"Flow": 1, "Run": 2, "Step": 3, "Task": 4, "DataArtifact": 5}
_FORM = ("FlowName", "RunID", "StepName", "TaskID", "ArtifactName")


def _parse(kind: str, pathspec: str) -> list[str]:
    if not isinstance(pathspec, str):
        raise InvalidPathspec(f"A {kind} pathspec is a string, not {type(pathspec).__name__}.")
    parts = pathspec.split("/")
    if len(parts) != _DEPTH[kind] or not all(parts):
        form = "/".join(_FORM[: _DEPTH[kind]])
        raise InvalidPathspec(f"Expects {kind}('{form}')")
    return parts


def _not_found(obj: str) -> MetaflowNotFound:
    """Metaflow's error for a missing object: `Run('F/9') does not exist`."""
    return MetaflowNotFound(f"{obj} does not exist")


def _not_in_namespace(ns: str) -> MetaflowNamespaceMismatch:
    """Metaflow's error for an object outside the current namespace."""
    return MetaflowNamespaceMismatch(f"Object not in namespace '{ns}'")


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def _process_gone(pid: int | None, host: str | None) -> bool:
    """True when the run's process is known to be dead (same host, pid not alive)."""
    if pid is None or host != os.uname().nodename:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class MetaflowObject:
    """Common base: a pathspec, its id, its store."""

    _kind = "object"

    def __init__(self, pathspec: str, store: Store | None) -> None:
        self.pathspec = pathspec
        self.id = pathspec.rsplit("/", 1)[-1]
        self._store = store if store is not None else Store(create=False)

    @property
    def path_components(self) -> list[str]:
        """The pathspec's parts: `['Flow', 'run_id', ...]`."""
        return self.pathspec.split("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))


class Flow(MetaflowObject):
    """All runs of one flow, newest first."""

    def __init__(self, name: str, *, _store: Store | None = None) -> None:
        _parse("Flow", name)
        super().__init__(name, _store)
        if self._store.db.latest_run_id(name) is None:
            raise _not_found(f"Flow('{name}')")
        ns = get_namespace()
        if ns is not None and next(self.runs(), None) is None:
            raise _not_in_namespace(ns)  # as Metaflow: no run of the flow carries the tag

    def runs(self, *tags: str) -> Iterator[Run]:
        """Runs visible in the current namespace carrying every tag given, newest first."""
        ns = get_namespace()
        for row in self._store.db.runs(self.id):
            run = Run._from_row(self, row)
            all_tags = run.tags
            if ns is not None and ns not in all_tags:
                continue
            if all(t in all_tags for t in tags):
                yield run

    def __iter__(self) -> Iterator[Run]:
        return self.runs()

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}", _store=self._store)

    def __contains__(self, run_id: str) -> bool:
        try:
            self[run_id]
        except (MetaflowNotFound, MetaflowNamespaceMismatch, InvalidPathspec):
            return False
        return True

    @property
    def latest_run(self) -> Run | None:
        """The newest run in the current namespace (running or not)."""
        return next(self.runs(), None)

    @property
    def latest_successful_run(self) -> Run | None:
        """The newest successful run in the current namespace."""
        return next((r for r in self.runs() if r.successful), None)


class Run(MetaflowObject):
    """One run of a flow."""

    def __init__(self, pathspec: str, *, _store: Store | None = None, _row: Any = None) -> None:
        flow, run_id = _parse("Run", pathspec)
        super().__init__(pathspec, _store)
        if _row is None:
            _row = self._store.db.run(flow, int(run_id)) if run_id.isdigit() else None
            if _row is None:
                raise _not_found(f"Run('{pathspec}')")
            ns = get_namespace()
            if ns is not None and ns not in self._tags_of(_row):
                raise _not_in_namespace(ns)
        self._row = _row

    @classmethod
    def _from_row(cls, flow: Flow, row: Any) -> Run:
        return cls(f"{flow.id}/{row['run_id']}", _store=flow._store, _row=row)

    @staticmethod
    def _tags_of(row: Any) -> frozenset[str]:
        user = unpack(row["tags"]) if row["tags"] else []
        system = unpack(row["system_tags"]) if row["system_tags"] else []
        return frozenset(user) | frozenset(system)

    def _refresh(self) -> Any:
        row = self._store.db.run(self.pathspec.split("/")[0], int(self.id))
        self._row = row
        return row

    @property
    def status(self) -> str:
        """running, succeeded, failed or cancelled (a run whose process died reads failed)."""
        row = self._row if self._row["status"] != "running" else self._refresh()
        if row["status"] == "running" and _process_gone(row["pid"], row["host"]):
            return "failed"
        return str(row["status"])

    @property
    def successful(self) -> bool:
        """True when the run's end task succeeded (Metaflow's definition)."""
        end = self.end_task
        return end is not None and end.successful

    @property
    def finished(self) -> bool:
        """True when the run's end task finished (Metaflow's definition: a failed run is not).

        `status` tells a failed or cancelled run from one still running.
        """
        end = self.end_task
        return end is not None and end.finished

    @property
    def created_at(self) -> datetime | None:
        """When the run started."""
        return _time(self._row["created_at"])

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended (None while it runs)."""
        return _time(self._refresh()["finished_at"])

    @property
    def tags(self) -> frozenset[str]:
        """User and system tags."""
        return self._tags_of(self._row)

    @property
    def user_tags(self) -> frozenset[str]:
        """Tags given with --tag."""
        return frozenset(unpack(self._row["tags"]) if self._row["tags"] else [])

    @property
    def system_tags(self) -> frozenset[str]:
        """Tags aioflow attached (user, runtime, versions)."""
        return frozenset(unpack(self._row["system_tags"]) if self._row["system_tags"] else [])

    @property
    def parent(self) -> Flow:
        """The flow."""
        return Flow(self.pathspec.split("/")[0], _store=self._store)

    def steps(self) -> Iterator[Step]:
        """Steps that ran, latest first (Metaflow's order)."""
        names = [name for name, _ in self._store.db.steps(int(self.id))]
        for name in reversed(names):
            yield Step(f"{self.pathspec}/{name}", _store=self._store, _run=self)

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def __getitem__(self, step: str) -> Step:
        return Step(f"{self.pathspec}/{step}", _store=self._store, _run=self)

    def __contains__(self, step: str) -> bool:
        return any(s.id == step for s in self.steps())

    @property
    def end_task(self) -> Task | None:
        """The end step's task, when the run reached it."""
        try:
            return self["end"].task
        except MetaflowNotFound:
            return None

    @property
    def data(self) -> MetaflowData | None:
        """Artifacts of the end task (None when the run did not reach end)."""
        task = self.end_task
        return None if task is None else task.data


class Step(MetaflowObject):
    """One step of a run: its tasks."""

    def __init__(self, pathspec: str, *, _store: Store | None = None, _run: Run | None = None):
        flow, run_id, step = _parse("Step", pathspec)
        run = _run if _run is not None else Run(f"{flow}/{run_id}", _store=_store)
        super().__init__(pathspec, run._store)
        self._run = run
        self._rows = _latest_attempts(self._store.db.task_attempts(int(run_id), step))
        if not self._rows:
            raise _not_found(f"Step('{pathspec}')")

    @property
    def parent(self) -> Run:
        """The run."""
        return self._run

    def tasks(self) -> Iterator[Task]:
        """Every task of this step, newest first."""
        for row in reversed(self._rows):
            yield Task._from_row(self, row)

    def __iter__(self) -> Iterator[Task]:
        return self.tasks()

    def __getitem__(self, task_id: str) -> Task:
        return Task(f"{self.pathspec}/{task_id}", _store=self._store)

    @property
    def task(self) -> Task:
        """The newest task of this step (the only one, outside a foreach), as Metaflow's."""
        return Task._from_row(self, self._rows[-1])

    @property
    def created_at(self) -> datetime | None:
        """When the step's first task started."""
        return _time(min(r[5] or 0 for r in self._rows))


def _latest_attempts(rows: list[Any]) -> list[Any]:
    """Rows ordered by task id, attempt: keep each task's latest finished attempt.

    While a retry runs, readers keep seeing the attempt before it; a task with no finished
    attempt yet is represented by its running one.
    """
    latest: dict[int, Any] = {}
    for row in rows:
        previous = latest.get(row[1])
        if previous is None or row[4] != "running" or previous[4] == "running":
            latest[row[1]] = row
    return list(latest.values())


class Task(MetaflowObject):
    """One task: its artifacts, status, logs."""

    def __init__(self, pathspec: str, *, _store: Store | None = None, _row: Any = None):
        flow, run_id, step, task_id = _parse("Task", pathspec)
        super().__init__(pathspec, _store)
        if _row is None:
            if not task_id.isdigit():
                raise _not_found(f"Task('{pathspec}')")
            Run(f"{flow}/{run_id}", _store=self._store)  # existence and namespace checks
            rows = self._store.db.task_attempts(int(run_id), step, int(task_id))
            if not rows:
                raise _not_found(f"Task('{pathspec}')")
            _row = _latest_attempts(rows)[0]
        self._row = _row
        self._manifest: dict[str, str] | None = None

    @classmethod
    def _from_row(cls, step: Step, row: Any) -> Task:
        return cls(f"{step.pathspec}/{row[1]}", _store=step._store, _row=row)

    @property
    def parent(self) -> Step:
        """The step."""
        return Step(self.pathspec.rsplit("/", 1)[0], _store=self._store)

    @property
    def manifest(self) -> dict[str, str]:
        """Artifact name -> blob key."""
        if self._manifest is None:
            self._manifest = unpack(self._row[9]) if self._row[9] else {}
        return self._manifest

    @property
    def data(self) -> MetaflowData:
        """Artifact values by attribute: `task.data.x`."""
        return MetaflowData(self)

    @property
    def artifacts(self) -> MetaflowArtifacts:
        """DataArtifact objects by attribute: `task.artifacts.x.data`; iterable."""
        return MetaflowArtifacts(self)

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self.artifacts)

    def __getitem__(self, name: str) -> DataArtifact:
        if name not in self.manifest:
            raise _not_found(f"DataArtifact('{self.pathspec}/{name}')")
        return DataArtifact(f"{self.pathspec}/{name}", _store=self._store, _task=self)

    def __contains__(self, name: str) -> bool:
        return name in self.manifest

    @property
    def successful(self) -> bool:
        """True when the task's latest attempt succeeded."""
        return bool(self._row[4] == "succeeded")

    @property
    def finished(self) -> bool:
        """True when the task's latest attempt completed; False while running or after failing.

        As Metaflow's (`_task_ok`): a failed or interrupted task is not finished.
        """
        return self._row[4] not in ("running", "failed")

    @property
    def created_at(self) -> datetime | None:
        """When the attempt started."""
        return _time(self._row[5])

    @property
    def finished_at(self) -> datetime | None:
        """When the attempt ended."""
        return _time(self._row[6])

    @property
    def index(self) -> int | None:
        """Index of this task in its innermost foreach (None outside a foreach)."""
        frames = unpack(self._row[7]) if self._row[7] else []
        foreach = [f for f in frames if f[4] is not None]
        return foreach[-1][2] if foreach else None

    @property
    def exception(self) -> ExceptionWrapper | None:
        """The failure of the latest attempt (None when it succeeded)."""
        if not self._row[12]:
            return None
        record = unpack(self._row[12])
        return ExceptionWrapper(record["type"], record["message"], record["traceback"])

    def _log(self, column: int) -> list[tuple[float, str]]:
        key = self._row[column]
        return [] if not key else [(ts, line) for ts, line in self._store.load(key)]

    @property
    def stdout(self) -> str:
        """What the task printed to stdout."""
        return "".join(line + "\n" for _, line in self._log(10))

    @property
    def stderr(self) -> str:
        """What the task printed to stderr (and its traceback when it failed)."""
        return "".join(line + "\n" for _, line in self._log(11))

    @property
    def loglines(self) -> list[tuple[datetime | None, str]]:
        """(timestamp, line) pairs of stdout."""
        return [(_time(ts), line) for ts, line in self._log(10)]


class MetaflowData:
    """Attribute access to a task's artifact values."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        key = self._task.manifest.get(name)
        if key is None:
            raise AttributeError(f"Task {self._task.pathspec} has no artifact '{name}'.")
        return self._task._store.load(key)

    def __contains__(self, name: str) -> bool:
        return name in self._task.manifest

    def __repr__(self) -> str:
        names = sorted(n for n in self._task.manifest if not n.startswith("_"))
        return f"<MetaflowData: {', '.join(names)}>"


class MetaflowArtifacts:
    """Attribute access to a task's DataArtifact objects; iterates the public ones."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getattr__(self, name: str) -> DataArtifact:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._task.manifest:
            raise AttributeError(f"Task {self._task.pathspec} has no artifact '{name}'.")
        return self._task[name]

    def __iter__(self) -> Iterator[DataArtifact]:
        for name in sorted(self._task.manifest):
            if not name.startswith("_"):
                yield self._task[name]

    def __contains__(self, name: str) -> bool:
        return name in self._task.manifest


class DataArtifact(MetaflowObject):
    """One artifact of one task: its value, content hash and stored size."""

    def __init__(self, pathspec: str, *, _store: Store | None = None, _task: Task | None = None):
        flow, run_id, step, task_id, name = _parse("DataArtifact", pathspec)
        task = _task or Task(f"{flow}/{run_id}/{step}/{task_id}", _store=_store)
        super().__init__(pathspec, task._store)
        if name not in task.manifest:
            raise _not_found(f"DataArtifact('{pathspec}')")
        self._task = task
        self.sha = task.manifest[name]

    @property
    def data(self) -> Any:
        """The artifact's value, decoded fresh."""
        return self._store.load(self.sha)

    @property
    def size(self) -> int:
        """Stored size in bytes."""
        return self._store.blob_size(self.sha)

    @property
    def parent(self) -> Task:
        """The task."""
        return self._task
