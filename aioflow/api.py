"""Running flows from Python: services, notebooks, scripts and tests.

    run = await run_flow(MyFlow, alpha=0.5)            # inside a running loop (FastAPI, Jupyter)
    run = run_flow_sync(MyFlow, alpha=0.5)             # plain code, any thread without a loop
    run = await resume_flow(MyFlow, origin_run_id="12", step="train")
    async with start_flow(MyFlow, alpha=0.5) as handle:  # the run id at once, live events
        async for event in handle.events(): ...
        run = await handle.wait()

Thin wrappers over the one runtime (`runtime.runner`): they validate parameters exactly as the
CLI does (same ParameterError messages, nothing stored on error), run the flow, and return the
client `Run`, or raise `FlowFailed` carrying the run, the failed task's pathspec and, as its
cause, the exception the step raised. Cancelling the caller cancels the run, which is stored as
cancelled and can be resumed. They install no signal handlers, block the event loop only for
microseconds (the store is opened, read and closed in worker threads), and keep no state
between runs except caches that only make them faster (`runtime.graphs`, `store.keeper`).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from .client import Run
from .console import Console
from .events import Listener
from .exceptions import ParameterError
from .flowspec import FlowSpec
from .handle import FlowHandle, finished_run, result_run
from .runtime.offload import offload
from .runtime.runner import (
    PreparedRun,
    RunOptions,
    execute,
    prepare,
    prepare_resume,
    validate_tags,
)
from .store import Store


def _listeners(quiet: bool, listeners: Sequence[Listener], *extra: Listener) -> list[Listener]:
    return [*([] if quiet else [Console()]), *listeners, *extra]


def _check(max_workers: int, max_num_splits: int, tags: Sequence[str]) -> None:
    """The run options, checked as the CLI checks `--max-workers` and `--max-num-splits`."""
    if isinstance(tags, str):
        raise ParameterError(f"tags={tags!r}: give a list of tags, such as tags=[{tags!r}].")
    try:
        validate_tags(tags)
    except ParameterError as exc:
        raise ParameterError(f"Invalid value for '--tag': {exc.message}") from None
    for option, value in (("--max-workers", max_workers), ("--max-num-splits", max_num_splits)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParameterError(f"Invalid value for '{option}': {value!r} is not a valid integer.")
        if value < 1:
            raise ParameterError(f"Invalid value for '{option}': {value} is not in the range x>=1.")


async def run_flow(
    flow_cls: type[FlowSpec],
    *,
    root: str | os.PathLike[str] | Store | None = None,
    max_workers: int = 16,
    max_num_splits: int = 100,
    tags: Sequence[str] = (),
    quiet: bool = False,
    listeners: Sequence[Listener] = (),
    executor: str = "thread",
    with_decorators: Sequence[str] = (),
    **parameters: Any,
) -> Run:
    """Run `flow_cls` to completion on the running event loop and return its `Run`.

    `root` is the store folder, or a `Store` to run in (`Store.memory()` for a test that needs
    no files; its steps cannot run in worker processes). Keyword arguments other than the
    options above are the flow's parameters, by name. With `quiet=False` the run's progress
    and output are printed like the CLI's. `listeners` are called with every event of the run
    (`aioflow.events`), on the loop. `executor` is where sync steps run by default ("thread"
    or "process"), `with_decorators` are `--with` specs such as "retry:times=2".
    """
    _check(max_workers, max_num_splits, tags)
    prepared = functools.partial(  # called in the thread that stores the run
        prepare, flow_cls, parameters, with_decorators=with_decorators, executor=executor
    )
    options = RunOptions(
        root=root,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        tags=tags,
        listeners=_listeners(quiet, listeners),
    )
    outcome = await execute(prepared, options)
    return await finished_run(outcome)


def start_flow(
    flow_cls: type[FlowSpec],
    *,
    root: str | os.PathLike[str] | None = None,
    max_workers: int = 16,
    max_num_splits: int = 100,
    tags: Sequence[str] = (),
    quiet: bool = False,
    listeners: Sequence[Listener] = (),
    executor: str = "thread",
    with_decorators: Sequence[str] = (),
    **parameters: Any,
) -> FlowHandle:
    """Start a run of `flow_cls` for `async with`: `async with start_flow(F) as handle: ...`.

    Takes `run_flow`'s arguments. Entering the block validates the parameters (raising as
    `run_flow` does), stores the run and starts it; `handle.run_id` is known at once,
    `handle.events()` yields its events as they happen and `await handle.wait()` returns its
    `Run`. Leaving the block before the run ends cancels the run. See `aioflow.handle`.
    """

    def prepare_run() -> PreparedRun:
        _check(max_workers, max_num_splits, tags)
        return prepare(flow_cls, parameters, with_decorators=with_decorators, executor=executor)

    def options(extra: list[Listener]) -> RunOptions:
        return RunOptions(
            root=root,
            max_workers=max_workers,
            max_num_splits=max_num_splits,
            tags=tags,
            listeners=_listeners(quiet, listeners, *extra),
        )

    return FlowHandle(prepare_run, options)


async def resume_flow(
    flow_cls: type[FlowSpec],
    *,
    origin_run_id: str | None = None,
    step: str | None = None,
    root: str | os.PathLike[str] | None = None,
    max_workers: int = 16,
    max_num_splits: int = 100,
    tags: Sequence[str] = (),
    quiet: bool = False,
    listeners: Sequence[Listener] = (),
    executor: str = "thread",
    with_decorators: Sequence[str] = (),
) -> Run:
    """Resume a run of `flow_cls` (the latest one unless `origin_run_id` is given).

    The new run clones every successful task of the origin that is not `step` or downstream of
    it, and runs the rest, with the origin's parameters. Returns the new run's `Run`. A failed
    or cancelled run can be resumed.
    """
    _check(max_workers, max_num_splits, tags)
    prepared, origin_id = await offload(
        functools.partial(
            prepare_resume,
            flow_cls,
            root=root,
            origin_run_id=origin_run_id,
            step=step,
            with_decorators=with_decorators,
            executor=executor,
        )
    )
    options = RunOptions(
        root=root,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        tags=tags,
        listeners=_listeners(quiet, listeners),
        origin_run_id=origin_id,
        resume_step=step,
    )
    return await finished_run(await execute(prepared, options))


def run_flow_sync(flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
    """`run_flow` for code without a running event loop: runs one for the flow, returns the Run.

    Works from any thread, the main one or not, with or without an event loop set (the loop is
    new and closed afterwards). Called from a thread whose event loop is running (a notebook
    cell, an async endpoint) it raises RuntimeError: use `await run_flow(...)` there instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_flow_sync() was called from a running event loop; use `await run_flow(...)`."
        )
    return anyio.run(functools.partial(run_flow, flow_cls, **kwargs))


__all__ = ["FlowHandle", "result_run", "resume_flow", "run_flow", "run_flow_sync", "start_flow"]
