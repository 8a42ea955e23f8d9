"""`FlowSpec`, the base class of every flow: `self.next`, joins, foreach state, lazy artifacts.

Inside a task, a flow instance carries one piece of hidden state (`_aioflow_state`, a slot, so it
is never mistaken for an artifact). Reading `self.x` that the step has not set decodes the
artifact from the task's manifest on first access and keeps it in the instance's `__dict__`;
what ends up in `__dict__` is what the runtime snapshots when the step returns. What a call of
`self.next()` means, and whether it is allowed, is `transitions.py`'s business.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .current import current
from .exceptions import (
    ArtifactEncodingError,
    BlobError,
    MergeArtifactsException,
    MissingInMergeArtifactsException,
    ReadOnlyArtifactError,
    TransitionError,
    UnhandledInMergeArtifactsException,
)
from .inputs import FLOW_NOT_SERIALIZABLE, Frame, Inputs, InputView
from .transitions import Transition, next_transition

if TYPE_CHECKING:
    from .graph import StepNode


@dataclass(slots=True)
class TaskState:
    """Everything a flow instance needs to know about the task it runs in."""

    node: StepNode
    manifest: dict[str, str]
    load: Callable[[str], Any]
    readonly: frozenset[str]
    frames: tuple[Frame, ...] = ()
    max_num_splits: int = 100
    #: How the user raises the limit (`--max-num-splits`, or a keyword argument).
    max_num_splits_name: str = "the keyword argument max_num_splits="
    transition: Transition | None = None
    item_cache: dict[int, Any] = field(default_factory=dict)


def _innermost_foreach(frames: tuple[Frame, ...]) -> Frame | None:
    """The frame of the innermost foreach among a task's split frames (None outside one)."""
    for frame in reversed(frames):
        if frame[4] is not None:
            return frame
    return None


class FlowSpec:
    """Base class of a flow: subclass it and decorate methods with `@step`.

    Calling the subclass, `MyFlow()`, as the last line of a flow file hands control to the
    command line (`python flow.py run ...`), as in Metaflow.
    """

    __slots__ = ("__dict__", "_aioflow_state")

    _aioflow_state: TaskState | None

    def __init__(self, use_cli: bool = True) -> None:
        object.__setattr__(self, "_aioflow_state", None)
        if use_cli:
            # The `MyFlow()` idiom of flow files: the one place the core calls into the CLI.
            from .cli import main_for_flow

            main_for_flow(type(self), sys.argv[1:])

    @classmethod
    def _for_task(cls, state: TaskState) -> FlowSpec:
        """An instance ready to run one task (no CLI)."""
        flow = cls.__new__(cls)
        object.__setattr__(flow, "_aioflow_state", state)
        return flow

    # -- artifacts ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The flow's name: its class name (a step may assign another, as in Metaflow)."""
        value = self.__dict__.get("name")
        if value is not None:
            return str(value)
        return type(self).__name__

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["name"] = value

    @property
    def _current_step(self) -> str | None:
        """The name of the step this instance runs (None outside a task), as Metaflow sets it
        on the flow instance; existing flows and libraries read it."""
        state = self._state_or_none()
        return None if state is None else state.node.name

    def _aioflow_artifact(self, name: str) -> Any:
        """Value of an inherited artifact (parameters use this); cached per task."""
        try:
            return self.__dict__[name]
        except KeyError:
            pass
        state = self._state_or_none()
        if state is None or name not in state.manifest:
            raise AttributeError(
                f"Flow {type(self).__name__} has no artifact '{name}' here: parameters and "
                "artifacts are available only inside a running step."
            )
        try:
            value = state.load(state.manifest[name])
        except BlobError as exc:  # name what the step read, not only the blob's key
            raise exc.in_context(artifact=name, pathspec=current.pathspec) from None
        self.__dict__[name] = value
        return value

    def _state_or_none(self) -> TaskState | None:
        try:
            return object.__getattribute__(self, "_aioflow_state")
        except AttributeError:
            return None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        state = self._state_or_none()
        if state is not None and name in state.manifest:
            return self._aioflow_artifact(name)
        raise AttributeError(f"Flow {self.name} has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        try:  # (`_state_or_none`, without the call: every artifact a step sets comes here)
            state = object.__getattribute__(self, "_aioflow_state")
        except AttributeError:
            state = None
        if state is not None and name in state.readonly:
            raise ReadOnlyArtifactError(
                "Flow level attributes and Parameters are not modifiable: cannot assign "
                f"'{name}' in step *{state.node.name}*."
            )
        object.__setattr__(self, name, value)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise ArtifactEncodingError(FLOW_NOT_SERIALIZABLE)

    def _has(self, name: str) -> bool:
        """True when `name` is set on self or inherited, without decoding anything."""
        state = self._state_or_none()
        return (
            name in self.__dict__
            or (state is not None and name in state.manifest)
            or hasattr(type(self), name)
        )

    def _state(self, what: str) -> TaskState:
        state = self._state_or_none()
        if state is None:
            raise TransitionError(f"{what} can only be used inside a running step.")
        return state

    # -- foreach ------------------------------------------------------------------------------

    def _foreach_frames(self) -> list[Frame]:
        state = self._state_or_none()
        return [] if state is None else [f for f in state.frames if f[4] is not None]

    def _innermost_foreach_frame(self) -> Frame | None:
        state = self._state_or_none()
        return None if state is None else _innermost_foreach(state.frames)

    def _item(self, frame: Frame) -> Any:
        return self._item_in(self._state("self.input"), frame)

    def _item_in(self, state: TaskState, frame: Frame) -> Any:
        if frame[4] is None or not self._has(frame[4]):
            # As in Metaflow, the item is read "from" the foreach variable: None where that
            # variable is not an artifact (a join, until it merges or sets the variable).
            return None
        cache = state.item_cache
        if frame[0] not in cache:
            try:
                cache[frame[0]] = None if frame[5] is None else state.load(frame[5])
            except BlobError as exc:  # the item is `variable[index]` of the split's artifact
                item = f"{frame[4]}[{frame[2]}]"
                raise exc.in_context(artifact=item, pathspec=current.pathspec) from None
        return cache[frame[0]]

    @property
    def input(self) -> Any:
        """The item of the innermost foreach this task processes (None outside a foreach)."""
        try:  # (`_state_or_none` and `_innermost_foreach`, inlined: every foreach task reads it)
            state = object.__getattribute__(self, "_aioflow_state")
        except AttributeError:
            return None
        if state is None:
            return None
        frames = state.frames
        if frames and frames[-1][4] is not None:  # most often: the task's own split
            return self._item_in(state, frames[-1])
        frame = _innermost_foreach(frames)
        return None if frame is None else self._item_in(state, frame)

    @property
    def index(self) -> int | None:
        """The index of this task in its innermost foreach (None outside a foreach)."""
        frame = self._innermost_foreach_frame()
        return None if frame is None else frame[2]

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """(index, num_splits, value) for every foreach around this task, outermost first."""
        return [(f[2], f[1], self._item(f)) for f in self._foreach_frames()]

    # -- transitions --------------------------------------------------------------------------

    def next(self, *dsts: Any, **kwargs: Any) -> None:
        """Name the step(s) that follow this one.

        `self.next(self.a)`, `self.next(self.a, self.b)`, `self.next(self.a, foreach="items")`
        or `self.next({"x": self.a, "y": self.b}, condition="attr")`.
        """
        state = self._state("self.next()")
        state.transition = next_transition(self, state, dsts, kwargs)

    # -- joins --------------------------------------------------------------------------------

    def merge_artifacts(
        self,
        inputs: Inputs | Iterable[InputView],
        exclude: list[str] | None = None,
        include: list[str] | None = None,
    ) -> None:
        """Carry over every input artifact whose value is the same on all inputs that have it.

        Names already set on `self` are left alone; `exclude` skips names, `include` merges only
        those names (and requires each to exist). Nothing is merged if any value conflicts.
        """
        state = self._state("merge_artifacts()")
        step = state.node.name
        if not state.node.is_join:
            raise MergeArtifactsException(
                f"merge_artifacts can only be called in a join and step *{step}* is not a join"
            )
        exclude = list(exclude or [])
        include = list(include or [])
        if exclude and include:
            raise MergeArtifactsException(
                "`exclude` and `include` are mutually exclusive in merge_artifacts"
            )
        to_merge: dict[str, str] = {}
        unresolved: list[str] = []
        manifests = (
            inputs.manifests() if isinstance(inputs, Inputs) else (i._manifest for i in inputs)
        )
        for manifest in manifests:
            for name, key in manifest.items():
                if (name not in include) if include else (name in exclude):
                    continue
                if self._has(name):
                    continue
                previous = to_merge.setdefault(name, key)
                if previous != key and name not in unresolved:
                    unresolved.append(name)
        if unresolved:
            raise UnhandledInMergeArtifactsException(
                f"Step *{step}* cannot merge the following artifacts due to them having "
                f"conflicting values:\n[{', '.join(unresolved)}].\nTo remedy this issue, be sure "
                "to explicitly set those artifacts (using self.<artifact_name> = ...) prior to "
                "calling merge_artifacts.",
                unresolved,
            )
        missing = [name for name in include if name not in to_merge and not self._has(name)]
        if missing:
            raise MissingInMergeArtifactsException(
                f"Step *{step}* specifies that [{', '.join(include)}] should be merged but "
                f"[{', '.join(missing)}] are not present.\nTo remedy this issue, make sure that "
                "the values specified in only come from at least one branch",
                missing,
            )
        state.manifest.update(to_merge)
