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


class InputView:
    """The artifacts of one task arriving at a join, plus its `.index` and `.input`."""

    __slots__ = ("_frames", "_load", "_manifest", "_step", "_task_id", "_values")

    def __init__(
        self,
        step: str,
        task_id: int,
        manifest: dict[str, str],
        frames: tuple[Frame, ...],
        load: Callable[[str], Any],
    ) -> None:
        object.__setattr__(self, "_step", step)
        object.__setattr__(self, "_task_id", task_id)
        object.__setattr__(self, "_manifest", manifest)
        object.__setattr__(self, "_frames", frames)
        object.__setattr__(self, "_load", load)
        # Made on the first read: a join that only counts or merges its inputs needs none.
        object.__setattr__(self, "_values", None)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        values = self._values
        if values is None:
            values = {}
            object.__setattr__(self, "_values", values)
        elif name in values:
            return values[name]
        key = self._manifest.get(name)
        if key is None:
            raise AttributeError(
                f"Input from step *{self._step}* (task {self._task_id}) has no artifact "
                f"'{name}'. Its artifacts are: {', '.join(self.artifact_names()) or 'none'}."
            )
        try:
            value = values[name] = self._load(key)
        except BlobError as exc:  # name the artifact and the input task it belongs to
            task = f"{current.flow_name}/{current.run_id}/{self._step}/{self._task_id}"
            raise exc.in_context(artifact=name, pathspec=task) from None
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"Inputs of a join are read-only: cannot set '{name}' on the input from step "
            f"*{self._step}*. Set it on self instead."
        )

    def __reduce_ex__(self, protocol: Any) -> Any:
        from .exceptions import ArtifactEncodingError

        raise ArtifactEncodingError(FLOW_NOT_SERIALIZABLE)

    def __dir__(self) -> list[str]:
        return sorted(set(self._manifest) | {"index", "input", "foreach_stack"})

    def __repr__(self) -> str:
        return f"<input from {self._step}/{self._task_id}>"

    def artifact_names(self) -> list[str]:
        """Names of the public artifacts of this input."""
        return sorted(n for n in self._manifest if not n.startswith("_"))

    def _foreach_frames(self) -> list[Frame]:
        return [f for f in self._frames if f[4] is not None]

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


class Inputs(Sequence[InputView]):
    """The tasks arriving at a join, in order: foreach index order, or branch order.

    Views are made when first used and then kept (reading `inputs[0].x` twice gives the same
    object, as in Metaflow): a join after a foreach of a million tasks that only counts its
    inputs or merges their artifacts makes none.
    """

    def __init__(self, arrivals: Sequence[JoinInput], load: Callable[[str], Any]) -> None:
        self._arrivals = arrivals
        self._load = load
        self._views: list[InputView | None] = [None] * len(arrivals)
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
            arrival = self._arrivals[i]
            view = self._views[i] = InputView(
                arrival.step, arrival.task_id, arrival.manifest, arrival.frames, self._load
            )
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
