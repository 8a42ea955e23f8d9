"""One task attempt, `Task('Flow/run_id/step/task_id')`, and `tasks_at`, the tasks a pathspec names.

A Task reads one row of the `tasks` table, the latest finished attempt unless told which:
status, times, artifacts (`data`, `artifacts`, by name), logs, exception, and lineage (the
tasks it came from and those that came from it, `metadata_dict`). Attempts are numbered from
0 and checked as Metaflow checks them (`_check_attempt`). `tasks_at` backs `aioflow logs` and
`aioflow dump`: a step's tasks or one task, oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ExceptionWrapper, InvalidPathspec, MetaflowNotFound, WorkerDied
from ..store import Store, TaskRecord
from ..store.liveness import fatal_signal, fault_report
from ..store.serde import unpack
from .artifacts import DataArtifact, MetaflowArtifacts, MetaflowData
from .base import (
    MetaflowObject,
    StoreRoot,
    _id_number,
    _latest_attempts,
    _not_found,
    _parse,
    _time,
    _upper,
)

if TYPE_CHECKING:
    from .runs import Run, Step

#: Attempts are numbered 0 .. MAX_ATTEMPTS - 1 (Metaflow's bound).
MAX_ATTEMPTS = 6


def _check_attempt(attempt: object) -> int | None:
    """Metaflow's checks (and messages) for the `attempt` of a Task or DataArtifact."""
    if attempt is None:
        return None
    try:
        value = int(attempt)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise MetaflowNotFound("Attempt can only be an integer") from None
    if value < 0:
        raise MetaflowNotFound("Attempt can only be non-negative")
    if value >= MAX_ATTEMPTS:
        raise MetaflowNotFound(f"Attempt can only be smaller than {MAX_ATTEMPTS}")
    return value


class Task(MetaflowObject):
    """One task: its artifacts, status, logs, lineage; its latest attempt unless told which."""

    def __init__(
        self,
        pathspec: str,
        attempt: int | None = None,
        *,
        root: StoreRoot | None = None,
        _store: Store | None = None,
        _row: TaskRecord | None = None,
        _step: Step | None = None,
        _run: Run | None = None,
        _namespace_check: bool = True,
        _deferred: bool = False,
    ) -> None:
        _parse("Task", pathspec)
        self._attempt = _check_attempt(attempt)
        super().__init__(pathspec, _store, root)
        self._namespace_check = _namespace_check
        self._step = _step
        self._run = _run if _run is not None else (_step._run if _step is not None else None)
        # `_deferred` (for `current.task`): the row is read on first use, since the running
        # task's own row may not be stored yet when its step asks for it.
        self._loaded_row = _row if _row is not None or _deferred else self._find_row()
        self._manifest: dict[str, str] | None = None

    def _find_row(self) -> TaskRecord:
        if self._run is None:
            self._run = self._open_run()  # checks the namespace
        _, _, step, task_id = self.path_components
        number = _id_number(task_id)
        rows = (
            []
            if number is None
            else self._store.metadata.task_attempts(int(self._run.id), step, number)
        )
        if self._attempt is not None:
            rows = [r for r in rows if r.attempt == self._attempt]
        if not rows:
            raise _not_found(repr(self))
        return rows[-1] if self._attempt is not None else _latest_attempts(rows)[0]

    @property
    def _row(self) -> TaskRecord:
        if self._loaded_row is None:
            self._loaded_row = self._find_row()
        return self._loaded_row

    @classmethod
    def _from_row(cls, step: Step, row: TaskRecord) -> Task:
        return cls(f"{step.pathspec}/{row.task_id}", _store=step._store, _row=row, _step=step)

    def __repr__(self) -> str:
        if self._attempt is not None:
            return f"Task('{self.pathspec}', attempt={self._attempt})"
        return f"Task('{self.pathspec}')"

    def _open_run(self) -> Run:
        flow, run_id = self.path_components[:2]
        run: Run = _upper("Run")(
            f"{flow}/{run_id}", _store=self._store, _namespace_check=self._namespace_check
        )
        return run

    def _the_run(self) -> Run:
        if self._run is None:
            self._run = self._open_run()
        return self._run

    @property
    def parent(self) -> Step:
        """The step."""
        if self._step is None:
            self._step = _upper("Step")(self.pathspec.rsplit("/", 1)[0], _run=self._the_run())
        return self._step

    @property
    def current_attempt(self) -> int:
        """The attempt this object reads (the latest finished one unless one was asked for)."""
        return int(self._row.attempt)

    @property
    def status(self) -> str:
        """running, succeeded, failed, caught (failed, and @catch let the run go on), cancelled
        (the run stopped the task: Ctrl-C, or another task failed) or killed (it was running
        when the process running the run died: a segfault, a kill, `os._exit`)."""
        return "killed" if self._killed() else str(self._row.status)

    def _killed(self) -> bool:
        """True when the attempt reads running but the run's process is gone."""
        if self._row.status != "running":
            return False
        run = self._the_run()
        return self._store.metadata.process_gone(run._refresh())

    def _fault_report(self) -> str | None:
        """What `faulthandler` wrote when the process running this killed task's run died."""
        root = getattr(self._store, "root", None)
        return None if root is None else fault_report(Path(root), int(self.path_components[1]))

    @property
    def manifest(self) -> dict[str, str]:
        """Artifact name -> blob key."""
        if self._manifest is None:
            self._manifest = unpack(self._row.manifest) if self._row.manifest else {}
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

    def __contains__(self, name: object) -> bool:
        return name in self.manifest

    @property
    def successful(self) -> bool:
        """True when the attempt succeeded."""
        return bool(self._row.status == "succeeded")

    @property
    def finished(self) -> bool:
        """True when the attempt completed; False while running or after failing.

        As Metaflow's (`_task_ok`): a failed or interrupted (`cancelled`) task is not finished;
        one whose failure @catch handled is.
        """
        return self._row.status not in ("running", "failed", "cancelled")

    @property
    def created_at(self) -> datetime | None:
        """When the attempt started."""
        return _time(self._row.started_at)

    @property
    def finished_at(self) -> datetime | None:
        """When the attempt ended."""
        return _time(self._row.finished_at)

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags."""
        return self._the_run().user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        """The run's system tags."""
        return self._the_run().system_tags

    @property
    def origin_pathspec(self) -> str | None:
        """The task a resume cloned this one from, else None."""
        origin = self._row.origin
        return None if origin is None else str(origin)

    def _frames(self) -> list[Any]:
        return unpack(self._row.frames) if self._row.frames else []

    @property
    def index(self) -> int | None:
        """Index of this task in its innermost foreach (None outside a foreach)."""
        foreach = [f for f in self._frames() if f[4] is not None]
        return int(foreach[-1][2]) if foreach else None

    @property
    def exception(self) -> ExceptionWrapper | None:
        """The failure of the attempt: `.type` (module.Class), `.exception` (the message).

        None for a task whose failure @catch handled, as in Metaflow: the exception is then
        the value of the catch variable (`task.data.<var>`), not the task's.
        """
        if self._killed():
            report = self._fault_report()
            signal = None if report is None else fatal_signal(report)
            cause = f"a fatal error: {signal}" if signal else "no fatal error recorded"
            return ExceptionWrapper(
                f"{WorkerDied.__module__}.{WorkerDied.__qualname__}",
                f"The process running this task died ({cause}); the task was killed.",
                report,
            )
        if not self._row.exception or self._row.status == "caught":
            return None
        record = unpack(self._row.exception)
        return ExceptionWrapper(record["type"], record["message"], record["traceback"] or None)

    # -- logs -------------------------------------------------------------------------------

    def _log(self, stream: str) -> list[Any]:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"A log stream is 'stdout' or 'stderr', not {stream!r}.")
        key = self._row.stdout if stream == "stdout" else self._row.stderr
        # Plain data only: reading logs must never unpickle (a planted store could run code).
        return [] if not key else list(self._store.load_plain(key, pathspec=self.pathspec))

    @property
    def stdout(self) -> str:
        """What the attempt printed to stdout."""
        return "".join(line + "\n" for _, line in self._log("stdout"))

    @property
    def stderr(self) -> str:
        """What the attempt printed to stderr (and its traceback when it failed); for a killed
        task, the fatal error's traceback when the process wrote one."""
        text = "".join(line + "\n" for _, line in self._log("stderr"))
        if self._killed():
            text += self._fault_report() or ""
        return text

    def loglines(self, stream: str = "stdout") -> Iterator[tuple[datetime, str]]:
        """(UTC timestamp, line) pairs of a stream, in the order they were printed."""
        for ts, line in self._log(stream):
            yield datetime.fromtimestamp(ts, tz=timezone.utc), line

    # -- lineage ----------------------------------------------------------------------------

    @property
    def metadata_dict(self) -> dict[str, str]:
        """What the store knows about the attempt, as Metaflow's (name -> string value).

        attempt, attempt_ok, status, started-at / finished-at (ISO 8601, UTC), parents (task
        ids), foreach-indices and foreach-execution-path (`step:index,...`), split-path (every
        enclosing split, static ones too), origin-run-id and origin-task-id (in a resumed
        run; the task id only for clones), ds-type and ds-root (the store). As in Metaflow, a
        clone's metadata is its origin's apart from those two origin keys.
        """
        row = self._row
        status = self.status
        meta = {"attempt": str(row.attempt), "status": status}
        if status != "running":
            meta["attempt_ok"] = str(self.finished)
        if row.started_at:
            meta["started-at"] = datetime.fromtimestamp(row.started_at, timezone.utc).isoformat()
        if row.finished_at:
            meta["finished-at"] = datetime.fromtimestamp(row.finished_at, timezone.utc).isoformat()
        parents = self._parent_ids()
        if parents:
            meta["parents"] = ",".join(map(str, parents))
        frames = self._frames()
        foreach = [f for f in frames if f[4] is not None]
        if foreach:
            meta["foreach-indices"] = ",".join(str(f[2]) for f in foreach)
            meta["foreach-execution-path"] = ",".join(f"{f[3]}:{f[2]}" for f in foreach)
        if frames:
            meta["split-path"] = ",".join(f"{f[3]}:{f[2]}" for f in frames)
        origin_run = self._the_run()._row.origin_run_id
        if origin_run is not None:
            meta["origin-run-id"] = str(origin_run)
        if row.origin:
            meta["origin-task-id"] = str(row.origin).rsplit("/", 1)[-1]
        meta["ds-type"] = "aioflow"
        meta["ds-root"] = str(self._store.root)
        return meta

    def _parent_ids(self) -> list[int]:
        return list(unpack(self._row.parents)) if self._row.parents else []

    def _tasks_from_rows(self, rows: Iterable[TaskRecord]) -> list[Task]:
        run = self._the_run()
        return [
            Task(f"{run.pathspec}/{row.step}/{row.task_id}", _store=self._store, _row=row, _run=run)
            for row in _latest_attempts(rows)
        ]

    @property
    def parent_tasks(self) -> Iterator[Task]:
        """The tasks this one came from (a join's inputs; none for start)."""
        ids = self._parent_ids()
        if not ids:
            return iter(())
        rows = self._store.metadata.task_attempts_by_id(int(self.path_components[1]), ids)
        return iter(self._tasks_from_rows(rows))

    @property
    def child_tasks(self) -> Iterator[Task]:
        """The tasks that came from this one (the next step's, each foreach split, ...)."""
        run_id = int(self.path_components[1])
        graph = self._store.metadata.run_graph(run_id)
        steps = unpack(graph).get("steps", {}) if graph else {}
        successors = steps.get(self.path_components[2], {}).get("next")
        db = self._store.db
        if successors is None:
            candidates = db.task_attempts(run_id)
        else:
            candidates = [row for name in successors for row in db.task_attempts(run_id, name)]
        me = int(self.id)
        children = [row for row in candidates if row.parents and me in unpack(row.parents)]
        children.sort(key=lambda row: (row.task_id, row.attempt))
        return iter(self._tasks_from_rows(children))


def tasks_at(
    pathspec: str, attempt: int | None = None, *, store: Store | None = None
) -> list[Task]:
    """The tasks a `Flow/run/step` or `Flow/run/step/task` pathspec names, oldest first.

    With `attempt`, that attempt of each task (tasks of a step that never made it are left
    out; MetaflowNotFound when none did). Raises InvalidPathspec for any other shape.
    """
    parts = pathspec.split("/") if isinstance(pathspec, str) else []
    if len(parts) not in (3, 4) or not all(parts):
        raise InvalidPathspec(
            f"Expects a step or a task: 'FlowName/RunID/StepName' or "
            f"'FlowName/RunID/StepName/TaskID', not {pathspec!r}"
        )
    attempt = _check_attempt(attempt)
    if len(parts) == 4:
        return [Task(pathspec, attempt, _store=store)]
    step = _upper("Step")(pathspec, _store=store)
    tasks = sorted(step, key=lambda t: int(t.id))
    if attempt is None:
        return tasks
    chosen = []
    for task in tasks:
        try:
            chosen.append(Task(task.pathspec, attempt, _store=step._store, _run=step._run))
        except MetaflowNotFound:
            continue
    if not chosen:
        raise _not_found(f"Attempt {attempt} of any task of Step('{pathspec}')")
    return chosen
