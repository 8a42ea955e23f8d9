"""`@pypi`, `@conda`, `@pypi_base` and `@conda_base`: the packages a step (or flow) needs.

Metaflow builds an environment holding the named packages for the step. aioflow installs
nothing at run time: it runs in the current environment, and checks, before the run starts,
that every named package is installed there (by distribution name, or importable by module
name). A missing one fails the run with the list of what to install. Versions are not
compared: the environment is the user's to pin. `disabled=True` skips the check, as it disables
the environment in Metaflow.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from .decorators import FlowDecorator, StepDecorator, flow_decorator, register, step_decorator
from .exceptions import FlowDefinitionError

__all__ = [
    "CondaBaseDecorator",
    "CondaDecorator",
    "PypiBaseDecorator",
    "PypiDecorator",
    "conda",
    "conda_base",
    "missing_packages",
    "pypi",
    "pypi_base",
]

# Names conda environments list that are not Python packages of this interpreter.
_NOT_PYTHON_PACKAGES = frozenset({"python", "pip"})


def _installed(name: str) -> bool:
    # Here, not at the top: importlib.metadata (with the email package it reads metadata
    # with) is about 20 ms that `import aioflow` would pay for a check few flows use.
    from importlib import metadata

    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        pass
    module = name.replace("-", "_")
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _bare_name(spec: str) -> str:
    """ "conda-forge::scikit-learn[extra]>=1" -> "scikit-learn"."""
    name = spec.rpartition("::")[2]
    return re.split(r"[\[<>=!~ ;]", name, maxsplit=1)[0].strip()


def missing_packages(packages: Mapping[str, Any]) -> list[str]:
    """The names in `packages` (name -> version) that are not installed here, sorted."""
    missing = set()
    for spec in packages:
        name = _bare_name(str(spec))
        if name and name.lower() not in _NOT_PYTHON_PACKAGES and not _installed(name):
            missing.add(name)
    return sorted(missing)


class _PackagesMixin:
    name: ClassVar[str]
    attributes: dict[str, Any]

    def _packages(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for attr in ("packages", "libraries"):
            value = self.attributes.get(attr) or {}
            if not isinstance(value, Mapping):
                raise FlowDefinitionError(
                    f"@{self.name}({attr}=...) takes a dict of package name -> version."
                )
            merged.update(value)
        return merged

    def _check_packages(self) -> None:
        if self.attributes.get("disabled") in (True, "true", "True", "1"):
            return
        missing = missing_packages(self._packages())
        if missing:
            raise FlowDefinitionError(
                f"@{self.name} names packages that are not installed in this environment: "
                f"{', '.join(missing)}. aioflow installs nothing at run time: install them "
                f"(e.g. pip install {' '.join(missing)}) and run again."
            )


class PypiDecorator(_PackagesMixin, StepDecorator):
    """Metaflow's `@pypi(packages={...}, python=...)`: checked, not installed."""

    name = "pypi"
    defaults: ClassVar[dict[str, Any]] = {"packages": {}, "python": None, "disabled": None}

    def validate(self) -> None:
        """`packages` is a dict."""
        self._packages()

    def check_run(self) -> None:
        """Every package is installed here."""
        self._check_packages()


class CondaDecorator(PypiDecorator):
    """Metaflow's `@conda(packages={...}, libraries={...}, python=...)`: checked, not
    installed."""

    name = "conda"
    defaults: ClassVar[dict[str, Any]] = {
        "packages": {},
        "libraries": {},
        "python": None,
        "disabled": None,
    }


class PypiBaseDecorator(_PackagesMixin, FlowDecorator):
    """Metaflow's `@pypi_base(packages={...}, python=...)` for every step: checked, not
    installed."""

    name = "pypi_base"
    defaults: ClassVar[dict[str, Any]] = {"packages": {}, "python": None, "disabled": None}

    def validate(self) -> None:
        """`packages` is a dict."""
        self._packages()

    def check_run(self) -> None:
        """Every package is installed here."""
        self._check_packages()


class CondaBaseDecorator(PypiBaseDecorator):
    """Metaflow's `@conda_base(packages={...}, libraries={...}, python=...)` for every step:
    checked, not installed."""

    name = "conda_base"
    defaults: ClassVar[dict[str, Any]] = {
        "packages": {},
        "libraries": {},
        "python": None,
        "disabled": None,
    }


register(PypiDecorator)
register(CondaDecorator)
pypi = step_decorator(PypiDecorator)
conda = step_decorator(CondaDecorator)
pypi_base = flow_decorator(PypiBaseDecorator)
conda_base = flow_decorator(CondaBaseDecorator)
