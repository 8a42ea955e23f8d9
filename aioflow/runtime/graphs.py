"""The linted graph of each flow class, built once: most of what a short run costs otherwise.

Reading a class's steps from their source (AST) and linting them costs 1-2 ms, which is most of
what a short run costs from Python (measured, `benchmarks/embedding.py`). The graph is kept in a
dictionary keyed weakly by the class (so a class that is gone, such as one redefined in a
notebook cell, takes its graph with it), and only while the class's steps are the same
functions.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..decorators import is_step
from ..graph import FlowGraph

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


__all__ = ["linted_graph"]
