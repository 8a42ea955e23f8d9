"""What a run's tasks leave behind as they go: their rows in the store and their events.

A task's "running" row is not written when it starts: the writer pulls `running_rows()` when it
takes a batch, so a task that finishes before the next commit costs one row, not two. Frames,
parents and manifests are packed once and shared by the rows that repeat them (a split's
children share their parents, most tasks pass their parent's manifest on unchanged).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..decorators import StepOptions
from ..store.metadata import TaskRow, task_row
from ..store.serde import pack
from ..store.writer import BatchWriter
from .collector import collector_guard
from .task import RunEnv, TaskOutcome, TaskSpec

if TYPE_CHECKING:
    from ..events import Event

_new_row = tuple.__new__


class TaskRecorder:
    """Stores the rows and emits the events of one run's task attempts (on the loop)."""

    def __init__(
        self,
        env: RunEnv,
        writer: BatchWriter,
        options: dict[str, StepOptions],
        emit: Callable[[Event], None] | None,
    ) -> None:
        self.env = env
        self.writer = writer
        self.options = options
        # None when nobody listens: then no event object is even built (it costs microseconds
        # per task, which matter in a run of a hundred thousand tasks).
        self.emit = emit
        #: `aioflow.events`, imported only when someone listens (it costs a run 5 ms).
        self._events: Any = None
        if emit is not None:
            from .. import events

            self._events = events
        #: attempts started and not finished, by task id
        self.running: dict[int, TaskSpec] = {}
        self._run_id = int(env.run_id)
        self._collector = collector_guard()
        self._packed_for: dict[str, str] | None = None
        self._packed: bytes = b""
        self._parents_for: tuple[int, ...] | None = None
        self._parents_packed: bytes | None = None

    def started(self, spec: TaskSpec) -> None:
        """An attempt starts now: its row follows with the next commit, if it still runs."""
        spec.started_at = time.time()
        self.running[spec.task_id] = spec
        self.writer.wake()
        if self.emit is not None:
            self.emit(
                self._events.TaskStarted(
                    self.env.pathspec(spec), spec.step, str(spec.task_id), spec.attempt
                )
            )

    def cloning(self, spec: TaskSpec) -> None:
        """A task is cloned from the origin run: no event, and stored once, when cloned."""
        spec.started_at = time.time()
        spec.stored = True
        self.running[spec.task_id] = spec

    def running_rows(self) -> list[TaskRow]:
        """Rows of the attempts running now that were not stored yet (the writer asks)."""
        rows = []
        for spec in self.running.values():
            if not spec.stored:
                spec.stored = True
                rows.append(self._row(spec, None))
        return rows

    def failed_attempt(self, outcome: TaskOutcome) -> None:
        """An attempt failed and the task will be retried."""
        spec = outcome.spec
        self._store(outcome)
        err = outcome.error
        assert err is not None
        if self.emit is not None:
            pathspec = self.env.pathspec(spec)
            events = self._events
            self.emit(
                events.TaskFailed(pathspec, spec.step, str(spec.task_id), err.type_name,
                                  err.message, err.traceback,
                                  outcome.finished_at - spec.started_at, spec.attempt,
                                  retrying=True, detail=err.detail or "")
            )  # fmt: skip
            self.emit(events.TaskRetrying(pathspec, spec.step, str(spec.task_id), spec.attempt + 1))

    def finished(self, outcome: TaskOutcome) -> None:
        """A task ended (succeeded, failed for good, or caught)."""
        self.running.pop(outcome.spec.task_id, None)
        self._collector.task_finished()
        self._store(outcome)
        if self.emit is not None:
            self._emit_end(outcome)

    def _store(self, outcome: TaskOutcome) -> None:
        for key, data in outcome.small:
            self.writer.put_blob(key, data)
        outcome.small = []
        outcome.spec.stored = True
        self.writer.put_task(self._row(outcome.spec, outcome))

    def _row(self, spec: TaskSpec, outcome: TaskOutcome | None) -> TaskRow:
        run_id = self._run_id
        if spec.packed is None:
            if spec.parents is not self._parents_for:  # a split's children share theirs
                self._parents_for = spec.parents
                self._parents_packed = pack(spec.parents) if spec.parents else None
            spec.packed = (pack(spec.frames) if spec.frames else None, self._parents_packed)
        frames, parents = spec.packed
        if outcome is None:
            return task_row(run_id, spec.task_id, spec.attempt, spec.step, "running",
                            started_at=spec.started_at, frames=frames, parents=parents)  # fmt: skip
        if outcome.manifest is not self._packed_for:
            self._packed_for = outcome.manifest
            self._packed = pack(outcome.manifest)
        if outcome.error is None:
            error = None
            status = "caught" if outcome.caught else "succeeded"
        else:
            error = pack(outcome.error.to_record())
            status = "caught" if outcome.caught else "failed"
        # TaskRecord's fields in order, made as a tuple of its type: its generated __new__ is
        # a Python call with fifteen arguments, and every finished task has a row.
        return _new_row(TaskRow, (
            run_id, spec.task_id, spec.attempt, spec.step, status, spec.started_at,
            outcome.finished_at, frames, parents, self._packed, outcome.stdout_key,
            outcome.stderr_key, error, outcome.origin, outcome.transition_record,
        ))  # fmt: skip

    def _emit_end(self, outcome: TaskOutcome) -> None:
        assert self.emit is not None
        spec = outcome.spec
        duration = outcome.finished_at - spec.started_at
        pathspec = self.env.pathspec(spec)
        err = outcome.error
        if err is None:
            splits = None if outcome.item_keys is None else len(outcome.item_keys)
            self.emit(
                self._events.TaskFinished(pathspec, spec.step, str(spec.task_id), duration,
                                          spec.attempt, splits, outcome.origin)
            )  # fmt: skip
            return
        catch = self.options[spec.step].catch
        quiet = outcome.caught and catch is not None and not catch.attributes["print_exception"]
        self.emit(
            self._events.TaskFailed(pathspec, spec.step, str(spec.task_id), err.type_name,
                                    err.message, "" if quiet else err.traceback, duration,
                                    spec.attempt, caught=outcome.caught,
                                    detail="" if quiet else err.detail or "")
        )  # fmt: skip
