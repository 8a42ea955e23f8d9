"""The `@step` decorator, which marks a FlowSpec method as a node of the flow's graph.

Step decorators that change how a step runs (`@retry`, `@catch`, ...) attach themselves to the
list `func.decorators` that `@step` creates, so the runtime finds them on the function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def step(func: F) -> F:
    """Mark a method of a FlowSpec subclass as a step.

    The method may be a plain `def` (run in a worker thread) or an `async def` (run on the event
    loop). A step takes `self`, and a join step also takes `inputs`.
    """
    if not callable(func) or not hasattr(func, "__name__"):
        raise TypeError(f"@step decorates a method of a FlowSpec subclass, got {func!r}")
    func.is_step = True  # type: ignore[attr-defined]
    func.name = func.__name__  # type: ignore[attr-defined]
    if not hasattr(func, "decorators"):
        func.decorators = []  # type: ignore[attr-defined]
    func.is_async = inspect.iscoroutinefunction(func)  # type: ignore[attr-defined]
    return func


def is_step(obj: Any) -> bool:
    """Return True when `obj` is a function marked with `@step`."""
    return callable(obj) and getattr(obj, "is_step", False) is True
