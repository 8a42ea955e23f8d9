"""Executors by name: `@step(executor=...)` and `--executor` pick one, the registry builds it.

A step's executor name ("loop" for async bodies, "thread", "process", "dask") is looked up here
when a run starts, so a new place to run bodies is one `register` call. The names a
user may write are checked earlier, by the flow model (`aioflow.decorators.EXECUTORS`).

`overriding` swaps implementations for the runs started inside it (a context variable, so
concurrent runs elsewhere are not affected): tests use it to run steps in a scripted executor.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

from ...exceptions import AioflowException
from .local import LoopExecutor, ThreadExecutor
from .protocol import Executor, ExecutorContext, ExecutorFactory


class ExecutorRegistry:
    """Maps executor names to the factories that build a run's executor of that kind."""

    def __init__(self) -> None:
        self._factories: dict[str, ExecutorFactory] = {}
        self._overrides: contextvars.ContextVar[Mapping[str, ExecutorFactory]] = (
            contextvars.ContextVar("aioflow_executor_overrides", default=MappingProxyType({}))
        )

    def register(self, name: str, factory: ExecutorFactory) -> None:
        """Make `name` build executors with `factory` (replacing an earlier registration)."""
        self._factories[name] = factory

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def factories(self) -> dict[str, ExecutorFactory]:
        """Every name's factory as seen from here: registrations, then overrides on top."""
        return {**self._factories, **self._overrides.get()}

    def factory(self, name: str) -> ExecutorFactory:
        """The factory of `name` as seen from here; a clear error for an unknown name."""
        found = self.factories().get(name)
        if found is None:
            raise AioflowException(
                f"No executor named {name!r}; the registered executors are "
                f"{', '.join(self.names())}."
            )
        return found

    @contextmanager
    def overriding(self, **factories: ExecutorFactory) -> Iterator[None]:
        """Use these factories instead of the registered ones for runs started inside."""
        token = self._overrides.set(MappingProxyType({**self._overrides.get(), **factories}))
        try:
            yield
        finally:
            self._overrides.reset(token)


def _process_executor(context: ExecutorContext) -> Executor:
    # Imported when a run has a process step: the pool, multiprocessing and cloudpickle are
    # tens of milliseconds of every `aioflow run` otherwise.
    from .process import ProcessExecutor

    return ProcessExecutor(context)


def _dask_executor(context: ExecutorContext) -> Executor:
    from .dask_executor import DaskExecutor  # distributed itself is imported on first use

    return DaskExecutor(context)


#: The process-wide registry, with aioflow's own executors.
registry = ExecutorRegistry()
registry.register("loop", LoopExecutor)
registry.register("thread", ThreadExecutor)
registry.register("process", _process_executor)
registry.register("dask", _dask_executor)
