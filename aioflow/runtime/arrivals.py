"""What a join keeps of the tasks arriving at it until the last one comes: a few shared columns.

A join after a foreach of a million tasks holds a million arrivals, and they are most of what a
wide foreach keeps in memory before its join. Kept as one `JoinInput` each (with its own frames
tuple: a 6-tuple frame, its index and the tuple around it) they cost about 450 bytes apiece;
here each costs a slot in a few lists and an array: its task id, step, artifact names (shared
between arrivals) and keys, and its foreach item's key. The frames are rebuilt when an input is
read: every arrival of one split shares the frames of the split task, and its own last frame
differs only by its index and item key.

`Arrivals` is a read-only sequence of `JoinInput`s made on access, so what reads a join's
inputs (`Inputs`, the process executor's request) is unchanged.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload

from ..inputs import Frame, JoinInput


class Arrivals(Sequence[JoinInput]):
    """The tasks arriving at one join from one split, by their index in the split."""

    __slots__ = (
        "_count", "_ids", "_items", "_keys", "_names", "_prefix", "_split", "_steps", "arrived",
    )  # fmt: skip

    def __init__(self, frames: tuple[Frame, ...]) -> None:
        """Room for every task of the split whose frame ends `frames` (a first arrival's)."""
        split_task, count, _, split_step, var, _ = frames[-1]
        self._prefix = frames[:-1]  # the split task's own frames: every arrival's but the last
        self._split = (split_task, count, split_step, var)
        self._count = count
        self._ids = array("q", bytes(8 * count))
        self._steps: list[str | None] = [None] * count
        self._names: list[tuple[str, ...] | None] = [None] * count
        # an arrival's keys: the key itself when it has one artifact (no tuple around it)
        self._keys: list[tuple[str, ...] | str | None] = [None] * count
        self._items: list[str | None] | None = None if var is None else [None] * count
        #: how many tasks arrived so far
        self.arrived = 0

    def add(
        self,
        index: int,
        step: str,
        task_id: int,
        manifest: dict[str, str],
        frame: Frame,
        names: tuple[str, ...],
    ) -> tuple[str, ...]:
        """Keep the arrival at `index` (its last frame is `frame`); returns its artifact names,
        which are `names` when they match (arrivals share one tuple, as in `JoinInput.of`)."""
        own = tuple(manifest)
        if own != names:
            names = own
        self._ids[index] = task_id
        self._steps[index] = step
        self._names[index] = names
        values = tuple(manifest.values())
        self._keys[index] = values[0] if len(values) == 1 else values
        if self._items is not None:
            self._items[index] = frame[5]
        self.arrived += 1
        return names

    @property
    def complete(self) -> bool:
        """True once every task of the split arrived."""
        return self.arrived == self._count

    @property
    def join_frames(self) -> tuple[Frame, ...]:
        """The frames of the join task: the split task's."""
        return self._prefix

    def task_ids(self) -> tuple[int, ...]:
        """The arrivals' task ids, in index order (the join's parents)."""
        return tuple(self._ids)

    def _input(self, i: int) -> JoinInput:
        step, names, keys = self._steps[i], self._names[i], self._keys[i]
        assert step is not None and names is not None and keys is not None, "not arrived yet"
        split_task, count, split_step, var = self._split
        item = None if self._items is None else self._items[i]
        frame: Frame = (split_task, count, i, split_step, var, item)
        own = (keys,) if isinstance(keys, str) else keys
        return JoinInput(step, self._ids[i], names, own, (*self._prefix, frame))

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> JoinInput: ...

    @overload
    def __getitem__(self, index: slice) -> list[JoinInput]: ...

    def __getitem__(self, index: int | slice) -> JoinInput | list[JoinInput]:
        if isinstance(index, slice):
            return [self._input(i) for i in range(self._count)[index]]
        return self._input(range(self._count)[index])  # negative indexes, IndexError

    def __iter__(self) -> Iterator[JoinInput]:
        return (self._input(i) for i in range(self._count))

    def steps(self) -> Sequence[str | None]:
        """Each arrival's step, in index order (no `JoinInput` is made)."""
        return self._steps
