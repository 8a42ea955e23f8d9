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
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread

from .client import Run
from .console import console_for
from .events import Listener
from .exceptions import FlowFailed
from .flowspec import FlowSpec
from .handle import FlowHandle, finished_run, result_run
from .runtime.config import (
    DEFAULT_EXECUTOR,
    DEFAULT_MAX_NUM_SPLITS,
    DEFAULT_MAX_WORKERS,
    RunConfig,
    run_config,
)
from .runtime.offload import offload
from .runtime.runner import execute, prepare, prepare_resume
from .store import Store


def _configured(quiet: bool, listeners: Sequence[Listener], **options: Any) -> RunConfig:
    """The run's configuration, checked as the CLI checks its options, with the console
    listening first unless `quiet`."""
    hint = 'await resume_flow({flow_name}, origin_run_id="{run_id}")'
    console = [] if quiet else [console_for(resume_hint=hint)]
    return run_config(quiet=quiet, listeners=[*console, *listeners], **options)


async def run_flow(
    flow_cls: type[FlowSpec],
    *,
    root: str | os.PathLike[str] | Store | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS,
    tags: Sequence[str] = (),
    quiet: bool = False,
    listeners: Sequence[Listener] = (),
    executor: str = DEFAULT_EXECUTOR,
    with_decorators: Sequence[str] = (),
    config: Mapping[str, str | os.PathLike[str]] | None = None,
    config_value: Mapping[str, Any] | None = None,
    branch: str | None = None,
    production: bool = False,
    dask_address: str | None = None,
    dask_client: Any = None,
    report: str | os.PathLike[str] | None = None,
    **parameters: Any,
) -> Run:
    """Run `flow_cls` to completion on the running event loop and return its `Run`.

    `root` is the store folder, or a `Store` to run in (`Store.memory()` for a test that needs
    no files; its steps cannot run in worker processes). Keyword arguments other than the
    options above are the flow's parameters, by name. With `quiet=False` the run's progress
    and output are printed like the CLI's. `listeners` are called with every event of the run
    (`aioflow.events`), on the loop. `executor` is where sync steps run by default ("thread",
    "process" or "dask"), `with_decorators` are `--with` specs such as "retry:times=2". `config`
    maps the flow's config names to files and `config_value` to values (a dict or JSON text), as
    `--config` and `--config-value` do; `branch` and `production` are @project's `--branch` and
    `--production`. Steps on Dask ("dask", `pip install 'aioflow[dask]'`) run on the scheduler
    at `dask_address` (`--dask-address`, else $AIOFLOW_DASK_ADDRESS), or through `dask_client`,
    a `distributed.Client(asynchronous=True)` you keep; with neither, on a LocalCluster started
    for the run. `report` is an HTML file the run's report (`aioflow.report`) is written to when
    the run ends, failed or not.
    """
    target = None
    if report is not None:  # the report's package is imported by the runs that write one
        from .report import report_target

        target = report_target(report, "keyword argument 'report'")
    run_options = _configured(
        quiet,
        listeners,
        root=root,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        tags=tags,
        executor=executor,
        with_decorators=with_decorators,
        config=config,
        config_value=config_value,
        branch=branch,
        production=production,
        dask_address=dask_address,
        dask_client=dask_client,
    )
    # Prepared in the worker thread that stores the run: one trip to a thread, not two.
    prepared = functools.partial(prepare, flow_cls, parameters, run_options)
    outcome = await execute(prepared, run_options)
    if target is None:
        return await finished_run(outcome)
    from .report import write_report

    try:
        run = await finished_run(outcome)
    except FlowFailed as exc:
        if exc.run is not None:  # a failed run's report is the one most worth reading
            await offload(write_report, exc.run, target)
        raise
    await offload(write_report, run, target)
    return run


def start_flow(
    flow_cls: type[FlowSpec],
    *,
    root: str | os.PathLike[str] | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS,
    tags: Sequence[str] = (),
    quiet: bool = False,
    listeners: Sequence[Listener] = (),
    executor: str = DEFAULT_EXECUTOR,
    with_decorators: Sequence[str] = (),
    config: Mapping[str, str | os.PathLike[str]] | None = None,
    config_value: Mapping[str, Any] | None = None,
    branch: str | None = None,
    production: bool = False,
    dask_address: str | None = None,
    dask_client: Any = None,
    **parameters: Any,
) -> FlowHandle:
    """Start a run of `flow_cls` for `async with`: `async with start_flow(F) as handle: ...`.

    Takes `run_flow`'s arguments. Entering the block validates the parameters (raising as
    `run_flow` does), stores the run and starts it; `handle.run_id` is known at once,
    `handle.events()` yields its events as they happen and `await handle.wait()` returns its
    `Run`. Leaving the block before the run ends cancels the run. See `aioflow.handle`.
    """

    def configure() -> RunConfig:  # on entering the block, so that is where errors raise
        return _configured(
            quiet,
            listeners,
            root=root,
            max_workers=max_workers,
            max_num_splits=max_num_splits,
            tags=tags,
            executor=executor,
            with_decorators=with_decorators,
            config=config,
            config_value=config_value,
            branch=branch,
            production=production,
            dask_address=dask_address,
            dask_client=dask_client,
        )

    return FlowHandle(configure, functools.partial(prepare, flow_cls, parameters))


async def resume_flow(
    flow_cls: type[FlowSpec],
    *,
    origin_run_id: str | None = None,
    step: str | None = None,
    root: str | os.PathLike[str] | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS,
    tags: Sequence[str] = (),
    quiet: bool = False,
    listeners: Sequence[Listener] = (),
    executor: str = DEFAULT_EXECUTOR,
    with_decorators: Sequence[str] = (),
    config: Mapping[str, str | os.PathLike[str]] | None = None,
    config_value: Mapping[str, Any] | None = None,
    branch: str | None = None,
    production: bool = False,
    dask_address: str | None = None,
    dask_client: Any = None,
) -> Run:
    """Resume a run of `flow_cls` (the latest one unless `origin_run_id` is given).

    The new run clones every successful task of the origin that is not `step` or downstream of
    it, and runs the rest, with the origin's parameters. Returns the new run's `Run`. A failed
    or cancelled run can be resumed.
    """
    run_options = _configured(
        quiet,
        listeners,
        root=root,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        tags=tags,
        executor=executor,
        with_decorators=with_decorators,
        config=config,
        config_value=config_value,
        branch=branch,
        production=production,
        dask_address=dask_address,
        dask_client=dask_client,
    )
    prepared, run_options = await offload(
        functools.partial(
            prepare_resume, flow_cls, run_options, origin_run_id=origin_run_id, step=step
        )
    )
    return await finished_run(await execute(prepared, run_options))


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
