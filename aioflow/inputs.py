"""`inputs` of a join step: read-only views of the tasks that arrive at the join.

Each view reads its artifacts lazily from that task's manifest, decoding a value on first access
(fresh for this join, so nothing a join does to a value leaks back into the stored artifact).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, overload

from .current import current
from .exceptions import BlobError

#: A foreach frame as the runtime keeps it: (split task id, num splits, index, split step,
#: foreach variable or None for a static branch, key of the item's blob or None).
Frame = tuple[int, int, int, str, "str | None", "str | None"]

#: Metaflow's message for storing the flow, an element of `inputs` or `inputs` as an artifact.
FLOW_NOT_SERIALIZABLE = (
    "Flows can't be serialized. Maybe you tried to assign *self* or one of the *inputs* to an "
    "attribute? Instead of serializing the whole flow, you should choose specific attributes, "
    "e.g. *input.some_var*, to be stored."
)


class JoinInput(NamedTuple):
    """What a join keeps of a task arriving at it until the join runs: a tuple, not the task's
    whole outcome, since a join after a wide foreach holds one per foreach task.

    The task's artifacts are kept as their keys in the order of `names`, a tuple the inputs of
    one join share (`JoinInput.of`): a dict per input cost three times as much.
    """

    step: str
    task_id: int
    names: tuple[str, ...]
    keys: tuple[str, ...]
    frames: tuple[Frame, ...]

    @classmethod
    def of(
        cls,
        step: str,
        task_id: int,
        manifest: dict[str, str],
        frames: tuple[Frame, ...],
        names: tuple[str, ...] = (),
    ) -> JoinInput:
        """The arrival of a task with this manifest; `names` is reused when it matches."""
        own = tuple(manifest)
        return cls(step, task_id, names if own == names else own, tuple(manifest.values()), frames)

    @property
    def manifest(self) -> dict[str, str]:
        """The task's artifacts: name -> key (a new dict on every call)."""
        return dict(zip(self.names, self.keys, strict=True))


#: An artifact of an input not read yet (None is a value).
_UNREAD: Any = object()


class InputView:
    """The artifacts of one task arriving at a join, plus its `.index` and `.input`.

    A join reading one artifact of each of a million inputs keeps a million views, the most
    it holds at once: a view keeps only its place among the inputs and the arrival's artifact
    names (a tuple the inputs share). The keys are read from the inputs when a value is first
    read, and the values read are kept by the inputs, a list per artifact name
    (`Inputs._read`); the step, task id and frames are looked up in the inputs when asked for.
    """

    __slots__ = ("_at", "_inputs", "_names")

    def __init__(self, inputs: Inputs, at: int, names: tuple[str, ...]) -> None:
        _set_inputs(self, inputs)
        _set_at(self, at)
        _set_names(self, names)

    @property
    def _arrival(self) -> JoinInput:
        return self._inputs._arrivals[self._at]

    @property
    def _manifest(self) -> dict[str, str]:
        """The input's artifacts: name -> key (a new dict on every call)."""
        return self._arrival.manifest

    def _load(self, key: str) -> Any:
        return self._inputs._load(key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        names = self._names
        try:
            at = names.index(name)
        except ValueError:
            arrival = self._arrival
            raise AttributeError(
                f"Input from step *{arrival.step}* (task {arrival.task_id}) has no artifact "
                f"'{name}'. Its artifacts are: {', '.join(self.artifact_names()) or 'none'}."
            ) from None
        inputs, i = self._inputs, self._at
        values = inputs._read.get(name)
        if values is None:
            values = inputs._read[name] = [_UNREAD] * len(inputs)
        else:
            value = values[i]
            if value is not _UNREAD:
                return value
        try:  # (every input a join reads comes here: the inputs' loader, not this view's)
            value = values[i] = inputs._load(inputs._key_at(i, at))
        except BlobError as exc:  # name the artifact and the input task it belongs to
            arrival = self._arrival
            task = f"{current.flow_name}/{current.run_id}/{arrival.step}/{arrival.task_id}"
            raise exc.in_context(artifact=name, pathspec=task) from None
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"Inputs of a join are read-only: cannot set '{name}' on the input from step "
            f"*{self._arrival.step}*. Set it on self instead."
        )

    def __reduce_ex__(self, protocol: Any) -> Any:
        from .exceptions import ArtifactEncodingError

        raise ArtifactEncodingError(FLOW_NOT_SERIALIZABLE)

    def __dir__(self) -> list[str]:
        return sorted(set(self._names) | {"index", "input", "foreach_stack"})

    def __repr__(self) -> str:
        arrival = self._arrival
        return f"<input from {arrival.step}/{arrival.task_id}>"

    def artifact_names(self) -> list[str]:
        """Names of the public artifacts of this input."""
        return sorted(n for n in self._names if not n.startswith("_"))

    def _foreach_frames(self) -> list[Frame]:
        return [f for f in self._arrival.frames if f[4] is not None]

    @property
    def index(self) -> int | None:
        """The input task's index in its innermost foreach (None outside a foreach)."""
        frames = self._foreach_frames()
        return frames[-1][2] if frames else None

    @property
    def input(self) -> Any:
        """The foreach item the input task processed (None outside a foreach)."""
        frames = self._foreach_frames()
        if not frames or frames[-1][5] is None:
            return None
        return self._load(frames[-1][5])

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """(index, num_splits, value) of every foreach around the input task, outermost first."""
        return [(f[2], f[1], self._load(f[5]) if f[5] else None) for f in self._foreach_frames()]


# The slots' own setters, for `InputView.__init__`: a view refuses attribute assignment, and a
# join makes one per input it reads, where `object.__setattr__` by name cost twice as much.
_set_inputs = InputView.__dict__["_inputs"].__set__
_set_at = InputView.__dict__["_at"].__set__
_set_names = InputView.__dict__["_names"].__set__


class Inputs(Sequence[InputView]):
    """The tasks arriving at a join, in order: foreach index order, or branch order.

    Views are made when first used and then kept (reading `inputs[0].x` twice gives the same
    object, as in Metaflow): a join after a foreach of a million tasks that only counts its
    inputs or merges their artifacts makes none.
    """

    def __init__(self, arrivals: Sequence[JoinInput], load: Callable[[str], Any]) -> None:
        self._arrivals = arrivals
        self._load = load
        # The runtime's `Arrivals` reads an input's names and keys without making its
        # `JoinInput` (frames and all); any other sequence is read through its items.
        self._names_at: Callable[[int], tuple[str, ...]] = getattr(
            arrivals, "names_at", lambda i: arrivals[i].names
        )
        self._key_at: Callable[[int, int], str] = getattr(
            arrivals, "key_at", lambda i, j: arrivals[i].keys[j]
        )
        self._views: list[InputView | None] = [None] * len(arrivals)
        # The values read, by artifact name and input: made on the first read of a name (a
        # join that only counts or merges its inputs reads none), 8 bytes an input.
        self._read: dict[str, list[Any]] = {}
        self._steps: dict[str, int] | None = None

    @property
    def _by_step(self) -> dict[str, int]:
        """The last input of each step, as `inputs.<step>` names it: made when first asked for,
        since a join after a wide foreach rarely names its inputs by step."""
        if self._steps is None:
            self._steps = {arrival.step: i for i, arrival in enumerate(self._arrivals)}
        return self._steps

    def _view(self, i: int) -> InputView:
        view = self._views[i]
        if view is None:
            view = self._views[i] = InputView(self, i, self._names_at(i))
        return view

    def manifests(self) -> Iterator[dict[str, str]]:
        """Each input's artifact names and keys, in order (no view is made)."""
        return (arrival.manifest for arrival in self._arrivals)

    @overload
    def __getitem__(self, index: int) -> InputView: ...

    @overload
    def __getitem__(self, index: slice) -> list[InputView]: ...

    def __getitem__(self, index: int | slice) -> InputView | list[InputView]:
        if isinstance(index, slice):
            return [self._view(i) for i in range(len(self._views))[index]]
        return self._view(range(len(self._views))[index])  # negative indexes, IndexError

    def __len__(self) -> int:
        return len(self._views)

    def __iter__(self) -> Iterator[InputView]:
        return (self._view(i) for i in range(len(self._views)))

    def __getattr__(self, name: str) -> InputView:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._view(self._by_step[name])
        except KeyError:
            raise AttributeError(
                f"No input comes from a step named '{name}'; inputs come from: "
                f"{', '.join(self._by_step)}."
            ) from None

    def __reduce_ex__(self, protocol: Any) -> Any:
        from .exceptions import ArtifactEncodingError

        raise ArtifactEncodingError(FLOW_NOT_SERIALIZABLE)

    def __repr__(self) -> str:
        return f"<inputs: {len(self._views)} from {', '.join(self._by_step)}>"
