"""Which tasks follow a finished one: foreach fan-out, static splits, switches, joins as barriers.

Every task carries a stack of split frames: `(split task id, number of branches, index, split
step, foreach variable or None, key of the foreach item)`. A split pushes a frame on its
children; a join pops one, and waits for as many arrivals as the frame says, keyed by the split
task that pushed it. That keys joins by what really ran, so a switch inside a branch, nested
foreaches and recursive loops need no special cases.

A foreach's children are made lazily: the split reserves their task ids and puts one `Fanout`
in the ready queue in their place, which makes each child's `TaskSpec` when a slot takes it. A
foreach of a million items holds max_workers specs, not a million, and the ids, and the order
tasks start in (the queue's FIFO of spawn order), are what spawning them all at once gave.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ..exceptions import InternalError
from ..inputs import Frame, JoinInput
from ..transitions import PARALLEL_FOREACH
from .arrivals import Arrivals
from .task import RunEnv, TaskOutcome, TaskSpec


def parallel_width(outcome: TaskOutcome) -> int:
    """How many tasks of a @parallel step a finished task asks for (0 for any other task).

    They are spawned one after the other, node 0 (the control task) first, so their task ids
    are consecutive (`current.parallel.control_task_id` relies on it).
    """
    transition = outcome.transition
    if outcome.error is not None or transition is None or transition.foreach != PARALLEL_FOREACH:
        return 0
    return len(outcome.item_keys or ())


class Fanout:
    """The children of one foreach split that no slot has taken yet, in the ready queue in
    their place: `take` makes the next one, with the task id the split reserved for it."""

    __slots__ = (
        "_count", "_first_id", "_frames", "_keys", "_manifest", "_parents", "_split",
        "_split_step", "_step", "_var", "left",
    )  # fmt: skip

    def __init__(
        self,
        first_id: int,
        step: str,
        split: TaskSpec,
        var: str,
        keys: list[str],
        manifest: dict[str, str],
    ) -> None:
        self._first_id = first_id
        self._step = step
        self._frames = split.frames
        self._parents = (split.task_id,)
        self._manifest = manifest
        self._split = split.task_id
        self._split_step = split.step
        self._var = var
        self._keys = keys
        self._count = len(keys)
        #: how many children are still to be made (an attribute: the scheduler reads it for
        #: every child it takes)
        self.left = self._count

    def take(self) -> TaskSpec:
        """Make the next child (the caller checks `left` first)."""
        i = self._count - self.left
        self.left -= 1
        frame: Frame = (self._split, self._count, i, self._split_step, self._var, self._keys[i])
        return TaskSpec(
            self._first_id + i, self._step, (*self._frames, frame), self._parents, self._manifest
        )


class FlowWalk:
    """Spawns one run's tasks as their parents finish, into the `ready` queue it is given."""

    def __init__(self, env: RunEnv, ready: deque[TaskSpec | Fanout]) -> None:
        self.env = env
        self.nodes = env.nodes  # (the graph's dict: looked up per task without a Python call)
        self.ready = ready
        #: tasks spawned so far (task ids count from 1)
        self.spawned = 0
        self._joins: dict[tuple[str, int], Arrivals] = {}
        self._names: tuple[str, ...] = ()  # of the last arrival: the next ones likely share it

    def start(self) -> None:
        """Spawn the run's first task."""
        self._spawn("start", (), (), self.env.base_manifest)

    def follow(self, outcome: TaskOutcome) -> bool:
        """Spawn what follows a finished (or caught) task; True when the run reached its end."""
        spec = outcome.spec
        node = self.nodes[spec.step]
        transition = outcome.transition
        if node.type == "end" or transition is None:
            return True
        parents = (spec.task_id,)
        if transition.foreach is not None:
            keys = outcome.item_keys or []
            if keys:  # the children's ids are taken now, so later spawns' ids stay as they were
                target = transition.targets[0]
                fanout = Fanout(
                    self.spawned + 1, target, spec, transition.foreach, keys, outcome.manifest
                )
                self.spawned += len(keys)
                self.ready.append(fanout)
        elif len(transition.targets) > 1:
            count = len(transition.targets)
            for i, target in enumerate(transition.targets):
                static: Frame = (spec.task_id, count, i, spec.step, None, None)
                self._spawn(target, (*spec.frames, static), parents, outcome.manifest)
        else:
            target = transition.targets[0]
            if self.nodes[target].is_join:
                self._arrive(target, outcome)
            else:
                self._spawn(target, spec.frames, parents, outcome.manifest)
        return False

    def stall_error(self) -> InternalError:
        """The error of a run left with nothing to run before its end (an aioflow bug)."""
        waiting = ", ".join(
            f"*{join}* ({bucket.arrived} of {len(bucket)} inputs)"
            for (join, _), bucket in self._joins.items()
        )
        return InternalError(
            f"The run stopped making progress before reaching *end*: joins still waiting: "
            f"{waiting or 'none'}."
        )

    def _spawn(
        self,
        step: str,
        frames: tuple[Frame, ...],
        parents: tuple[int, ...],
        manifest: dict[str, str],
        inputs: Sequence[JoinInput] | None = None,
    ) -> None:
        self.spawned += 1
        self.ready.append(TaskSpec(self.spawned, step, frames, parents, manifest, inputs))

    def _arrive(self, join: str, outcome: TaskOutcome) -> None:
        spec = outcome.spec
        frames = spec.frames
        if not frames:
            raise InternalError(f"Step *{spec.step}* leads to join *{join}* outside of any split.")
        frame = frames[-1]
        key = (join, frame[0])
        bucket = self._joins.get(key)
        if bucket is None:
            bucket = self._joins[key] = Arrivals(frames)
        # Only what the join reads is kept: a foreach of a million tasks keeps a million.
        self._names = bucket.add(
            frame[2], spec.step, spec.task_id, outcome.manifest, frame, self._names
        )
        if not bucket.complete:
            return
        del self._joins[key]
        self._spawn(join, bucket.join_frames, bucket.task_ids(), self.env.base_manifest, bucket)
