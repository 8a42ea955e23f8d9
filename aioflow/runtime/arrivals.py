"""What a join keeps of the tasks arriving at it until the last one comes: a few shared columns.

A join after a foreach of a million tasks holds a million arrivals, and they are most of what a
wide foreach keeps in memory before its join. Kept as one `JoinInput` each (with its own frames
tuple: a 6-tuple frame, its index and the tuple around it) they cost about 450 bytes apiece;
here each costs a slot in a few lists and an array: its task id, step, artifact names (shared
between arrivals) and its foreach item's key, and of its artifacts' keys only those that differ
from the first arrival's (most are what the split passed on to every child): a slot in a column
per artifact a child set. The frames and keys are rebuilt when an input is read: every arrival
of one split shares the frames of the split task, and its own last frame differs only by its
index and item key.

`Arrivals` is a read-only sequence of `JoinInput`s made on access, so what reads a join's
inputs (`Inputs`, the process executor's request) is unchanged; `names_at` and `key_at` read an
input's artifacts without making it.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload

from ..inputs import Frame, JoinInput


class Arrivals(Sequence[JoinInput]):
    """The tasks arriving at one join from one split, by their index in the split."""

    __slots__ = (
        "_columns", "_count", "_first", "_first_manifest", "_first_names", "_ids", "_items",
        "_names", "_odd", "_prefix", "_split", "_steps", "arrived",
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
        self._items: list[str | None] | None = None if var is None else [None] * count
        # The first arrival's artifact names and keys. An arrival with the same names keeps
        # a key only where it differs, in that name's column (made when a first one does: an
        # artifact the children set); one with other names (a switch in the foreach) keeps
        # its own keys, in `_odd`.
        self._first_names: tuple[str, ...] | None = None
        self._first: tuple[str, ...] = ()
        # The first arrival's manifest itself: children that set no artifact share their
        # split's (a snapshot copies it at the first change only), so theirs is this one.
        self._first_manifest: dict[str, str] | None = None
        self._columns: list[list[str | None] | None] = []
        self._odd: dict[int, tuple[str, ...]] = {}
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
        self._ids[index] = task_id
        self._steps[index] = step
        if self._items is not None:
            self._items[index] = frame[5]
        self.arrived += 1
        first_names = self._first_names
        if manifest is self._first_manifest:  # a child that set nothing, as the first did
            assert first_names is not None
            self._names[index] = first_names
            return first_names
        own = tuple(manifest)
        if own != names:
            names = own
        if first_names is None:
            self._first_names = names
            self._first = tuple(manifest.values())
            self._first_manifest = manifest
            self._columns = [None] * len(names)
        elif names is not first_names and names != first_names:
            self._names[index] = names
            self._odd[index] = tuple(manifest.values())
            return names
        else:
            names = first_names
            first, columns = self._first, self._columns
            for j, key in enumerate(manifest.values()):
                if key is not first[j]:
                    column = columns[j]
                    if column is None:
                        column = columns[j] = [None] * self._count
                    column[index] = key
        self._names[index] = names
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

    def names_at(self, i: int) -> tuple[str, ...]:
        """The artifact names of the arrival at index `i` (no `JoinInput` is made)."""
        names = self._names[i]
        assert names is not None, "not arrived yet"
        return names

    def key_at(self, i: int, j: int) -> str:
        """The key of artifact `j` (its place in `names_at(i)`) of the arrival at index `i`."""
        if self._names[i] is not self._first_names:
            return self._odd[i][j]
        column = self._columns[j]
        key = None if column is None else column[i]
        return self._first[j] if key is None else key

    def _input(self, i: int) -> JoinInput:
        step, names = self._steps[i], self.names_at(i)
        assert step is not None
        split_task, count, split_step, var = self._split
        item = None if self._items is None else self._items[i]
        frame: Frame = (split_task, count, i, split_step, var, item)
        keys = tuple(self.key_at(i, j) for j in range(len(names)))
        return JoinInput(step, self._ids[i], names, keys, (*self._prefix, frame))

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
