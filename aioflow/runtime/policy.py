"""What follows a failed attempt: another attempt (`@retry`), a caught failure (`@catch`), or
the task's failure, which fails the run."""

from __future__ import annotations

from dataclasses import replace

from ..decorators import StepOptions
from ..exceptions import WorkerSetupError
from ..graph import FlowGraph
from .catching import caught
from .task import RunEnv, TaskOutcome, TaskSpec


class FailurePolicy:
    """Judges failed attempts by their step's `@retry` and `@catch`."""

    def __init__(self, env: RunEnv, options: dict[str, StepOptions]) -> None:
        self.env = env
        self.graph: FlowGraph = env.graph
        self.options = options

    def verdict(self, outcome: TaskOutcome, may_retry: bool) -> str:
        """What follows the failed attempt `outcome`: "retry", "catch" or "fail".

        `may_retry` is False once the run is stopping: no new attempt starts then.
        """
        assert outcome.error is not None
        if isinstance(outcome.error.exception, WorkerSetupError):
            # A worker that could not load the flow fails every attempt the same way: a retry
            # cannot help, and @catch would hide that aioflow never ran the step.
            return "fail"
        options = self.options[outcome.spec.step]
        if may_retry and outcome.spec.attempt < options.retries:
            return "retry"
        return "catch" if options.catch is not None else "fail"

    def apply(self, outcome: TaskOutcome, verdict: str) -> TaskOutcome | TaskSpec:
        """The task's final outcome, or the spec of its next attempt, as `verdict` says (the
        tasks of a @parallel step share their gang's verdict)."""
        spec = outcome.spec
        if verdict == "retry":
            return replace(spec, attempt=spec.attempt + 1, started_at=0.0, stored=False)
        if verdict == "catch":
            catch = self.options[spec.step].catch
            assert catch is not None
            return caught(outcome, catch, self.graph[spec.step], self.env.put_large)
        return outcome

    def judge(self, outcome: TaskOutcome, may_retry: bool) -> TaskOutcome | TaskSpec:
        """The task's final outcome, or the spec of its next attempt.

        `may_retry` is False once the run is stopping: no new attempt starts then.
        """
        if outcome.error is None:
            return outcome
        return self.apply(outcome, self.verdict(outcome, may_retry))
