"""A task's artifacts: the `task.data` and `task.artifacts` views, and `DataArtifact`.

`task.data.x` decodes the value of artifact `x`; `task.artifacts.x` is its DataArtifact, which
also tells the content hash (`sha`, the blob key in the store) and the stored size. Both views
reach `_private` artifacts by name only: listing and iterating show the public ones. The views
keep their task in a name-mangled slot so that no attribute of theirs hides an artifact's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..store import Store
from ..store.keys import content_hash
from .base import MetaflowObject, StoreRoot, _not_found, _parse, _upper

if TYPE_CHECKING:
    from .tasks import Task


class MetaflowData:
    """Attribute access to a task's artifact values; `_private` ones are reachable by name."""

    __slots__ = ("__task",)

    def __init__(self, task: Task) -> None:
        self.__task = task

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_MetaflowData__task":
            raise AttributeError(name)
        task = self.__task
        key = task.manifest.get(name)
        if key is None:
            raise AttributeError(f"Task {task.pathspec} has no artifact '{name}'.")
        return task._store.load(key, artifact=name, pathspec=task.pathspec)

    def __contains__(self, name: object) -> bool:
        return name in self.__task.manifest

    def __repr__(self) -> str:
        names = sorted(n for n in self.__task.manifest if not n.startswith("_"))
        return f"<MetaflowData: {', '.join(names)}>"


class MetaflowArtifacts:
    """Attribute access to a task's DataArtifact objects; iterates the public ones by name."""

    __slots__ = ("__task",)

    def __init__(self, task: Task) -> None:
        self.__task = task

    def __getattr__(self, name: str) -> DataArtifact:
        if name.startswith("__") or name == "_MetaflowArtifacts__task":
            raise AttributeError(name)
        task = self.__task
        if name not in task.manifest:
            raise AttributeError(f"Task {task.pathspec} has no artifact '{name}'.")
        return task[name]

    def __iter__(self) -> Iterator[DataArtifact]:
        task = self.__task
        for name in sorted(task.manifest):
            if not name.startswith("_"):
                yield task[name]

    def __contains__(self, name: object) -> bool:
        return name in self.__task.manifest

    def __len__(self) -> int:
        return sum(1 for name in self.__task.manifest if not name.startswith("_"))


class DataArtifact(MetaflowObject):
    """One artifact of one task: its value, content hash (`sha`) and stored size."""

    def __init__(
        self,
        pathspec: str,
        attempt: int | None = None,
        *,
        root: StoreRoot | None = None,
        _store: Store | None = None,
        _task: Task | None = None,
        _namespace_check: bool = True,
    ) -> None:
        flow, run_id, step, task_id, name = _parse("DataArtifact", pathspec)
        self._namespace_check = _namespace_check
        if _task is None:
            task_pathspec = f"{flow}/{run_id}/{step}/{task_id}"
            _task = _upper("Task")(
                task_pathspec, attempt, root=root, _store=_store, _namespace_check=_namespace_check
            )
        super().__init__(pathspec, _task._store)
        if name not in _task.manifest:
            raise _not_found(f"DataArtifact('{pathspec}')")
        self._task = _task
        self._attempt = _task._attempt
        #: The blob key in the store: a content hash, or an identity key holding the value.
        self._key = _task.manifest[name]

    def __repr__(self) -> str:
        attempt = self._task._attempt
        if attempt is not None:
            return f"DataArtifact('{self.pathspec}', attempt={attempt})"
        return f"DataArtifact('{self.pathspec}')"

    @property
    def sha(self) -> str:
        """The content hash: the BLAKE3 key of the artifact's encoded bytes (40 hex digits).

        A value of a few bytes is kept in its key (an identity key, `store/keys.py`); its hash
        is computed here, so `sha` is the same whichever way the value is stored.
        """
        return content_hash(self._key)

    @property
    def data(self) -> Any:
        """The artifact's value, decoded fresh."""
        return self._store.load(self._key, artifact=self.id, pathspec=self._task.pathspec)

    @property
    def size(self) -> int:
        """Stored size in bytes (of its encoded bytes, for a value kept in its key)."""
        return self._store.blob_size(self._key)

    @property
    def parent(self) -> Task:
        """The task."""
        return self._task

    @property
    def created_at(self) -> datetime | None:
        """When the task that holds the artifact ended (when it was stored)."""
        return self._task.finished_at

    @property
    def finished_at(self) -> datetime | None:
        """Same as `created_at`."""
        return self._task.finished_at

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags."""
        return self._task.user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        """The run's system tags."""
        return self._task.system_tags

    @property
    def origin_pathspec(self) -> str | None:
        """This artifact in the task its task was cloned from, else None."""
        origin = self._task.origin_pathspec
        return None if origin is None else f"{origin}/{self.id}"
