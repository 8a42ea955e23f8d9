"""Running one task attempt where its step says, through the executor of that name.

`Dispatcher.attempt` applies the step's `@resources` reservation (the same wherever a body runs)
and hands the attempt to the step's executor, which enforces `@timeout` its own way and always
returns a `TaskOutcome`. Executors are built on first use from the registry's factories, as seen
when the dispatcher was made (see `ExecutorRegistry.overriding`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping

from ..decorators import StepOptions
from .executors import (
    CallbackExecutor,
    Executor,
    ExecutorContext,
    ExecutorFactory,
    registry,
)
from .resources import ResourcePool
from .task import TaskOutcome, TaskSpec

#: One step's attempts: called with a task's spec, returns its outcome (see `attempter`).
Attempter = Callable[[TaskSpec], Awaitable[TaskOutcome]]


def _reserves(options: StepOptions) -> bool:
    """True when the step's @resources ask for a reservation."""
    return bool(options.cpu or options.memory or options.gpu)


def _attempt(executor: Executor, options: StepOptions, spec: TaskSpec) -> Awaitable[TaskOutcome]:
    return executor.attempt(spec, options)


class Dispatcher:
    """Where a run's task bodies execute: the run's executors, by name."""

    def __init__(
        self,
        context: ExecutorContext,
        factories: Mapping[str, ExecutorFactory] | None = None,
    ) -> None:
        """`factories` by executor name: the registry's (with its overrides) when None; names
        missing from the given ones are built from the registry."""
        self.context = context
        self.resources = ResourcePool()
        self._factories = dict(registry.factories() if factories is None else factories)
        self._executors: dict[str, Executor] = {}

    def executor(self, name: str) -> Executor:
        """The run's executor called `name`, built on first use."""
        executor = self._executors.get(name)
        if executor is None:
            factory = self._factories.get(name)
            if factory is None:
                factory = registry.factory(name)  # raises the error naming the known ones
            executor = self._executors[name] = factory(self.context)
        return executor

    async def start(self, steps: Mapping[str, StepOptions]) -> None:
        """Build the executors the run's steps use and let those that can check themselves
        before any task starts (the Dask executor reaches and checks its cluster): a run that
        cannot work fails here, with nothing run. `steps`: each step's options, by name."""
        by_executor: dict[str, dict[str, StepOptions]] = {}
        for name, options in steps.items():
            by_executor.setdefault(options.executor, {})[name] = options
        for executor_name, using in by_executor.items():
            start = getattr(self.executor(executor_name), "start", None)
            if start is not None:
                await start(using)

    def direct(self, options: StepOptions) -> CallbackExecutor | None:
        """The executor to `submit` attempts of a step with these options to, or None when
        they must go through `attempt` (a @resources reservation, an executor that cannot)."""
        if _reserves(options):
            return None
        executor = self.executor(options.executor)
        if isinstance(executor, CallbackExecutor) and executor.can_submit(options):
            return executor
        return None

    def attempt(self, spec: TaskSpec, options: StepOptions) -> Awaitable[TaskOutcome]:
        """Run one attempt of a task and return its outcome (never raises for the step)."""
        return self.attempter(options)(spec)

    def attempter(self, options: StepOptions) -> Attempter:
        """`attempt` for the tasks of a step with these options: the executor and the
        reservation are looked up once, and calling it runs no frame of the dispatcher's.

        An executor may offer `bind(options)`, the same for itself (the loop's returns its
        task runner with the step's options bound in, one layer of coroutine less per task).
        """
        executor = self.executor(options.executor)
        # An executor that places work elsewhere (Dask) asks its workers for the resources.
        if _reserves(options) and getattr(executor, "reserves_locally", True):
            return functools.partial(self._reserved, executor, options)
        bind = getattr(executor, "bind", None)
        if bind is not None:
            bound: Attempter = bind(options)
            return bound
        return functools.partial(_attempt, executor, options)

    async def _reserved(
        self, executor: Executor, options: StepOptions, spec: TaskSpec
    ) -> TaskOutcome:
        async with self.resources.reserve(options.cpu, options.memory, options.gpu):
            return await executor.attempt(spec, options)

    async def aclose(self) -> None:
        """Close every executor the run started (worker processes are stopped)."""
        executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            await executor.aclose()
