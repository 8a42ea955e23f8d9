"""Resume: a new run that clones the origin run's successful tasks and re-runs the rest.

A task of the new run is cloned when the origin has a successful task of the same step at the
same place: the same index in every enclosing split and foreach, and, for a step that runs more
than once there (a recursive switch loop), the same occurrence. Task ids play no part. A clone
copies no artifact: it reuses the origin task's manifest, logs and recorded transition, so its
children are spawned exactly as the origin's were. The named step, and every step downstream of
it, always re-runs.

As in Metaflow, a clone's metadata is its origin's (attempt, times, place), apart from the keys
naming the origin (`origin-run-id`, `origin-task-id`); a task that re-runs has the run's
`origin-run-id` only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..exceptions import ParameterError
from ..graph import FlowGraph
from ..store import Store, TaskRecord
from ..store.serde import unpack
from ..transitions import Transition
from .logs import TaskLog
from .task import TaskOutcome, TaskSpec

Place = tuple[str, tuple[int, ...]]


@dataclass
class OriginTask:
    """What a clone needs from one successful origin task."""

    task_id: int
    manifest: bytes | None
    stdout: str | None
    stderr: str | None
    transition: bytes | None
    status: str
    attempt: int
    started_at: float | None
    finished_at: float | None


def downstream(graph: FlowGraph, step: str) -> set[str]:
    """`step` and every step reachable from it."""
    seen = {step}
    todo = [step]
    while todo:
        for nxt in graph[todo.pop()].out_funcs:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


class Origin:
    """The cloneable tasks of an origin run, by place."""

    def __init__(
        self, store: Store, flow_name: str, run_id: str, graph: FlowGraph, step: str | None
    ) -> None:
        self.store = store
        self.flow_name = flow_name
        self.run_id = run_id
        self.rerun = downstream(graph, step) if step is not None else set()
        self._tasks: dict[Place, list[OriginTask]] = defaultdict(list)
        self._taken: dict[Place, int] = defaultdict(int)
        latest: dict[int, TaskRecord] = {}
        for row in store.metadata.task_attempts(int(run_id)):
            latest[row.task_id] = row  # rows come ordered by task id, then attempt
        for row in latest.values():
            if row.status not in ("succeeded", "caught"):
                continue
            frames = unpack(row.frames) if row.frames else []
            place = (row.step, tuple(f[2] for f in frames))
            self._tasks[place].append(
                OriginTask(
                    row.task_id,
                    row.manifest,
                    row.stdout,
                    row.stderr,
                    row.transition,
                    row.status,
                    row.attempt,
                    row.started_at,
                    row.finished_at,
                )
            )

    def take(self, spec: TaskSpec) -> OriginTask | None:
        """The origin task to clone for `spec`, or None when it must run."""
        if spec.step in self.rerun:
            return None
        place = (spec.step, tuple(f[2] for f in spec.frames))
        occurrence = self._taken[place]
        self._taken[place] += 1
        candidates = self._tasks.get(place, ())
        return candidates[occurrence] if occurrence < len(candidates) else None

    def pathspec(self, step: str, task: OriginTask) -> str:
        """The origin task's pathspec."""
        return f"{self.flow_name}/{self.run_id}/{step}/{task.task_id}"

    def clone(self, spec: TaskSpec, task: OriginTask) -> tuple[TaskOutcome, str | None]:
        """The outcome of `spec`, taken from the origin task, and the key of its foreach items.

        The caller loads the items (`outcome.item_keys = store.load(key)`) off the loop.
        """
        manifest = unpack(task.manifest) if task.manifest else {}
        spec.attempt = task.attempt
        if task.started_at is not None:
            spec.started_at = task.started_at
        transition = None
        items_key = None
        if task.transition is not None:
            targets, foreach, items_key = unpack(task.transition)
            transition = Transition(tuple(targets), foreach=foreach)
        outcome = TaskOutcome(
            spec,
            manifest,
            [],
            TaskLog(),
            transition=transition,
            stdout_key=task.stdout,
            stderr_key=task.stderr,
            origin=self.pathspec(spec.step, task),
            transition_record=task.transition,
            caught=task.status == "caught",
        )
        if task.finished_at is not None:
            outcome.finished_at = task.finished_at
        return outcome, items_key


def find_origin_run(store: Store, flow_name: str, origin_run_id: str | None) -> str:
    """The origin run's id: the given one, or the flow's latest `run`.

    As Metaflow's (which remembers the run id `run` last started, and nothing `resume`
    starts), the default origin is the newest run that was not itself a resume.
    """
    if origin_run_id is None:
        latest = store.metadata.latest_run_id(flow_name, resumed=False)
        if latest is None:
            raise ParameterError(
                f"There is no run of {flow_name} in {store.root} to resume: a previous run id "
                "was not found. Run the flow first, or specify --origin-run-id."
            )
        origin_run_id = str(latest)
    # ASCII digits within SQLite's integers only: `int` also reads a fullwidth "1" as 1, and a
    # larger number would be an OverflowError from sqlite3 instead of "does not exist".
    given = str(origin_run_id)
    number = int(given) if given.isascii() and given.isdigit() else None
    row = None if number is None or number >= 2**63 else store.metadata.run(flow_name, number)
    if row is None:
        raise ParameterError(
            f"Invalid value for '--origin-run-id': run {flow_name}/{origin_run_id} does not "
            f"exist in {store.root}."
        )
    if row.status == "running" and not store.metadata.process_gone(row):
        raise ParameterError(
            f"Run {flow_name}/{origin_run_id} is still running; resume it once it has ended."
        )
    return str(origin_run_id)
