"""The N tasks of a @parallel step as one gang: they succeed, fail and retry together.

Metaflow runs the tasks of a `num_parallel=N` split as one unit: locally its control task
(node 0) starts the other N-1 and fails when any of them fails; on a cluster they are one
multi-node job, which fails as a whole. @retry runs the unit again, @catch catches it. Here each
node is a task of its own (its own row, its own executor slot or Dask worker), so the scheduler
keeps them together, one `Round` per attempt of the gang:

- A node whose attempt fails stops the others still running (their attempts are cancelled: a
  Dask future is cancelled, a worker process killed, a thread abandoned, an async body
  cancelled), and a node that had not started yet does not run its body.
- A node that finishes waits for the round to end: nothing follows a gang before all N ended.
  Then either every node completes, or the round failed and the failed node's @retry and
  @catch, judged once for all N, apply to every node: all N run again with the next attempt
  number, or all N are caught (the join sees N inputs), or the node that failed fails the run
  and the others are stored as failed with it. The others' error is `ParallelStepFailed`,
  naming the node that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from ..exceptions import ParallelStepFailed
from ..transitions import PARALLEL_FOREACH
from .task import ErrorInfo, TaskOutcome, TaskSpec


def gang_node(spec: TaskSpec) -> tuple[int, int, int] | None:
    """(split task id, number of nodes, node index) of a task of a @parallel step, else None."""
    if not spec.frames:
        return None
    split_id, count, index, _, var, _ = spec.frames[-1]
    return (split_id, count, index) if var == PARALLEL_FOREACH else None


@dataclass(eq=False)
class Round:
    """One attempt of one gang: how its nodes' attempts ended, and what follows."""

    size: int
    #: the attempts that ended, by node index
    outcomes: dict[int, TaskOutcome] = field(default_factory=dict)
    #: the first node attempt that failed, if one did
    failure: TaskOutcome | None = None
    #: the attempts running now, by node index (cancelled when another node fails)
    running: dict[int, anyio.CancelScope] = field(default_factory=dict)
    #: set once every node's attempt ended
    ended: anyio.Event = field(default_factory=anyio.Event)
    #: "retry", "catch" or "fail" once the failed round was judged
    verdict: str | None = None
    #: nodes that have not yet read the round's end (it is forgotten after the last)
    readers: int = 0

    def __post_init__(self) -> None:
        self.readers = self.size

    def end(self, index: int, outcome: TaskOutcome) -> None:
        """Node `index`'s attempt ended with `outcome`; the first failure stops the others."""
        self.running.pop(index, None)
        self.outcomes[index] = outcome
        if outcome.error is not None and self.failure is None:
            self.failure = outcome
            for scope in self.running.values():
                scope.cancel()
        if len(self.outcomes) == self.size:
            self.ended.set()

    def fail_the_rest(self) -> None:
        """Make every node's attempt that did not fail by itself fail with the one that did."""
        failure = self.failure
        assert failure is not None and failure.error is not None
        for outcome in self.outcomes.values():
            if outcome.error is None:
                _fail_with(outcome, failure, "finished, but fails with it")


def stopped_error(spec: TaskSpec, failure: TaskOutcome, how: str) -> ParallelStepFailed:
    """The error of node attempt `spec` when another node of its gang failed (`failure`)."""
    assert failure.error is not None
    node = gang_node(failure.spec)
    assert node is not None
    _, count, index = node
    err = failure.error
    first = err.message.splitlines()[0] if err.message else ""
    return ParallelStepFailed(
        f"Task {failure.spec.task_id} (node {index}) of the @parallel step *{spec.step}* failed "
        f"({err.type_name}: {first}); the {count} tasks of a @parallel step succeed or fail "
        f"together, so this one {how}.",
        node=index,
    )


def _fail_with(outcome: TaskOutcome, failure: TaskOutcome, how: str) -> None:
    exc = stopped_error(outcome.spec, failure, how)
    text = f"{type(exc).__name__}: {exc}\n"
    outcome.error = ErrorInfo(exc, type(exc).__name__, str(exc), text)
    outcome.transition = None
    outcome.transition_record = None


class Gangs:
    """The rounds of a run's gangs in progress, by (split task id, attempt)."""

    def __init__(self) -> None:
        self._rounds: dict[tuple[int, int], Round] = {}

    def round(self, spec: TaskSpec, node: tuple[int, int, int]) -> Round:
        """The round node attempt `spec` belongs to (made by its first node)."""
        key = (node[0], spec.attempt)
        found = self._rounds.get(key)
        if found is None:
            found = self._rounds[key] = Round(node[1])
        return found

    def read(self, spec: TaskSpec, node: tuple[int, int, int], round_: Round) -> None:
        """Node attempt `spec` read its round's end: the last to read forgets the round."""
        round_.readers -= 1
        if round_.readers == 0:
            self._rounds.pop((node[0], spec.attempt), None)


__all__ = ["Gangs", "Round", "gang_node", "stopped_error"]
