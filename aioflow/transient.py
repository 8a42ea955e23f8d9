"""`@transient("name", ...)`: artifacts a run passes between its steps but does not keep.

    @transient("frame", "scratch")
    class TrainFlow(FlowSpec):
        ...

A transient artifact is an artifact like any other while its run goes: set in one step, read
in the next ones, merged at joins, stored (a step in a worker process reads it from the store).
When the run ends, however it ends, its name is dropped from every task of the run, and the
next `aioflow gc` frees its blobs (unless another artifact holds the same value).

Why a flow decorator: an artifact is a name of the whole flow (set in one step, read in others),
so how long it lives belongs to the name, not to a step; a step decorator would have to be
repeated on every step that sets it, joins included. Flow decorators are how Metaflow attaches
flow-wide policy (@project, @schedule, @conda_base), and a class attribute would itself be
stored, as every class-level constant is. `self._transient_x` naming was refused: a leading
underscore already means "hidden by the client", not "not kept".

Not kept means not there for what reads the run later: the client, `spin` of a later step
(give the value with `--artifacts`), and a resume whose re-run steps read it (they fail; run
the flow again instead). Parameters, constants and configs are kept even when named: a resume
reads them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .decorators import FlowDecorator, flow_decorators
from .exceptions import FlowDefinitionError


class TransientDecorator(FlowDecorator):
    """Artifacts the run does not keep past its end (see the module's docstring)."""

    name = "transient"
    defaults: ClassVar[dict[str, Any]] = {"names": ()}

    def validate(self) -> None:
        """Each name is an identifier that is not a dunder (those are never artifacts)."""
        names = self.attributes["names"]
        if not names:
            raise FlowDefinitionError("@transient names no artifact: @transient('name', ...).")
        for name in names:
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
                raise FlowDefinitionError(
                    f"@transient({name!r}): an artifact's name is an identifier, as in "
                    "self.name = ..., and not a __dunder__."
                )


def transient(*names: str) -> TransientDecorator:
    """`@transient("frame", "scratch")` above a flow class: those artifacts are not kept past
    the run (see `aioflow.transient`)."""
    return TransientDecorator(names=tuple(names))


def transient_names(flow_cls: type) -> frozenset[str]:
    """The artifact names `flow_cls` declares transient (none without @transient)."""
    deco = flow_decorators(flow_cls).get(TransientDecorator.name)
    return frozenset(deco.attributes["names"]) if deco is not None else frozenset()


__all__ = ["TransientDecorator", "transient", "transient_names"]
