"""A scripted executor for tests: worker deaths, timeouts and errors without real processes.

`FakeExecutor` runs sync bodies inline on the loop's thread, except the attempts its script
names: those end the way the script says, through the same errors the real executors report
(`worker_died`, `timeout_error`, `WorkerSetupError`), without running the body. Install it for
the runs a block starts with `scripted(...)`:

    with scripted({("work", 0): Dies(), ("work", 1): TimesOut()}) as fake:
        run = await run_in_temp_store(MyFlow, root)
    assert fake.attempts == [("start", 0), ("work", 0), ("work", 1), ...]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from aioflow.decorators import StepOptions
from aioflow.exceptions import WorkerSetupError
from aioflow.runtime.executors import ExecutorContext, failed_outcome, registry
from aioflow.runtime.processes import worker_died
from aioflow.runtime.task import RunEnv, TaskOutcome, TaskSpec, run_sync_task, timeout_error


class Fault(Protocol):
    """How a scripted attempt ends instead of running its body."""

    def outcome(self, env: RunEnv, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        """The attempt's outcome."""
        ...


@dataclass(frozen=True)
class Dies:
    """The attempt's worker process dies (by default killed by SIGKILL)."""

    exitcode: int = -9

    def outcome(self, env: RunEnv, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        return failed_outcome(env, spec, worker_died(spec.task_id, spec.step, self.exitcode))


@dataclass(frozen=True)
class TimesOut:
    """The attempt runs past its step's @timeout (which the step must have)."""

    def outcome(self, env: RunEnv, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        assert options.timeout is not None, f"step {spec.step} has no @timeout to run past"
        return failed_outcome(env, spec, timeout_error(spec, options.timeout))


@dataclass(frozen=True)
class Raises:
    """The attempt's body raises `error`."""

    error: BaseException

    def outcome(self, env: RunEnv, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        return failed_outcome(env, spec, self.error)


@dataclass(frozen=True)
class SetupFails:
    """The attempt's worker cannot load the flow."""

    def outcome(self, env: RunEnv, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        return failed_outcome(env, spec, WorkerSetupError("the worker could not load the flow"))


#: Faults by (step, attempt number); attempts not listed run their body.
Script = Mapping[tuple[str, int], Fault]


class FakeExecutor:
    """Runs sync bodies inline, except the attempts its script fails; records every attempt."""

    def __init__(
        self, context: ExecutorContext, script: Script, attempts: list[tuple[str, int]]
    ) -> None:
        self.env = context.env
        self.script = script
        self.attempts = attempts

    async def attempt(self, spec: TaskSpec, options: StepOptions) -> TaskOutcome:
        self.attempts.append((spec.step, spec.attempt))
        fault = self.script.get((spec.step, spec.attempt))
        if fault is None:
            return run_sync_task(self.env, spec)
        return fault.outcome(self.env, spec, options)

    async def aclose(self) -> None:
        pass


@dataclass
class Scripted:
    """What `scripted` yields: the attempts its executor saw, in order, as (step, attempt)."""

    attempts: list[tuple[str, int]]


@contextmanager
def scripted(script: Script, *, executor: str = "thread") -> Iterator[Scripted]:
    """Run the steps of executor `executor` in a `FakeExecutor` following `script`, for the
    runs started inside the block."""
    seen = Scripted([])

    def build(context: ExecutorContext) -> FakeExecutor:
        return FakeExecutor(context, script, seen.attempts)

    with registry.overriding(**{executor: build}):
        yield seen
