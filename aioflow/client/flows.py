"""The store's flows and each flow's runs: `Metaflow()` and `Flow(name)`.

`Metaflow()` lists every flow with a run the current namespace sees; `Flow(name)` pages
through the flow's runs, newest first, `_PAGE` rows at a time, keeping those carrying the
namespace's tag (and any tags asked for), so a store of many runs is never read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ..exceptions import InvalidPathspec, MetaflowNamespaceMismatch, MetaflowNotFound
from ..store import Store
from .base import (
    MetaflowObject,
    StoreRoot,
    _not_found,
    _not_in_namespace,
    _parse,
    _time,
    shared_store,
)
from .namespaces import get_namespace
from .runs import Run

_PAGE = 100


class Metaflow:
    """Every flow of the store: `Metaflow().flows`, `Metaflow()['MyFlow']`.

    `root=` reads the store in that folder instead of the default one (see `set_root`).
    """

    def __init__(self, *, root: StoreRoot | None = None, _store: Store | None = None) -> None:
        self._store = _store if _store is not None else shared_store(root)

    @property
    def flows(self) -> list[Flow]:
        """Every flow with at least one run in the current namespace, by name."""
        return list(self)

    def __iter__(self) -> Iterator[Flow]:
        ns = get_namespace()
        for name in self._store.metadata.flows():
            flow = Flow(name, _store=self._store, _checked=True)
            if ns is None or flow.latest_run is not None:
                yield flow

    def __getitem__(self, name: str) -> Flow:
        return Flow(name, _store=self._store)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (MetaflowNotFound, MetaflowNamespaceMismatch, InvalidPathspec):
            return False
        return True

    def __repr__(self) -> str:
        return "Metaflow()"


class Flow(MetaflowObject):
    """All runs of one flow, newest first (`root=`: of the store in that folder)."""

    def __init__(
        self,
        pathspec: str,
        *,
        root: StoreRoot | None = None,
        _store: Store | None = None,
        _checked: bool = False,
        _namespace_check: bool = True,
    ):
        _parse("Flow", pathspec)
        super().__init__(pathspec, _store, root)
        if _checked:
            return
        if self._store.metadata.latest_run_id(pathspec) is None:
            raise _not_found(f"Flow('{pathspec}')")
        self._namespace_check = _namespace_check
        ns = get_namespace()
        if ns is not None and _namespace_check and self.latest_run is None:
            # as Metaflow: a flow is in a namespace when one of its runs carries the tag
            raise _not_in_namespace(ns, f"no run of Flow('{pathspec}') carries the tag {ns!r}")

    def runs(self, *tags: str) -> Iterator[Run]:
        """Runs visible in the current namespace carrying every tag given, newest first."""
        ns = get_namespace()
        wanted = set(tags) | ({ns} if ns is not None else set())
        before: int | None = None
        while True:
            page = self._store.metadata.run_page(self.id, before=before, limit=_PAGE)
            for row in page:
                run = Run._from_row(self, row)
                if wanted <= run.tags:
                    yield run
            if len(page) < _PAGE:
                return
            before = page[-1].run_id

    def __iter__(self) -> Iterator[Run]:
        return self.runs()

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}", _store=self._store, _flow=self)

    def __contains__(self, run_id: object) -> bool:
        try:
            self[run_id]  # type: ignore[index]
        except (MetaflowNotFound, MetaflowNamespaceMismatch, InvalidPathspec):
            return False
        return True

    @property
    def latest_run(self) -> Run | None:
        """The newest run in the current namespace (running or not)."""
        return next(self.runs(), None)

    @property
    def latest_successful_run(self) -> Run | None:
        """The newest successful run in the current namespace."""
        return next((r for r in self.runs() if r.successful), None)

    @property
    def created_at(self) -> datetime | None:
        """When the flow's first stored run started."""
        return _time(self._store.metadata.first_run_time(self.id))

    def is_in_namespace(self) -> bool:
        """True when at least one run of the flow is in the current namespace."""
        return get_namespace() is None or self.latest_run is not None
