"""One task run here and now, outside a run: what `aioflow spin` and `testing.run_step` share.

A whole run schedules tasks, stores them and follows their transitions; one task needs none of
that. It needs the same `TaskRun` (task.py): the same flow instance over a manifest, the same
inputs for a join, the same foreach frames behind `self.input` and `self.index`, the same
`self.next` checks and `merge_artifacts` errors, and the same snapshot at the end. So a task
here is a `RunEnv` and a `TaskSpec` handed to `run_sync_task` or `run_async_task`, in the
calling thread (a sync body runs right here, so `breakpoint()` works), with its blobs written to
an `Overlay` in memory in front of the store it read from: nothing is stored unless the caller
stores the outcome.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ..exceptions import BlobNotFound
from ..store.blobs import MemoryBlobStore
from ..store.keys import read_identity
from ..store.serde import Buffer, Encoded, decode
from .artifacts import encode_artifact, store_encoded
from .task import RunEnv, TaskOutcome, TaskSpec, run_async_task, run_sync_task

if TYPE_CHECKING:
    from ..flowspec import FlowSpec
    from ..graph import FlowGraph
    from ..store import Store


class Overlay(MemoryBlobStore):
    """Blobs made here (small and large), read first; the store's (if any) behind them."""

    def __init__(self, store: Store | None) -> None:
        super().__init__()
        self.store = store
        self.small: dict[str, bytes] = {}

    def read_blob(self, key: str) -> tuple[int, Buffer]:
        """(tag, payload) of a blob made here, else of the store's (an identity key's from the
        key itself, with or without a store)."""
        found = read_identity(key)
        if found is not None:
            return found
        data = self.small.get(key)
        if data is not None:
            return data[0], memoryview(data)[1:]
        if key in self.blobs:
            return self.get(key)
        if self.store is None:
            raise BlobNotFound(key, location="memory")
        return self.store.read_blob(key)

    def add(self, small: list[tuple[str, bytes]]) -> None:
        """Keep a task's small blobs, so its artifacts can be read back."""
        self.small.update(small)

    def encode(self, values: Mapping[str, Any], step: str) -> dict[str, str]:
        """Store each value as an artifact here; name -> key."""
        small: list[tuple[str, bytes]] = []
        keys = {}
        for name, value in values.items():
            encoded = encode_artifact(name, value, step)
            store_encoded(encoded, small, self._put_encoded)
            keys[name] = encoded.key
        self.add(small)
        return keys

    def _put_encoded(self, encoded: Encoded) -> None:
        self.put(encoded.key, encoded.chunks)

    def load(self, key: str) -> Any:
        """The value stored under `key`, decoded afresh."""
        return decode(*self.read_blob(key))


def task_env(
    flow_cls: type[FlowSpec],
    graph: FlowGraph,
    overlay: Overlay,
    *,
    run_id: str,
    username: str,
    base: dict[str, str],
    parameter_names: tuple[str, ...],
    readonly: frozenset[str],
    origin_run_id: str | None = None,
    store: Store | None = None,
    line_sink: Callable[[str, str, str], None] | None = None,
) -> RunEnv:
    """The environment one task runs in: the run's name and base artifacts, blobs in `overlay`."""
    env = RunEnv(
        flow_cls=flow_cls,
        graph=graph,
        flow_name=flow_cls.__name__,
        run_id=run_id,
        username=username,
        namespace=f"user:{username}",
        tags=frozenset(),
        parameter_names=parameter_names,
        readonly=readonly,
        base_manifest=base,
        reader=overlay,
        blobs=overlay,
        line_sink=line_sink or (lambda pathspec, stream, line: None),
        origin_run_id=origin_run_id,
        store=store,  # `current.run` reads the store the task's inputs came from
    )
    return env


async def _inline(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def run_here(env: RunEnv, spec: TaskSpec) -> TaskOutcome:
    """Run the task's body in this thread (an async body on an event loop of its own), finish
    it as a run would (transition checks, snapshot) and return its outcome; never raises for
    the step's failure.

    Called where an event loop runs already (an async test), an async body runs on a new loop
    in a thread of its own, since one thread cannot run two loops.
    """
    if not env.graph[spec.step].is_async:
        return run_sync_task(env, spec)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        outcome: TaskOutcome = anyio.run(run_async_task, env, _inline, None, spec)
        return outcome
    result: list[TaskOutcome] = []
    failure: list[BaseException] = []

    def in_thread() -> None:
        try:
            result.append(anyio.run(run_async_task, env, _inline, None, spec))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=in_thread, name=f"aioflow-{spec.step}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def changed_artifacts(outcome: TaskOutcome, before: Mapping[str, str]) -> list[str]:
    """Names of the artifacts the task set or changed (its manifest against `before`)."""
    return [name for name, key in outcome.manifest.items() if before.get(name) != key]


__all__ = ["Overlay", "changed_artifacts", "run_here", "task_env"]
