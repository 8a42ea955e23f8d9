"""The client API: read runs, steps, tasks and artifacts back from a store, as Metaflow's does.

`Flow("MyFlow").latest_run["end"].task.data.x`: each object is named by a pathspec
(`Flow/run_id/step/task_id[/artifact]`), reads only the store, and sees what any process stored,
including runs still in progress. Objects created from a parent share its store connection; the
store is `$AIOFLOW_ROOT` (or `./.aioflow`), opened once per process and folder.

Errors: a malformed pathspec raises InvalidPathspec (`Expects Run('FlowName/RunID')`), a missing
object MetaflowNotFound (`Run('F/9') does not exist`; a KeyError, so `obj[child]` raises
KeyError), an object outside the current namespace (see `namespaces.py`)
MetaflowNamespaceMismatch, and a store folder that does not exist StoreError naming it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .exceptions import (
    ExceptionWrapper,
    InvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
)
from .namespaces import get_namespace
from .store import Store, resolve_root
from .store.metadata import TaskRow, process_gone
from .store.serde import unpack
from .tags import mutate_user_tags

_DEPTH = {"Flow": 1, "Run": 2, "Step": 3, "Task": 4, "DataArtifact": 5}
_FORM = ("FlowName", "RunID", "StepName", "TaskID", "ArtifactName")
#: Attempts are numbered 0 .. MAX_ATTEMPTS - 1 (Metaflow's bound).
MAX_ATTEMPTS = 6
_PAGE = 100

# Task row fields (TASK_COLUMNS order).
_ID, _ATTEMPT, _STEP, _STATUS, _STARTED, _FINISHED, _FRAMES, _PARENTS = 1, 2, 3, 4, 5, 6, 7, 8
_MANIFEST, _STDOUT, _STDERR, _EXCEPTION, _ORIGIN = 9, 10, 11, 12, 13


# -- helpers ------------------------------------------------------------------------------------


def _parse(kind: str, pathspec: object) -> list[str]:
    if not isinstance(pathspec, str):
        raise InvalidPathspec(f"A {kind} pathspec is a string, not {type(pathspec).__name__}.")
    parts = pathspec.split("/")
    if len(parts) != _DEPTH[kind] or not all(parts):
        form = "/".join(_FORM[: _DEPTH[kind]])
        raise InvalidPathspec(f"Expects {kind}('{form}'), not {kind}({pathspec!r})")
    return parts


def _not_found(obj: str) -> MetaflowNotFound:
    """Metaflow's error for a missing object: `Run('F/9') does not exist`."""
    return MetaflowNotFound(f"{obj} does not exist")


def _not_in_namespace(ns: str, why: str) -> MetaflowNamespaceMismatch:
    """Metaflow's error for an object outside the current namespace, and what was looked at."""
    return MetaflowNamespaceMismatch(
        f"Object not in namespace '{ns}': {why}. Switch with namespace('...'), or see every "
        "run with namespace(None)."
    )


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


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


_stores: OrderedDict[tuple[int, Path], tuple[int, Store]] = OrderedDict()
_stores_lock = threading.Lock()


def shared_store(root: str | os.PathLike[str] | None = None) -> Store:
    """The store at `root` (default: $AIOFLOW_ROOT or ./.aioflow), opened once per process.

    Raises StoreError naming the folder when there is no store there. A store folder deleted
    and made again is noticed (its database file is a new one) and reopened.
    """
    path = resolve_root(root)
    key = (os.getpid(), path)
    try:
        inode = os.stat(path / "metadata.db").st_ino
    except OSError:
        inode = -1
    with _stores_lock:
        cached = _stores.get(key)
        if cached is not None and cached[0] == inode:
            _stores.move_to_end(key)
            return cached[1]
    store = Store(path, create=False)  # raises StoreError when there is no store
    with _stores_lock:
        _stores[key] = (inode, store)
        while len(_stores) > 8:  # dropped stores close when no object uses them any more
            _stores.popitem(last=False)
    return store


def _latest_attempts(rows: Iterable[TaskRow]) -> list[TaskRow]:
    """Rows ordered by task id, attempt: keep each task's latest finished attempt.

    While a retry runs, readers keep seeing the attempt before it; a task with no finished
    attempt yet is represented by its running one.
    """
    latest: dict[int, TaskRow] = {}
    for row in rows:
        previous = latest.get(row[_ID])
        if previous is None or row[_STATUS] != "running" or previous[_STATUS] == "running":
            latest[row[_ID]] = row
    return list(latest.values())


# -- the objects --------------------------------------------------------------------------------


class MetaflowObject:
    """What every client object has: a pathspec, an id, a parent, times, tags, an origin."""

    def __init__(self, pathspec: str, store: Store | None) -> None:
        self.pathspec = pathspec
        self.id = pathspec.rsplit("/", 1)[-1]
        self._store = store if store is not None else shared_store()

    @property
    def path_components(self) -> list[str]:
        """The pathspec's parts: `['Flow', 'run_id', ...]`."""
        return self.pathspec.split("/")

    @property
    def parent(self) -> MetaflowObject | None:
        """The object one level up (None for a Flow)."""
        return None

    @property
    def created_at(self) -> datetime | None:
        """When the object came to be (a run or task started, an artifact was stored)."""
        return None

    @property
    def finished_at(self) -> datetime | None:
        """When the object was complete (None while it is not)."""
        return None

    @property
    def tags(self) -> frozenset[str]:
        """User and system tags of the run this object belongs to."""
        return self.user_tags | self.system_tags

    @property
    def user_tags(self) -> frozenset[str]:
        """Tags given with --tag or added since, of the run this object belongs to."""
        return frozenset()

    @property
    def system_tags(self) -> frozenset[str]:
        """Tags aioflow attached to the run this object belongs to."""
        return frozenset()

    @property
    def origin_pathspec(self) -> str | None:
        """The pathspec of the object this one was cloned from by a resume, else None."""
        return None

    def is_in_namespace(self) -> bool:
        """True when the current namespace sees this object."""
        ns = get_namespace()
        return ns is None or ns in self.tags

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and repr(other) == repr(self)

    def __hash__(self) -> int:
        return hash(repr(self))


class Metaflow:
    """Every flow of the store: `Metaflow().flows`, `Metaflow()['MyFlow']`."""

    def __init__(self, *, _store: Store | None = None) -> None:
        self._store = _store if _store is not None else shared_store()

    @property
    def flows(self) -> list[Flow]:
        """Every flow with at least one run in the current namespace, by name."""
        return list(self)

    def __iter__(self) -> Iterator[Flow]:
        ns = get_namespace()
        for name in self._store.db.flows():
            flow = Flow(name, _store=self._store, _checked=True)
            if ns is None or flow.latest_run is not None:
                yield flow

    def __getitem__(self, name: str) -> Flow:
        return Flow(name, _store=self._store)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (MetaflowNotFound, MetaflowNamespaceMismatch, InvalidPathspec):
            return False
        return True

    def __repr__(self) -> str:
        return "Metaflow()"


class Flow(MetaflowObject):
    """All runs of one flow, newest first."""

    def __init__(self, pathspec: str, *, _store: Store | None = None, _checked: bool = False):
        _parse("Flow", pathspec)
        super().__init__(pathspec, _store)
        if _checked:
            return
        if self._store.db.latest_run_id(pathspec) is None:
            raise _not_found(f"Flow('{pathspec}')")
        ns = get_namespace()
        if ns is not None and self.latest_run is None:
            # as Metaflow: a flow is in a namespace when one of its runs carries the tag
            raise _not_in_namespace(ns, f"no run of Flow('{pathspec}') carries the tag {ns!r}")

    def runs(self, *tags: str) -> Iterator[Run]:
        """Runs visible in the current namespace carrying every tag given, newest first."""
        ns = get_namespace()
        wanted = set(tags) | ({ns} if ns is not None else set())
        before: int | None = None
        while True:
            page = self._store.db.run_page(self.id, before=before, limit=_PAGE)
            for row in page:
                run = Run._from_row(self, row)
                if wanted <= run.tags:
                    yield run
            if len(page) < _PAGE:
                return
            before = page[-1]["run_id"]

    def __iter__(self) -> Iterator[Run]:
        return self.runs()

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}", _store=self._store, _flow=self)

    def __contains__(self, run_id: object) -> bool:
        try:
            self[run_id]  # type: ignore[index]
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

    @property
    def created_at(self) -> datetime | None:
        """When the flow's first stored run started."""
        row = (
            self._store.db.connection()
            .execute("SELECT min(created_at) FROM runs WHERE flow = ?", (self.id,))
            .fetchone()
        )
        return _time(row[0] if row else None)

    def is_in_namespace(self) -> bool:
        """True when at least one run of the flow is in the current namespace."""
        return get_namespace() is None or self.latest_run is not None


class Run(MetaflowObject):
    """One run of a flow: its steps, its end task's data, its tags."""

    def __init__(
        self,
        pathspec: str,
        *,
        _store: Store | None = None,
        _row: Any = None,
        _flow: Flow | None = None,
    ) -> None:
        flow, run_id = _parse("Run", pathspec)
        super().__init__(pathspec, _store)
        self._flow = _flow
        if _row is None:
            _row = self._store.db.run_summary(flow, int(run_id)) if run_id.isdigit() else None
            if _row is None:
                raise _not_found(f"Run('{pathspec}')")
            ns = get_namespace()
            if ns is not None and ns not in self._tags_of(_row):
                raise _not_in_namespace(ns, f"Run('{pathspec}') does not carry the tag {ns!r}")
        self._row = _row
        self._end: Step | None = None

    @classmethod
    def _from_row(cls, flow: Flow, row: Any) -> Run:
        return cls(f"{flow.id}/{row['run_id']}", _store=flow._store, _row=row, _flow=flow)

    @staticmethod
    def _tags_of(row: Any) -> frozenset[str]:
        user = unpack(row["tags"]) if row["tags"] else []
        system = unpack(row["system_tags"]) if row["system_tags"] else []
        return frozenset(user) | frozenset(system)

    def _refresh(self) -> Any:
        row = self._store.db.run_summary(self.path_components[0], int(self.id))
        if row is not None:
            self._row = row
        return self._row

    @property
    def status(self) -> str:
        """running, succeeded, failed or cancelled (a run whose process died reads failed)."""
        row = self._row if self._row["status"] != "running" else self._refresh()
        if row["status"] == "running" and process_gone(row["pid"], row["host"]):
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
        """When the run ended, however it ended (None while it runs)."""
        row = self._row if self._row["finished_at"] is not None else self._refresh()
        return _time(row["finished_at"])

    @property
    def user(self) -> str | None:
        """Who started the run."""
        user = self._row["user"]
        return None if user is None else str(user)

    @property
    def user_tags(self) -> frozenset[str]:
        """Tags given with --tag or added since."""
        return frozenset(unpack(self._row["tags"]) if self._row["tags"] else [])

    @property
    def system_tags(self) -> frozenset[str]:
        """Tags aioflow attached (user, runtime, versions); they cannot be removed."""
        return frozenset(unpack(self._row["system_tags"]) if self._row["system_tags"] else [])

    @property
    def origin_pathspec(self) -> str | None:
        """`Flow/run_id` of the run this one resumed, else None."""
        origin = self._row["origin_run_id"]
        return None if origin is None else f"{self.path_components[0]}/{origin}"

    @property
    def parent(self) -> Flow:
        """The flow."""
        if self._flow is None:
            self._flow = Flow(self.path_components[0], _store=self._store, _checked=True)
        return self._flow

    def steps(self, *tags: str) -> Iterator[Step]:
        """Steps that ran, latest first (Metaflow's order)."""
        if not set(tags) <= self.tags:
            return
        names = [name for name, _ in self._store.db.steps(int(self.id))]
        for name in reversed(names):
            yield Step(f"{self.pathspec}/{name}", _store=self._store, _run=self)

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def __getitem__(self, step: str) -> Step:
        return Step(f"{self.pathspec}/{step}", _store=self._store, _run=self)

    def __contains__(self, step: object) -> bool:
        return any(name == step for name, _ in self._store.db.steps(int(self.id)))

    @property
    def end_task(self) -> Task | None:
        """The end step's task, when the run reached it."""
        if self._end is None or self._end.task.status == "running":
            try:  # read again: the end task may have started or finished since
                self._end = self["end"]
            except MetaflowNotFound:
                return None
        return self._end.task

    @property
    def data(self) -> MetaflowData | None:
        """Artifacts of the end task (None when the run did not reach end)."""
        task = self.end_task
        return None if task is None else task.data

    @property
    def exception(self) -> ExceptionWrapper | None:
        """Why the run failed, when it did: the failed task's exception, or the run's error."""
        row = self._refresh()
        if not row["error"]:
            return None
        record = unpack(row["error"])
        return ExceptionWrapper(record["type"], record["message"], record["traceback"] or None)

    # -- tags ------------------------------------------------------------------------------

    def add_tag(self, tag: str) -> None:
        """Add a user tag (a tag that is already a system tag is not added, silently)."""
        self.replace_tags([], [tag])

    def add_tags(self, tags: Iterable[str]) -> None:
        """Add user tags."""
        self.replace_tags([], tags)

    def remove_tag(self, tag: str) -> None:
        """Remove a user tag; removing a system tag is a TaggingError, a missing tag a no-op."""
        self.replace_tags([tag], [])

    def remove_tags(self, tags: Iterable[str]) -> None:
        """Remove user tags."""
        self.replace_tags(tags, [])

    def replace_tag(self, tag_to_remove: str, tag_to_add: str) -> None:
        """Remove one tag and add another, atomically (removal first)."""
        self.replace_tags([tag_to_remove], [tag_to_add])

    def replace_tags(self, tags_to_remove: Iterable[str], tags_to_add: Iterable[str]) -> None:
        """Remove then add user tags in one transaction; see `aioflow.tags` for the rules."""
        mutate_user_tags(
            self._store, self.path_components[0], int(self.id), tags_to_remove, tags_to_add
        )
        self._refresh()


class Step(MetaflowObject):
    """One step of a run: its tasks, newest first."""

    def __init__(
        self,
        pathspec: str,
        *,
        _store: Store | None = None,
        _run: Run | None = None,
    ) -> None:
        flow, run_id, _ = _parse("Step", pathspec)
        run = _run if _run is not None else Run(f"{flow}/{run_id}", _store=_store)
        super().__init__(pathspec, run._store)
        self._run = run
        self._rows: list[TaskRow] = []
        self._reload()
        if not self._rows:
            raise _not_found(f"Step('{pathspec}')")

    def _reload(self) -> None:
        rows = self._store.db.task_attempts(int(self._run.id), self.id)
        self._rows = _latest_attempts(rows)

    @property
    def parent(self) -> Run:
        """The run."""
        return self._run

    def tasks(self, *tags: str) -> Iterator[Task]:
        """Every task of this step, newest first."""
        if not set(tags) <= self._run.tags:
            return
        for row in reversed(self._rows):
            yield Task._from_row(self, row)

    def __iter__(self) -> Iterator[Task]:
        return self.tasks()

    def __getitem__(self, task_id: str) -> Task:
        for row in self._rows:
            if str(row[_ID]) == str(task_id):
                return Task._from_row(self, row)
        raise _not_found(f"Task('{self.pathspec}/{task_id}')")

    def __contains__(self, task_id: object) -> bool:
        return any(str(row[_ID]) == str(task_id) for row in self._rows)

    @property
    def task(self) -> Task:
        """The newest task of this step (the only one, outside a foreach), as Metaflow's."""
        return Task._from_row(self, self._rows[-1])

    @property
    def created_at(self) -> datetime | None:
        """When the step's first task started."""
        return _time(min(r[_STARTED] or 0 for r in self._rows))

    @property
    def finished_at(self) -> datetime | None:
        """When the step's last task ended, once none is running."""
        if any(r[_STATUS] == "running" for r in self._rows):
            return None
        return _time(max(r[_FINISHED] or 0 for r in self._rows))

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags."""
        return self._run.user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        """The run's system tags."""
        return self._run.system_tags

    @property
    def origin_pathspec(self) -> str | None:
        """This step in the run a resumed run came from, else None."""
        origin = self._run.origin_pathspec
        return None if origin is None else f"{origin}/{self.id}"


class Task(MetaflowObject):
    """One task: its artifacts, status, logs, lineage; its latest attempt unless told which."""

    def __init__(
        self,
        pathspec: str,
        attempt: int | None = None,
        *,
        _store: Store | None = None,
        _row: Any = None,
        _step: Step | None = None,
        _run: Run | None = None,
    ) -> None:
        flow, run_id, step, task_id = _parse("Task", pathspec)
        self._attempt = _check_attempt(attempt)
        super().__init__(pathspec, _store)
        self._step = _step
        self._run = _run if _run is not None else (_step._run if _step is not None else None)
        if _row is None:
            if self._run is None:
                self._run = Run(f"{flow}/{run_id}", _store=self._store)  # namespace check
            rows = (
                self._store.db.task_attempts(int(run_id), step, int(task_id))
                if task_id.isdigit()
                else []
            )
            if self._attempt is not None:
                rows = [r for r in rows if r[_ATTEMPT] == self._attempt]
            if not rows:
                raise _not_found(repr(self))
            _row = rows[-1] if self._attempt is not None else _latest_attempts(rows)[0]
        self._row: TaskRow = _row
        self._manifest: dict[str, str] | None = None

    @classmethod
    def _from_row(cls, step: Step, row: TaskRow) -> Task:
        return cls(f"{step.pathspec}/{row[_ID]}", _store=step._store, _row=row, _step=step)

    def __repr__(self) -> str:
        if self._attempt is not None:
            return f"Task('{self.pathspec}', attempt={self._attempt})"
        return f"Task('{self.pathspec}')"

    def _the_run(self) -> Run:
        if self._run is None:
            flow, run_id = self.path_components[:2]
            self._run = Run(f"{flow}/{run_id}", _store=self._store)
        return self._run

    @property
    def parent(self) -> Step:
        """The step."""
        if self._step is None:
            self._step = Step(self.pathspec.rsplit("/", 1)[0], _run=self._the_run())
        return self._step

    @property
    def current_attempt(self) -> int:
        """The attempt this object reads (the latest finished one unless one was asked for)."""
        return int(self._row[_ATTEMPT])

    @property
    def status(self) -> str:
        """running, succeeded, failed or caught (failed, and @catch let the run go on)."""
        return str(self._row[_STATUS])

    @property
    def manifest(self) -> dict[str, str]:
        """Artifact name -> blob key."""
        if self._manifest is None:
            self._manifest = unpack(self._row[_MANIFEST]) if self._row[_MANIFEST] else {}
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
        return bool(self._row[_STATUS] == "succeeded")

    @property
    def finished(self) -> bool:
        """True when the attempt completed; False while running or after failing.

        As Metaflow's (`_task_ok`): a failed or interrupted task is not finished; one whose
        failure @catch handled is.
        """
        return self._row[_STATUS] not in ("running", "failed")

    @property
    def created_at(self) -> datetime | None:
        """When the attempt started."""
        return _time(self._row[_STARTED])

    @property
    def finished_at(self) -> datetime | None:
        """When the attempt ended."""
        return _time(self._row[_FINISHED])

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
        origin = self._row[_ORIGIN]
        return None if origin is None else str(origin)

    def _frames(self) -> list[Any]:
        return unpack(self._row[_FRAMES]) if self._row[_FRAMES] else []

    @property
    def index(self) -> int | None:
        """Index of this task in its innermost foreach (None outside a foreach)."""
        foreach = [f for f in self._frames() if f[4] is not None]
        return int(foreach[-1][2]) if foreach else None

    @property
    def exception(self) -> ExceptionWrapper | None:
        """The failure of the attempt: `.type` (module.Class), `.exception` (the message)."""
        if not self._row[_EXCEPTION]:
            return None
        record = unpack(self._row[_EXCEPTION])
        return ExceptionWrapper(record["type"], record["message"], record["traceback"] or None)

    # -- logs -------------------------------------------------------------------------------

    def _log(self, stream: str) -> list[Any]:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"A log stream is 'stdout' or 'stderr', not {stream!r}.")
        key = self._row[_STDOUT if stream == "stdout" else _STDERR]
        return [] if not key else list(self._store.load(key))

    @property
    def stdout(self) -> str:
        """What the attempt printed to stdout."""
        return "".join(line + "\n" for _, line in self._log("stdout"))

    @property
    def stderr(self) -> str:
        """What the attempt printed to stderr (and its traceback when it failed)."""
        return "".join(line + "\n" for _, line in self._log("stderr"))

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
        run; the task id only for clones), ds-type and ds-root (the store).
        """
        row = self._row
        meta = {"attempt": str(row[_ATTEMPT]), "status": str(row[_STATUS])}
        if row[_STATUS] != "running":
            meta["attempt_ok"] = str(self.finished)
        if row[_STARTED]:
            meta["started-at"] = datetime.fromtimestamp(row[_STARTED], timezone.utc).isoformat()
        if row[_FINISHED]:
            meta["finished-at"] = datetime.fromtimestamp(row[_FINISHED], timezone.utc).isoformat()
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
        origin_run = self._the_run()._row["origin_run_id"]
        if origin_run is not None:
            meta["origin-run-id"] = str(origin_run)
        if row[_ORIGIN]:
            meta["origin-task-id"] = str(row[_ORIGIN]).rsplit("/", 1)[-1]
            meta["origin-pathspec"] = str(row[_ORIGIN])
        meta["ds-type"] = "aioflow"
        meta["ds-root"] = str(self._store.root)
        return meta

    def _parent_ids(self) -> list[int]:
        return list(unpack(self._row[_PARENTS])) if self._row[_PARENTS] else []

    def _tasks_from_rows(self, rows: Iterable[TaskRow]) -> list[Task]:
        run = self._the_run()
        return [
            Task(f"{run.pathspec}/{row[_STEP]}/{row[_ID]}", _store=self._store, _row=row, _run=run)
            for row in _latest_attempts(rows)
        ]

    @property
    def parent_tasks(self) -> Iterator[Task]:
        """The tasks this one came from (a join's inputs; none for start)."""
        ids = self._parent_ids()
        if not ids:
            return iter(())
        rows = self._store.db.task_attempts_by_id(int(self.path_components[1]), ids)
        return iter(self._tasks_from_rows(rows))

    @property
    def child_tasks(self) -> Iterator[Task]:
        """The tasks that came from this one (the next step's, each foreach split, ...)."""
        run_id = int(self.path_components[1])
        graph = self._store.db.run_graph(run_id)
        steps = unpack(graph).get("steps", {}) if graph else {}
        successors = steps.get(self.path_components[2], {}).get("next")
        db = self._store.db
        if successors is None:
            candidates = db.task_attempts(run_id)
        else:
            candidates = [row for name in successors for row in db.task_attempts(run_id, name)]
        me = int(self.id)
        children = [row for row in candidates if row[_PARENTS] and me in unpack(row[_PARENTS])]
        children.sort(key=lambda row: (row[_ID], row[_ATTEMPT]))
        return iter(self._tasks_from_rows(children))


class MetaflowData:
    """Attribute access to a task's artifact values; `_private` ones are reachable by name."""

    __slots__ = ("__task",)

    def __init__(self, task: Task) -> None:
        self.__task = task

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_MetaflowData__task":
            raise AttributeError(name)
        task = self.__task
        key = task.manifest.get(name)
        if key is None:
            raise AttributeError(f"Task {task.pathspec} has no artifact '{name}'.")
        return task._store.load(key)

    def __contains__(self, name: object) -> bool:
        return name in self.__task.manifest

    def __repr__(self) -> str:
        names = sorted(n for n in self.__task.manifest if not n.startswith("_"))
        return f"<MetaflowData: {', '.join(names)}>"


class MetaflowArtifacts:
    """Attribute access to a task's DataArtifact objects; iterates the public ones by name."""

    __slots__ = ("__task",)

    def __init__(self, task: Task) -> None:
        self.__task = task

    def __getattr__(self, name: str) -> DataArtifact:
        if name.startswith("__") or name == "_MetaflowArtifacts__task":
            raise AttributeError(name)
        task = self.__task
        if name not in task.manifest:
            raise AttributeError(f"Task {task.pathspec} has no artifact '{name}'.")
        return task[name]

    def __iter__(self) -> Iterator[DataArtifact]:
        task = self.__task
        for name in sorted(task.manifest):
            if not name.startswith("_"):
                yield task[name]

    def __contains__(self, name: object) -> bool:
        return name in self.__task.manifest

    def __len__(self) -> int:
        return sum(1 for name in self.__task.manifest if not name.startswith("_"))


class DataArtifact(MetaflowObject):
    """One artifact of one task: its value, content hash (`sha`) and stored size."""

    def __init__(
        self,
        pathspec: str,
        attempt: int | None = None,
        *,
        _store: Store | None = None,
        _task: Task | None = None,
    ) -> None:
        flow, run_id, step, task_id, name = _parse("DataArtifact", pathspec)
        if _task is None:
            _task = Task(f"{flow}/{run_id}/{step}/{task_id}", attempt, _store=_store)
        super().__init__(pathspec, _task._store)
        if name not in _task.manifest:
            raise _not_found(f"DataArtifact('{pathspec}')")
        self._task = _task
        self.sha = _task.manifest[name]

    def __repr__(self) -> str:
        attempt = self._task._attempt
        if attempt is not None:
            return f"DataArtifact('{self.pathspec}', attempt={attempt})"
        return f"DataArtifact('{self.pathspec}')"

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

    @property
    def created_at(self) -> datetime | None:
        """When the task that holds the artifact ended (when it was stored)."""
        return self._task.finished_at

    @property
    def finished_at(self) -> datetime | None:
        """Same as `created_at`."""
        return self._task.finished_at

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags."""
        return self._task.user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        """The run's system tags."""
        return self._task.system_tags

    @property
    def origin_pathspec(self) -> str | None:
        """This artifact in the task its task was cloned from, else None."""
        origin = self._task.origin_pathspec
        return None if origin is None else f"{origin}/{self.id}"


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
    step = Step(pathspec, _store=store)
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


__all__ = [
    "DataArtifact",
    "Flow",
    "Metaflow",
    "MetaflowArtifacts",
    "MetaflowData",
    "MetaflowObject",
    "Run",
    "Step",
    "Task",
    "shared_store",
    "tasks_at",
]
