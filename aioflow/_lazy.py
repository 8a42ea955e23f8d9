"""Names a package exports but imports only when first used (PEP 562's module `__getattr__`).

`import aioflow` and the command line's first steps must stay fast: the client, typer and the
card readers load when a program uses them, not with the package that exports them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    module: str, names: Mapping[str, str], package: str | None = None
) -> Callable[[str], Any]:
    """The `__getattr__` of `module`: a name of `names` is imported from its module (relative to
    `package`, `module` by default) on first use and kept in `module`, so later lookups find it
    without coming here; any other name is an AttributeError."""
    namespace = sys.modules[module].__dict__
    anchor = module if package is None else package

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target, anchor), name)
        namespace[name] = value
        return value

    return __getattr__
