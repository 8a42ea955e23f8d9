"""Executors that run task bodies in this process: on the event loop, or in the run's threads.

`InlineExecutor` is for tests only: it runs sync bodies on the loop's own thread, so a test of
the scheduler needs no worker threads (and no @timeout can be enforced).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from ...decorators import StepOptions
from ..task import (
    TaskOutcome,
    TaskRun,
    TaskSpec,
    run_async_task,
    run_sync_attempt,
    run_sync_task,
    timeout_error,
)
from .protocol import Done, ExecutorContext

#: Added to the @timeout message of a sync step, whose thread goes on running.
ABANDONED_NOTE = (
    " Its thread cannot be stopped, so it was abandoned and may still be running; "
    'use @step(executor="process") for a step that must be stopped on timeout.'
)


class LoopExecutor:
    """Async step bodies, awaited on the event loop (snapshots go to the run's threads)."""

    def __init__(self, context: ExecutorContext) -> None:
        self.env = context.env
        self.lane = context.lane

    def attempt(self, spec: TaskSpec, options: StepOptions) -> Coroutine[Any, Any, TaskOutcome]:
        """Await the body; past its @timeout it is cancelled and the attempt fails.

        Returns `run_async_task`'s coroutine rather than awaiting it in one of its own.
        """
        return self.bind(options)(spec)

    def bind(self, options: StepOptions) -> Callable[[TaskSpec], Coroutine[Any, Any, TaskOutcome]]:
        """`attempt` with a step's options bound in (see `Dispatcher.attempter`): calling it
        runs no frame of its own."""
        return functools.partial(run_async_task, self.env, self.lane.run, options.timeout)

    async def aclose(self) -> None:
        """Nothing to release: the run owns its thread lane."""


class ThreadExecutor:
    """Sync step bodies, in the run's worker threads (`ThreadLane`)."""

    def __init__(self, context: ExecutorContext) -> None:
        self.env = context.env
        self.lane = context.lane

    def can_submit(self, options: StepOptions) -> bool:
        """True without a @timeout (only `attempt` enforces one) on asyncio (see
        `ThreadLane.accepts_callbacks`)."""
        return options.timeout is None and self.lane.accepts_callbacks()

    def submit(self, spec: TaskSpec, done: Done) -> None:
        """Start the body in a worker thread; `done(ok, outcome)` is called on the loop."""
        self.lane.submit(run_sync_task, (self.env, spec), done)

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        """Run the body in a worker thread; past its @timeout the thread is abandoned, and the
        attempt keeps the artifacts it had set and the lines it had printed by then."""
        if options.timeout is None:
            return await self.lane.run(run_sync_task, self.env, spec)
        run = TaskRun(self.env, spec)
        with anyio.move_on_after(options.timeout) as scope:
            outcome = await self.lane.run(run_sync_attempt, run)
            assert outcome is not None  # only this coroutine abandons the run
            return outcome
        if scope.cancelled_caught:
            # A thread cannot be stopped: it is left to finish on its own, its result unused.
            frozen = run.abandon()  # (the lane abandoned the job when its wait was cancelled)
            error = timeout_error(spec, options.timeout, ABANDONED_NOTE)
            return await self.lane.run(run.finish, error, frozen)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Nothing to release: the run owns its thread lane."""


class InlineExecutor:
    """Sync step bodies run on the event loop's thread, one at a time. For tests only.

    A body blocks the loop while it runs, so nothing else of the run (or of the process)
    progresses meanwhile, and a @timeout cannot be enforced: it is ignored. What it buys a test
    is determinism and speed: no worker threads, no hand-offs between threads.
    """

    def __init__(self, context: ExecutorContext) -> None:
        self.env = context.env

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        """Run the body now, on the loop's thread."""
        return run_sync_task(self.env, spec)

    async def aclose(self) -> None:
        """Nothing to release."""
