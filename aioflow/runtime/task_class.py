"""The class a run instantiates for its tasks: the flow's class, its constants read per task.

A class-level constant of a flow (`ALPHA = 0.5` in the class body) is stored as an artifact of
the run's first task, like a parameter. Read from the class it would be one object shared by
every task of every run in the process; `task_class` gives the run a subclass in which each
constant is a descriptor reading the task's own copy instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..exceptions import ReadOnlyArtifactError
from ..flowspec import FlowSpec


class _Constant:
    """A class-level constant of a flow, read per task from the task's artifacts.

    Read from the class it would be one object shared by every task of every run in the
    process; read like this, each task decodes its own copy on first access, so an in-place
    change stays in that task (and its descendants), as in Metaflow.
    """

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    def __get__(self, instance: FlowSpec | None, owner: type) -> Any:
        if instance is None:
            return self.value
        return instance._aioflow_artifact(self.name)

    def __set__(self, instance: FlowSpec, value: Any) -> None:
        raise ReadOnlyArtifactError(
            f"Flow level attributes and Parameters are not modifiable: cannot assign '{self.name}'."
        )


def task_class(flow_cls: type[FlowSpec], constants: Iterable[str]) -> type[FlowSpec]:
    """The class a run instantiates for its tasks: `flow_cls` with its constants read per task."""
    names = [name for name in constants if name in dir(flow_cls)]
    if not names:
        return flow_cls
    namespace: dict[str, Any] = {name: _Constant(name, getattr(flow_cls, name)) for name in names}
    namespace["__module__"] = flow_cls.__module__
    namespace["__qualname__"] = flow_cls.__qualname__
    namespace["__doc__"] = flow_cls.__doc__
    return type(flow_cls.__name__, (flow_cls,), namespace)
