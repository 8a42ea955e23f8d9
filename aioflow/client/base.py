"""What every client object shares: pathspecs, Metaflow's error messages, the store, the base class.

A pathspec names an object by its place in the store (`Flow/run_id/step/task_id[/artifact]`);
`_parse` checks its shape and raises InvalidPathspec with the form expected. `_not_found` and
`_not_in_namespace` build the errors Metaflow raises, in its words. `shared_store` opens each
store once per process, for every object read from it. A task's attempts are the store's
TaskRecords; `_latest_attempts` picks the attempt a reader sees. `MetaflowObject` is the base
of Flow, Run, Step, Task and DataArtifact: pathspec, id, parent, times, tags, origin,
equality by repr.

The levels' modules import downward only (flows -> runs -> tasks -> artifacts -> base): a level
that makes an object of the level above it (a Task its Run, a DataArtifact its Task) finds that
class with `_upper`, filled as each class is defined, instead of importing its module back.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..exceptions import InvalidPathspec, MetaflowNamespaceMismatch, MetaflowNotFound
from ..store import Store, TaskRecord, refuse_empty_root, resolve_root
from .namespaces import get_namespace

_DEPTH = {"Flow": 1, "Run": 2, "Step": 3, "Task": 4, "DataArtifact": 5}
_FORM = ("FlowName", "RunID", "StepName", "TaskID", "ArtifactName")


# -- pathspecs and errors -----------------------------------------------------------------------


def _parse(kind: str, pathspec: object) -> list[str]:
    if not isinstance(pathspec, str):
        raise InvalidPathspec(f"A {kind} pathspec is a string, not {type(pathspec).__name__}.")
    parts = pathspec.split("/")
    if len(parts) != _DEPTH[kind] or not all(parts):
        form = "/".join(_FORM[: _DEPTH[kind]])
        raise InvalidPathspec(f"Expects {kind}('{form}'), not {kind}({pathspec!r})")
    return parts


#: The largest id the store can hold (SQLite's integers are signed 64-bit).
_MAX_ID = 2**63 - 1


def _id_number(text: str) -> int | None:
    """The run or task id `text` spells, or None when it spells no id the store can hold.

    Only ASCII digits: `str.isdigit` (and `int`) also take fullwidth or Arabic-Indic digits,
    so a run id written with a fullwidth 1 would read run 1. Beyond the store's integers, an id
    names nothing (not an OverflowError).
    """
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= _MAX_ID else None


def _not_found(obj: str) -> MetaflowNotFound:
    """Metaflow's error for a missing object: `Run('F/9') does not exist`."""
    return MetaflowNotFound(f"{obj} does not exist")


def _not_in_namespace(ns: str, why: str) -> MetaflowNamespaceMismatch:
    """Metaflow's error for an object outside the current namespace, and what was looked at."""
    return MetaflowNamespaceMismatch(
        f"Object not in namespace '{ns}': {why}. Switch with namespace('...'), or see every "
        "run with namespace(None)."
    )


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


# -- the store ----------------------------------------------------------------------------------


#: A store folder, as `root=` arguments and `set_root` take it.
StoreRoot = str | os.PathLike[str]

# A context variable, as the namespace: code doing several things at once (tests, services) can
# read different stores side by side, and a block can switch for a while and switch back.
_root: ContextVar[StoreRoot | None] = ContextVar("aioflow_root", default=None)


def set_root(root: StoreRoot | None) -> Path:
    """Read the store at `root` from now on (in this context), as `Flow(...)` etc. do by default.

    `set_root(None)` goes back to finding it: $AIOFLOW_ROOT, else the nearest `.aioflow` in the
    working folder or its parents. Returns the folder the client now reads. A `root=` argument
    (`Flow("MyFlow", root=...)`) wins over it.
    """
    _root.set(root)
    return resolve_root(root)


#: How many stores the client keeps open for reading, the ones used last.
MAX_CACHED_STORES = 8

_stores: OrderedDict[tuple[int, Path], tuple[int, Store]] = OrderedDict()
_stores_lock = threading.Lock()


def shared_store(root: StoreRoot | None = None) -> Store:
    """The store at `root` (default: `set_root`'s, else as `resolve_root` finds it), opened once
    per process.

    Raises StoreError naming the folder when there is no store there. A store folder deleted
    and made again is noticed (its database file is a new one) and reopened.
    """
    path = resolve_root(refuse_empty_root(root if root is not None else _root.get()))
    key = (os.getpid(), path)
    try:
        inode = os.stat(path / "metadata.db").st_ino
    except OSError:
        inode = -1
    with _stores_lock:
        cached = _stores.get(key)
        if cached is not None and cached[0] == inode:
            _stores.move_to_end(key)
            return cached[1]
    store = Store(path, create=False)  # raises StoreError when there is no store
    with _stores_lock:
        _stores[key] = (inode, store)
        while len(_stores) > MAX_CACHED_STORES:  # closed once no object uses them any more
            _stores.popitem(last=False)
    return store


def _latest_attempts(rows: Iterable[TaskRecord]) -> list[TaskRecord]:
    """Rows ordered by task id, attempt: keep each task's latest finished attempt.

    While a retry runs, readers keep seeing the attempt before it; a task with no finished
    attempt yet is represented by its running one.
    """
    latest: dict[int, TaskRecord] = {}
    for row in rows:
        previous = latest.get(row.task_id)
        if previous is None or row.status != "running" or previous.status == "running":
            latest[row.task_id] = row
    return list(latest.values())


# -- the levels ---------------------------------------------------------------------------------

#: The client's classes by name, registered as they are defined (see `_upper`).
_LEVELS: dict[str, type[MetaflowObject]] = {}


def _upper(kind: str) -> Any:
    """The class of level `kind` ("Flow", "Run", "Step", "Task") for a level below it to make."""
    return _LEVELS[kind]


# -- the base class -----------------------------------------------------------------------------


class MetaflowObject:
    """What every client object has: a pathspec, an id, a parent, times, tags, an origin.

    Objects pickle by name (class, pathspec, attempt, store folder, whether the namespace is
    checked) and read the store again when unpickled, as Metaflow's do: a Run kept as an
    artifact, or sent to another process, is the same Run there.
    """

    #: False for objects made with `_namespace_check=False` (Metaflow's keyword), which are
    #: found whatever the current namespace.
    _namespace_check = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _LEVELS.setdefault(cls.__name__, cls)  # the client's own classes are defined first

    def __init__(self, pathspec: str, store: Store | None, root: StoreRoot | None = None) -> None:
        self.pathspec = pathspec
        self.id = pathspec.rsplit("/", 1)[-1]
        self._store = store if store is not None else shared_store(root)

    @property
    def path_components(self) -> list[str]:
        """The pathspec's parts: `['Flow', 'run_id', ...]`."""
        return self.pathspec.split("/")

    @property
    def parent(self) -> MetaflowObject | None:
        """The object one level up (None for a Flow)."""
        return None

    @property
    def created_at(self) -> datetime | None:
        """When the object came to be (a run or task started, an artifact was stored)."""
        return None

    @property
    def finished_at(self) -> datetime | None:
        """When the object was complete (None while it is not)."""
        return None

    @property
    def tags(self) -> frozenset[str]:
        """User and system tags of the run this object belongs to."""
        return self.user_tags | self.system_tags

    @property
    def user_tags(self) -> frozenset[str]:
        """Tags given with --tag or added since, of the run this object belongs to."""
        return frozenset()

    @property
    def system_tags(self) -> frozenset[str]:
        """Tags aioflow attached to the run this object belongs to."""
        return frozenset()

    @property
    def origin_pathspec(self) -> str | None:
        """The pathspec of the object this one was cloned from by a resume, else None."""
        return None

    def is_in_namespace(self) -> bool:
        """True when the current namespace sees this object."""
        ns = get_namespace()
        return ns is None or ns in self.tags

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and repr(other) == repr(self)

    def __hash__(self) -> int:
        return hash(repr(self))

    def __reduce__(self) -> tuple[Any, ...]:
        root = self._store.root
        if root is None:
            raise TypeError(
                f"{self!r} is read from a store in memory: it cannot be pickled (a store "
                "folder can)."
            )
        attempt = getattr(self, "_attempt", None)
        kind = type(self).__name__
        return (_reopen, (kind, self.pathspec, attempt, str(root), self._namespace_check))


def _reopen(
    kind: str, pathspec: str, attempt: int | None, root: str, namespace_check: bool
) -> MetaflowObject:
    """A client object unpickled: the object `kind` names, read again from its store."""
    extra: tuple[Any, ...] = () if attempt is None else (attempt,)
    level: Any = _LEVELS[kind]  # each level's own constructor, with its own keywords
    obj: MetaflowObject = level(pathspec, *extra, root=root, _namespace_check=namespace_check)
    return obj
