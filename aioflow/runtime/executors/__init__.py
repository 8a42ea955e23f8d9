"""Where task bodies run: one `Executor` per place (the event loop, the run's worker threads,
worker processes), built by name from `registry`.

- `protocol`: what the scheduler needs from an executor, and what a run offers executors.
- `thread_lane`: a run's share of the process's worker threads, tuned for many tiny sync
  bodies.
- `local`: the loop and thread executors (and an inline one for tests).
- `process`: the process executor (the worker pool itself is `runtime.processes`).
- `dask_executor`: the Dask executor; `dask_cluster` reaches and watches its cluster,
  `dask_worker` is what runs in a Dask worker.
- `registry`: executors by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .local import InlineExecutor, LoopExecutor, ThreadExecutor
from .protocol import (
    CallbackExecutor,
    Done,
    Executor,
    ExecutorContext,
    ExecutorFactory,
    UnflushedBlobs,
    failed_outcome,
)
from .registry import ExecutorRegistry, registry
from .thread_lane import SharedThreads, ThreadLane, shared_threads

if TYPE_CHECKING:
    from .dask_executor import DaskExecutor
    from .process import ProcessExecutor


def __getattr__(name: str) -> Any:
    # The process and Dask executors load when a run uses them (see registry.py).
    if name == "ProcessExecutor":
        from .process import ProcessExecutor

        return ProcessExecutor
    if name == "DaskExecutor":
        from .dask_executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CallbackExecutor",
    "DaskExecutor",
    "Done",
    "Executor",
    "ExecutorContext",
    "ExecutorFactory",
    "ExecutorRegistry",
    "InlineExecutor",
    "LoopExecutor",
    "ProcessExecutor",
    "SharedThreads",
    "ThreadExecutor",
    "ThreadLane",
    "UnflushedBlobs",
    "failed_outcome",
    "registry",
    "shared_threads",
]
