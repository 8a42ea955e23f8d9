"""Running flows from Python: `await run_flow(MyFlow, alpha=0.5)` and `run_flow_sync(...)`.

Thin wrappers over the one runtime (`runtime.runner`): they validate parameters exactly as the
CLI does, run the flow, and return the client `Run`, or raise `FlowFailed` carrying the run, the
failed task's pathspec and, as its cause, the exception the step raised.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import anyio

from .client import Run
from .console import Console
from .events import Listener
from .exceptions import FlowFailed
from .flowspec import FlowSpec
from .runtime.runner import RunOptions, RunOutcome, execute, prepare, prepare_resume
from .store import Store


async def run_flow(
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
) -> Run:
    """Run `flow_cls` to completion on the running event loop and return its `Run`.

    Keyword arguments other than the options above are the flow's parameters, by name. With
    `quiet=False` the run's progress and output are printed like the CLI's. `executor` is where
    sync steps run by default ("thread" or "process"), `with_decorators` are `--with` specs
    such as "retry:times=2".
    """
    prepared = prepare(flow_cls, parameters, with_decorators=with_decorators, executor=executor)
    all_listeners = list(listeners)
    if not quiet:
        all_listeners.insert(0, Console())
    options = RunOptions(
        root=root,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        tags=tags,
        listeners=all_listeners,
    )
    outcome = await execute(prepared, options)
    return result_run(outcome)


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
    it, and runs the rest, with the origin's parameters. Returns the new run's `Run`.
    """
    prepared, origin_id = await anyio.to_thread.run_sync(
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
    all_listeners = list(listeners)
    if not quiet:
        all_listeners.insert(0, Console())
    options = RunOptions(
        root=root,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        tags=tags,
        listeners=all_listeners,
        origin_run_id=origin_id,
        resume_step=step,
    )
    return result_run(await execute(prepared, options))


def result_run(outcome: RunOutcome) -> Run:
    """The client Run of a finished execution; raise FlowFailed when it did not succeed."""
    run = Run(f"{outcome.flow_name}/{outcome.run_id}", _store=Store(outcome.root))
    if outcome.successful:
        return run
    failure = outcome.failure
    if failure is not None and failure.error is not None:
        spec = failure.spec
        pathspec = f"{outcome.flow_name}/{outcome.run_id}/{spec.step}/{spec.task_id}"
        error = failure.error
        raise FlowFailed(
            f"Run {run.pathspec} failed: step *{spec.step}* (task {pathspec}) raised "
            f"{error.type_name}: {error.message}",
            run=run,
            pathspec=pathspec,
        ) from error.exception
    raise FlowFailed(
        f"Run {run.pathspec} {outcome.status}"
        + (f": {outcome.error}" if outcome.error is not None else "."),
        run=run,
        pathspec=None,
    ) from outcome.error


def run_flow_sync(flow_cls: type[FlowSpec], **kwargs: Any) -> Run:
    """`run_flow` for code without an event loop: starts one, runs the flow, returns the Run.

    Called from a thread whose event loop is running, it raises RuntimeError: use
    `await run_flow(...)` there instead.
    """
    try:
        import asyncio

        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_flow_sync() was called from a running event loop; use `await run_flow(...)`."
        )
    return anyio.run(functools.partial(run_flow, flow_cls, **kwargs))
