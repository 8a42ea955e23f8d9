"""`aioflow spin`: run one step again, here, against the inputs a past task of it had.

The step's code is the flow class given (the flow file as it is now); its inputs are the past
task's, read from the store: its parent's artifacts (the run's parameters for `start`), or for
a join the tasks that arrived at it, and its foreach frames, so `self.input` and `self.index`
are the same item. Artifacts given explicitly replace the loaded ones. The body runs in this
thread (`one_task.run_here`), so `breakpoint()` stops in it and what it prints reaches the
terminal as it is printed (it is not captured).

Nothing is stored unless asked: `persist=True` stores the task as a run of its own, tagged
`spin` and `spin_origin:<the task's pathspec>`, whose origin run is the one it read (so gc
keeps that run while the spin is stored, and the client's `origin_pathspec` names it).
Step decorators (@retry, @catch, @timeout, @resources, @environment) are not applied: a spin
runs the body once, as it is.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..current import current_username
from ..exceptions import ParameterError
from ..flowspec import FlowSpec
from ..inputs import JoinInput
from ..parameters import flow_parameters
from ..store import Store, TaskRecord
from ..store.metadata import task_row
from ..store.serde import pack, unpack
from .graphs import linted_graph
from .one_task import Overlay, changed_artifacts, run_here, task_env
from .runner import system_tags
from .task import TaskOutcome, TaskSpec

#: The system tag of a run stored by `spin --persist`, and the prefix of the one naming its task.
SPIN_TAG = "spin"
SPIN_ORIGIN_TAG = "spin_origin:"


@dataclass
class SpinResult:
    """What a spin did: the task it started from, its outcome, and the stored run if any."""

    flow_name: str
    step: str
    #: `Flow/run/step/task` of the past task whose inputs were used
    origin: str
    outcome: TaskOutcome
    overlay: Overlay
    #: the artifacts the step set or changed, by name
    changed: list[str] = field(default_factory=list)
    #: the run `persist=True` stored, else None
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when the step succeeded."""
        return self.outcome.error is None

    def value(self, name: str) -> Any:
        """An artifact's value after the step (set by it or inherited)."""
        return self.overlay.load(self.outcome.manifest[name])


def _latest_attempts(records: list[TaskRecord]) -> dict[int, TaskRecord]:
    latest: dict[int, TaskRecord] = {}
    for row in records:  # ordered by task id, then attempt
        latest[row.task_id] = row
    return latest


def _find_run(store: Store, flow: str, step: str, run_id: str | None) -> int:
    """The run to spin from: `run_id`, else the newest run of `flow` with a task of `step`."""
    if run_id is not None:
        number = int(run_id) if run_id.isascii() and run_id.isdigit() else None
        if number is None or number >= 2**63 or store.metadata.run(flow, number) is None:
            raise ParameterError(f"Run {flow}/{run_id} does not exist in {store.location}.")
        return number
    for run in store.metadata.run_page(flow, limit=1000):
        if store.metadata.task_attempts(run.run_id, step=step):
            return run.run_id
    raise ParameterError(
        f"No run of {flow} in {store.location} has a task of step {step!r} to spin from: run "
        "the flow first."
    )


def _pick_task(
    records: dict[int, TaskRecord], where: str, task_id: str | None, index: int | None
) -> TaskRecord:
    if task_id is not None:
        number = int(task_id) if task_id.isascii() and task_id.isdigit() else None
        if number is None or number not in records:
            ids = ", ".join(str(i) for i in list(records)[:20])
            raise ParameterError(f"{where} has no task {task_id}; its tasks are: {ids}.")
        return records[number]
    if index is not None:
        for row in records.values():
            frames = [f for f in unpack(row.frames or pack([])) if f[4] is not None]
            if frames and frames[-1][2] == index:
                return row
        raise ParameterError(f"{where} has no task at foreach index {index}.")
    return next(iter(records.values()))


def _arrived(
    store: Store, run_id: int, parents: tuple[int, ...], steps: list[str]
) -> list[TaskRecord]:
    """Every attempt of the `parents` tasks (of the steps `steps`). Many parents (a wide
    foreach's join) are read step by step, one query each, rather than 500 ids at a time."""
    if len(parents) <= 500:
        return store.metadata.task_attempts_by_id(run_id, parents)
    wanted = set(parents)
    rows = [r for step in steps for r in store.metadata.task_attempts(run_id, step=step)]
    return [r for r in rows if r.task_id in wanted]


def _spec(store: Store, run_id: int, row: TaskRecord, node: Any) -> TaskSpec:
    """The task as the run's walk made it: frames, parents, and what it inherits."""
    frames = tuple(tuple(f) for f in unpack(row.frames)) if row.frames else ()
    parents = tuple(unpack(row.parents)) if row.parents else ()
    spec = TaskSpec(row.task_id, row.step, frames, parents, {})
    arrived = _latest_attempts(_arrived(store, run_id, parents, node.in_funcs))
    is_join = node.is_join
    if is_join:
        joined: list[JoinInput] = []
        for parent in parents:
            up = arrived[parent]
            up_frames = tuple(tuple(f) for f in unpack(up.frames)) if up.frames else ()
            manifest = unpack(up.manifest) if up.manifest else {}
            joined.append(JoinInput.of(up.step, up.task_id, manifest, up_frames))
        spec.inputs = joined
    elif parents:
        up = arrived[parents[0]]
        spec.manifest = unpack(up.manifest) if up.manifest else {}
    else:  # start: the run's own artifacts
        spec.manifest = unpack(store.metadata.run_params(run_id) or pack({}))
    return spec


def spin(
    flow_cls: type[FlowSpec],
    step: str,
    *,
    root: str | os.PathLike[str] | Store | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    index: int | None = None,
    artifacts: dict[str, Any] | None = None,
    persist: bool = False,
) -> SpinResult:
    """Run `step` of `flow_cls` once, here, with the inputs of a past task of it.

    The task is `task_id`, else the one at foreach `index`, else the step's first task, of run
    `run_id`, else of the newest run that has one. ParameterError when there is no such run,
    step or task. The step's own failure is in the result (`ok`, `outcome.error`), not raised.
    """
    graph = linted_graph(flow_cls)
    flow = flow_cls.__name__
    if step not in graph:
        steps = ", ".join(node.name for node in graph)
        raise ParameterError(f"{flow} has no step {step!r}. Its steps are: {steps}.")
    store = root if isinstance(root, Store) else Store(root, create=False)
    try:
        return _spin(store, flow_cls, graph, step, run_id, task_id, index, artifacts, persist)
    finally:
        if not isinstance(root, Store):
            store.close()


def _spin(
    store: Store,
    flow_cls: type[FlowSpec],
    graph: Any,
    step: str,
    run_id: str | None,
    task_id: str | None,
    index: int | None,
    artifacts: dict[str, Any] | None,
    persist: bool,
) -> SpinResult:
    flow = flow_cls.__name__
    origin_id = _find_run(store, flow, step, run_id)
    where = f"Step {step} of run {flow}/{origin_id}"
    records = _latest_attempts(store.metadata.task_attempts(origin_id, step=step))
    if not records:
        raise ParameterError(f"{where} has no task: the run did not reach it.")
    row = _pick_task(records, where, task_id, index)
    origin = f"{flow}/{origin_id}/{step}/{row.task_id}"
    node = graph[step]
    spec = _spec(store, origin_id, row, node)
    base = unpack(store.metadata.run_params(origin_id) or pack({}))
    readonly = frozenset(base) - {"name"}  # the run's parameters, constants and configs
    overlay = Overlay(store)
    if artifacts:
        given = overlay.encode(artifacts, step)
        if node.is_join:
            base = {**base, **given}  # what the join itself reads; its inputs stay as they were
        else:
            spec.manifest = {**spec.manifest, **given}
    parameter_names = tuple(attr for attr, _ in flow_parameters(flow_cls) if attr in base)
    username = current_username()
    new_run = None
    if persist:
        new_run = store.metadata.create_run(
            flow,
            user=username,
            tags=[],
            system_tags=[*system_tags(username), SPIN_TAG, SPIN_ORIGIN_TAG + origin],
            graph=store.metadata.run_graph(origin_id) or pack(graph.to_dict()),
            origin_run_id=str(origin_id),
            params=pack(base),
        )
    env = task_env(
        flow_cls,
        graph,
        overlay,
        run_id=str(new_run if new_run is not None else origin_id),
        username=username,
        base=base,
        parameter_names=parameter_names,
        readonly=readonly,
        origin_run_id=str(origin_id),
        store=store,
    )
    before = dict(env.starting_manifest(spec))
    spec.started_at = time.time()
    outcome = run_here(env, spec)
    overlay.add(outcome.small)
    result = SpinResult(flow, step, origin, outcome, overlay, changed_artifacts(outcome, before))
    if new_run is not None:
        _store(store, new_run, spec, outcome, overlay, origin)
        result.run_id = str(new_run)
    return result


def _store(
    store: Store, run_id: int, spec: TaskSpec, outcome: TaskOutcome, overlay: Overlay, origin: str
) -> None:
    """Store the spun task as the one task of run `run_id`, and end the run."""
    for key in list(overlay.keys()):  # large blobs first: the rows naming them come after
        store.blobs.put(key, (overlay.blobs[key],))
    status = "succeeded" if outcome.error is None else "failed"
    error = outcome.error
    row = task_row(
        run_id,
        spec.task_id,
        0,
        spec.step,
        status,
        started_at=spec.started_at,
        finished_at=outcome.finished_at,
        frames=pack([list(f) for f in spec.frames]) if spec.frames else None,
        manifest=pack(outcome.manifest),
        stdout=outcome.stdout_key,
        stderr=outcome.stderr_key,
        exception=pack(error.to_record()) if error is not None else None,
        origin=origin,
        transition=outcome.transition_record,
    )
    update: dict[str, Any] = {"status": status, "finished_at": time.time()}
    if error is not None:
        update["error"] = pack({"pathspec": f"{origin}", **error.to_record()})
    store.metadata.write_batch([row], list(overlay.small.items()), [(run_id, update)])
    end_run = getattr(store.metadata, "end_run", None)
    if end_run is not None:  # SQLite: let go of the run's lock now, the store stays open
        end_run(run_id)


__all__ = ["SPIN_ORIGIN_TAG", "SPIN_TAG", "SpinResult", "spin"]
