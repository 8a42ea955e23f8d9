"""One run and its steps: `Run('Flow/run_id')` and `Step('Flow/run_id/step')`.

A Run reads its row of the `runs` table: status (a run whose process died reads failed),
times, user, tags, origin, error; it re-reads the row while the run is still going, and
changes its user tags. A Step holds the latest attempt of each of its tasks and hands out
Task objects (`tasks.py`), which reach back to their Run and Step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import ExceptionWrapper, MetaflowNotFound
from ..store import RunRecord, Store, TaskRecord
from ..store.serde import unpack
from ..transitions import PARALLEL_FOREACH
from .base import (
    MetaflowObject,
    StoreRoot,
    _id_number,
    _latest_attempts,
    _not_found,
    _not_in_namespace,
    _parse,
    _time,
    _upper,
)
from .namespaces import get_namespace
from .tags import mutate_user_tags
from .tasks import Task

if TYPE_CHECKING:
    from .artifacts import MetaflowData
    from .flows import Flow


class Run(MetaflowObject):
    """One run of a flow: its steps, its end task's data, its tags (`root=`: see `Flow`)."""

    def __init__(
        self,
        pathspec: str,
        *,
        root: StoreRoot | None = None,
        _store: Store | None = None,
        _row: RunRecord | None = None,
        _flow: Flow | None = None,
        _namespace_check: bool = True,
    ) -> None:
        flow, run_id = _parse("Run", pathspec)
        super().__init__(pathspec, _store, root)
        self._flow = _flow
        self._namespace_check = _namespace_check
        if _row is None:
            number = _id_number(run_id)
            _row = None if number is None else self._store.metadata.run(flow, number)
            if _row is None:
                raise _not_found(f"Run('{pathspec}')")
            ns = get_namespace()
            if ns is not None and _namespace_check and ns not in self._tags_of(_row):
                raise _not_in_namespace(ns, f"Run('{pathspec}') does not carry the tag {ns!r}")
        self._row: RunRecord = _row
        self._end: Step | None = None

    @classmethod
    def _from_row(cls, flow: Flow, row: RunRecord) -> Run:
        return cls(f"{flow.id}/{row.run_id}", _store=flow._store, _row=row, _flow=flow)

    @staticmethod
    def _tags_of(row: RunRecord) -> frozenset[str]:
        return frozenset(row.tags) | frozenset(row.system_tags)

    def _refresh(self) -> RunRecord:
        row = self._store.metadata.run(self.path_components[0], int(self.id))
        if row is not None:
            self._row = row
        return self._row

    @property
    def status(self) -> str:
        """running, succeeded, failed or cancelled (a run whose process died reads failed)."""
        row = self._row if self._row.status != "running" else self._refresh()
        if self._store.metadata.process_gone(row):
            return "failed"
        return str(row.status)

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
        return _time(self._row.created_at)

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended, however it ended (None while it runs)."""
        row = self._row if self._row.finished_at is not None else self._refresh()
        return _time(row.finished_at)

    @property
    def user(self) -> str | None:
        """Who started the run."""
        user = self._row.user
        return None if user is None else str(user)

    @property
    def user_tags(self) -> frozenset[str]:
        """Tags given with --tag or added since."""
        return frozenset(self._row.tags)

    @property
    def system_tags(self) -> frozenset[str]:
        """Tags aioflow attached (user, runtime, versions); they cannot be removed."""
        return frozenset(self._row.system_tags)

    @property
    def origin_pathspec(self) -> str | None:
        """`Flow/run_id` of the run this one resumed, else None."""
        origin = self._row.origin_run_id
        return None if origin is None else f"{self.path_components[0]}/{origin}"

    @property
    def parent(self) -> Flow:
        """The flow."""
        if self._flow is None:
            self._flow = _upper("Flow")(self.path_components[0], _store=self._store, _checked=True)
        return self._flow

    def steps(self, *tags: str) -> Iterator[Step]:
        """Steps that ran, latest first (Metaflow's order)."""
        if not set(tags) <= self.tags:
            return
        names = [name for name, _ in self._store.metadata.steps(int(self.id))]
        for name in reversed(names):
            yield Step(f"{self.pathspec}/{name}", _store=self._store, _run=self)

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def __getitem__(self, step: str) -> Step:
        return Step(f"{self.pathspec}/{step}", _store=self._store, _run=self)

    def __contains__(self, step: object) -> bool:
        return any(name == step for name, _ in self._store.metadata.steps(int(self.id)))

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
        if not row.error:
            return None
        record = unpack(row.error)
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
        """Remove then add user tags in one transaction; see `tags.py` for the rules."""
        mutate_user_tags(
            self._store, self.path_components[0], int(self.id), tags_to_remove, tags_to_add
        )
        self._refresh()


class Step(MetaflowObject):
    """One step of a run: its tasks, newest first (`root=`: see `Flow`)."""

    def __init__(
        self,
        pathspec: str,
        *,
        root: StoreRoot | None = None,
        _store: Store | None = None,
        _run: Run | None = None,
        _namespace_check: bool = True,
    ) -> None:
        flow, run_id, _ = _parse("Step", pathspec)
        if _run is None:
            _run = Run(
                f"{flow}/{run_id}", root=root, _store=_store, _namespace_check=_namespace_check
            )
        run = _run
        super().__init__(pathspec, run._store)
        self._run = run
        self._rows: list[TaskRecord] = []
        self._reload()
        if not self._rows:
            raise _not_found(f"Step('{pathspec}')")

    def _reload(self) -> None:
        rows = self._store.metadata.task_attempts(int(self._run.id), self.id)
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

    def control_tasks(self, *tags: str) -> Iterator[Task]:
        """The control tasks of a @parallel step (node 0 of each `num_parallel=` split), as
        Metaflow's; none for any other step."""
        for task in self.tasks(*tags):
            frames = task._frames()
            if frames and frames[-1][4] == PARALLEL_FOREACH and frames[-1][2] == 0:
                yield task

    def __getitem__(self, task_id: str) -> Task:
        for row in self._rows:
            if str(row.task_id) == str(task_id):
                return Task._from_row(self, row)
        raise _not_found(f"Task('{self.pathspec}/{task_id}')")

    def __contains__(self, task_id: object) -> bool:
        return any(str(row.task_id) == str(task_id) for row in self._rows)

    def _graph_steps(self) -> dict[str, Any]:
        graph = self._store.metadata.run_graph(int(self._run.id))
        steps: dict[str, Any] = unpack(graph).get("steps", {}) if graph else {}
        return steps

    def _steps_named(self, names: Iterable[str]) -> Iterator[Step]:
        for name in names:
            if name in self._run:  # a step the run has not reached yet has no tasks
                yield Step(f"{self._run.pathspec}/{name}", _store=self._store, _run=self._run)

    @property
    def parent_steps(self) -> Iterator[Step]:
        """The steps that lead to this one in the flow's graph (none for start)."""
        steps = self._graph_steps()
        names = [name for name, node in steps.items() if self.id in (node.get("next") or ())]
        return self._steps_named(names)

    @property
    def child_steps(self) -> Iterator[Step]:
        """The steps this one leads to in the flow's graph (none for end)."""
        node = self._graph_steps().get(self.id, {})
        return self._steps_named(node.get("next") or ())

    @property
    def task(self) -> Task:
        """The newest task of this step (the only one, outside a foreach), as Metaflow's."""
        return Task._from_row(self, self._rows[-1])

    @property
    def created_at(self) -> datetime | None:
        """When the step's first task started."""
        return _time(min(r.started_at or 0 for r in self._rows))

    @property
    def finished_at(self) -> datetime | None:
        """When the step's last task ended, once none is running."""
        if any(r.status == "running" for r in self._rows):
            return None
        return _time(max(r.finished_at or 0 for r in self._rows))

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
