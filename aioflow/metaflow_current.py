"""Metaflow's `metaflow.metaflow_current` module path: `from aioflow.metaflow_current import
current`, the same object as `aioflow.current`."""

from .current import Current, current

__all__ = ["Current", "current"]
