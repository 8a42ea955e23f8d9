"""The client's namespace: which runs `Flow`, `Run` and friends can see.

Kept in a context variable rather than a module global, so code running several things at once
(tests, services) can use different namespaces side by side. The default namespace is
`user:<name>` of the current user; `namespace(None)` sees every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from ..current import current_username

_UNSET: Final = "__aioflow_default_namespace__"
_namespace: ContextVar[str | None] = ContextVar("aioflow_namespace", default=_UNSET)


def default_namespace() -> str:
    """Return to the default namespace (`user:<name>`) and return it."""
    ns = f"user:{current_username()}"
    _namespace.set(ns)
    return ns


def _check(ns: object) -> str | None:
    if ns is not None and (not isinstance(ns, str) or not ns):
        raise ValueError(f"A namespace is a non-empty tag string or None, not {ns!r}.")
    return ns


def namespace(ns: str | None) -> str | None:
    """Switch to namespace `ns` (a tag such as `user:alice`), or to the global one with None."""
    _namespace.set(_check(ns))
    return ns


@contextmanager
def scoped_namespace(ns: str | None) -> Iterator[str | None]:
    """`with scoped_namespace(None): ...`: use `ns` inside the block, the previous one after."""
    token = _namespace.set(_check(ns))
    try:
        yield ns
    finally:
        _namespace.reset(token)


def get_namespace() -> str | None:
    """The current namespace (None means every run is visible)."""
    ns = _namespace.get()
    if ns == _UNSET:
        return f"user:{current_username()}"
    return ns
