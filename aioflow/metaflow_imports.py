"""Running an unmodified Metaflow flow file: its `metaflow` imports resolve to aioflow.

`aioflow run --metaflow-imports flow.py` and `load_flow(path, metaflow_imports=True)` import a
flow file written for Metaflow as it is: `from metaflow import FlowSpec, step` gets aioflow's,
`metaflow.exception`, `metaflow.client`, `metaflow.metaflow_current` get aioflow's modules of
the same name. Only that flow is affected, and an installed Metaflow is left alone:

- while the file is imported, a `sys.meta_path` finder answers `metaflow` and `metaflow.<sub>`
  with `aioflow` and `aioflow.<sub>` (so helper modules the file imports are mapped too), and
  any Metaflow modules already in `sys.modules` are set aside; afterwards the finder is removed,
  the aliases dropped and Metaflow's modules put back;
- the flow module gets its own `__builtins__` whose `__import__` maps the same names, so an
  import inside a step (`from metaflow import current`, as Metaflow's tutorials write) also gets
  aioflow's, whenever the step runs. Steps run by the process executor are rebuilt in a worker
  without it: there, such an import finds Metaflow's own, or nothing.

Changing `sys.modules` is process-wide: load Metaflow flow files at start-up, not while other
threads import Metaflow.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_METAFLOW = "metaflow"
_AIOFLOW = "aioflow"


def aioflow_name(name: str) -> str | None:
    """The aioflow module that stands for Metaflow module `name` (None: not a Metaflow name)."""
    if name == _METAFLOW:
        return _AIOFLOW
    if name.startswith(_METAFLOW + "."):
        return _AIOFLOW + name[len(_METAFLOW) :]
    return None


def _counterpart(name: str) -> str | None:
    """`aioflow_name(name)`, checked to exist: ModuleNotFoundError naming both otherwise."""
    target = aioflow_name(name)
    if target is None or target in sys.modules:
        return target
    try:
        found = importlib.util.find_spec(target)  # imports the parent packages, if need be
    except ModuleNotFoundError:  # a parent is missing
        found = None
    if found is None:
        # No `name=`: Python 3.15 imports the named module's parent to add a hint to the error
        # when it is formatted. `metaflow.plugins`'s fails unless Metaflow is installed, and
        # formatting then raises (python/cpython#151631); `aioflow.plugins`'s suggests an
        # unrelated aioflow module ("Did you mean: 'aioflow.lint'?").
        raise ModuleNotFoundError(
            f"No module named {name!r}: aioflow has no counterpart of it ({target})"
        )
    return target


class _MetaflowAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `metaflow[.<sub>]` as the already-imported module `aioflow[.<sub>]` itself."""

    def __init__(self) -> None:
        # The aioflow modules' own specs, by alias, from create_module to exec_module.
        self._own_specs: dict[str, ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        counterpart = _counterpart(fullname)
        if counterpart is None:
            return None
        # A package only when aioflow's module is one: the import system would otherwise give
        # a plain module (aioflow.exception) a `__path__` of its own.
        is_package = hasattr(importlib.import_module(counterpart), "__path__")
        return importlib.util.spec_from_loader(fullname, self, is_package=is_package)

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        target = aioflow_name(spec.name)
        assert target is not None  # find_spec answers Metaflow names only
        # The aioflow module itself (its own name and spec kept): `metaflow.FlowSpec` *is*
        # `aioflow.FlowSpec`, and isinstance checks across both names hold.
        module = importlib.import_module(target)
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is aioflow's, imported already. The import machinery
        gave it the alias's spec: its own goes back (`importlib.resources`, pickling and
        reloading read it)."""
        assert module.__spec__ is not None
        module.__spec__ = self._own_specs.pop(module.__spec__.name)


def _is_metaflow(name: str) -> bool:
    return aioflow_name(name) is not None


@contextmanager
def metaflow_aliases() -> Iterator[None]:
    """While the block runs, `import metaflow[.<sub>]` imports `aioflow[.<sub>]`.

    Metaflow modules imported before are set aside and put back afterwards, with
    `sys.modules['metaflow']`; the aliases made inside the block are dropped.
    """
    saved = {name: mod for name, mod in sys.modules.items() if _is_metaflow(name)}
    for name in saved:
        del sys.modules[name]
    finder = _MetaflowAliases()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if _is_metaflow(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


def _import_as_aioflow(
    name: str,
    globals: Mapping[str, Any] | None = None,
    locals: Mapping[str, Any] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> ModuleType:
    """`__import__` with `metaflow[.<sub>]` read as `aioflow[.<sub>]` (absolute imports)."""
    if level == 0:
        target = _counterpart(name)
        if target is not None:
            name = target
    return builtins.__import__(name, globals, locals, fromlist, level)


def metaflow_builtins() -> dict[str, Any]:
    """Builtins for a flow module whose `import metaflow...` statements mean aioflow."""
    namespace = dict(vars(builtins))
    namespace["__import__"] = _import_as_aioflow
    return namespace


__all__ = ["aioflow_name", "metaflow_aliases", "metaflow_builtins"]
