"""What the runtime keeps between runs so a run costs microseconds, not milliseconds, to start.

Two things, both measured before they were added (`benchmarks/embedding.py`):

- The linted graph of a flow class. Reading a class's steps from their source (AST) and
  linting them costs 1-2 ms, which is most of what a short run costs from Python. It is kept in
  a dictionary keyed weakly by the class (so a class that is gone, such as one redefined in a
  notebook cell, takes its graph with it), and only while the class's steps are the same
  functions.
- An open connection to each store used on an event loop. SQLite checkpoints the write-ahead
  log when the last connection to a database closes, which costs 10-20 ms (an fsync). One idle
  connection per store and loop keeps that from happening at the end of every run: the log is
  checkpointed in the background of commits instead (SQLite's autocheckpoint), in the writer's
  thread. It lives in an anyio `RunVar`, so it goes away with its loop.

And one limit: aioflow's own blocking work (SQLite, files, preparing a run) goes to anyio's
worker threads through `offload()`, at most `OFFLOAD_THREADS` calls at once per event loop.
anyio starts a worker thread on the event loop's thread whenever none is idle, and a thread start
waits for the new thread to get the GIL: a burst of a hundred runs would otherwise grow the pool
to its 40 threads, holding the loop up for a hundred milliseconds and more, and then keep forty
threads fighting the loop for the GIL. Four threads keep up with SQLite on two cores.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

from ..decorators import is_step
from ..graph import FlowGraph
from ..store import Store

_graphs: weakref.WeakKeyDictionary[type, tuple[tuple[Any, ...], FlowGraph]] = (
    weakref.WeakKeyDictionary()
)
_building = threading.Lock()


def _steps_of(flow_cls: type) -> tuple[Any, ...]:
    """The identity of a class's steps: (name, function) pairs, as FlowGraph finds them."""
    found = []
    for klass in flow_cls.__mro__[:-1]:  # not `object`
        for name, obj in vars(klass).items():
            if is_step(obj):
                found.append((name, obj))
    return tuple(found)


def _same_steps(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    return len(old) == len(new) and all(
        a[0] == b[0] and a[1] is b[1] for a, b in zip(old, new, strict=True)
    )


def linted_graph(flow_cls: type) -> FlowGraph:
    """The graph of `flow_cls`, linted (raises LintError); built once per class and steps.

    Any thread. Graphs are built one at a time: CPython 3.11's `ast` module can fail with
    "AST constructor recursion depth mismatch" when threads parse at the same time.
    """
    steps = _steps_of(flow_cls)
    cached = _graphs.get(flow_cls)
    if cached is not None and _same_steps(cached[0], steps):
        return cached[1]
    with _building:
        cached = _graphs.get(flow_cls)
        if cached is not None and _same_steps(cached[0], steps):
            return cached[1]
        graph = FlowGraph(flow_cls)
        graph.lint()
        _graphs[flow_cls] = (steps, graph)
        return graph


class StoreKeeper:
    """One idle connection per store folder, held for as long as the event loop runs."""

    def __init__(self) -> None:
        self._held: dict[Path, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    def holds(self, root: Path) -> bool:
        """True when a store at `root` was opened on this loop (its database exists)."""
        return root / "metadata.db" in self._held

    def hold(self, store: Store) -> None:
        """Keep a connection to `store`'s database open (any thread; cheap once held)."""
        path = store.db.path
        if path in self._held:
            return
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # attach to the WAL index
        with self._lock:
            if path in self._held:
                conn.close()
            else:
                self._held[path] = conn

    def __del__(self) -> None:
        for conn in self._held.values():
            conn.close()


_keeper: RunVar[StoreKeeper] = RunVar("aioflow_store_keeper")


def store_keeper() -> StoreKeeper:
    """The running event loop's StoreKeeper (call on the loop's thread)."""
    try:
        return _keeper.get()
    except LookupError:
        keeper = StoreKeeper()
        _keeper.set(keeper)
        return keeper


T = TypeVar("T")

#: aioflow's own calls into worker threads running at once, per event loop.
OFFLOAD_THREADS = 4

_limiter: RunVar[anyio.CapacityLimiter] = RunVar("aioflow_offload_limiter")


def offload_limiter() -> anyio.CapacityLimiter:
    """The running event loop's limiter for aioflow's own blocking calls."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(OFFLOAD_THREADS)
        _limiter.set(limiter)
        return limiter


async def offload(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in a worker thread, within the loop's `offload_limiter()`.

    Only for calls that never wait for another offloaded call (that could deadlock).
    """
    return await anyio.to_thread.run_sync(func, *args, limiter=offload_limiter())


__all__ = [
    "OFFLOAD_THREADS",
    "StoreKeeper",
    "linted_graph",
    "offload",
    "offload_limiter",
    "store_keeper",
]
