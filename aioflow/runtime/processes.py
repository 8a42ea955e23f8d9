"""The process executor: a run's pool of worker processes for CPU-bound steps.

Each worker is a one-process `ProcessPoolExecutor`, so when a worker dies (a segfault,
`os._exit`, a kill, the OOM killer) exactly one task is known to have died with it: that task
fails with a message saying how, the worker is replaced, and the other workers and their tasks
carry on. Workers start on first use and are reused by every process task of the run. A task that
times out or is cancelled has its worker killed, since a running process cannot be interrupted
any other way.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import linecache
import multiprocessing
import os
import signal
import sys
from collections import ChainMap
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import CodeType
from typing import Any

import anyio
import cloudpickle

from ..exceptions import WorkerDied
from ..graph import FlowGraph
from . import process_worker
from .process_worker import TaskReply, TaskRequest, WorkerSetup


def _importable(module_name: str) -> bool:
    """True when a fresh interpreter with our sys.path could import the module by name."""
    if module_name == "__main__":
        return False
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__aioflow_flow_file__", False):
        return False
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin == getattr(module, "__file__", None)


_cloudpickle_reduce_code = cloudpickle.Pickler.dispatch_table[CodeType]


def _code_in_file(rebuild: Callable[..., CodeType], args: tuple[Any, ...], file: str) -> CodeType:
    """A code object rebuilt as cloudpickle rebuilds it, with the name of its file back."""
    return rebuild(*args).replace(co_filename=file)


def _reduce_code_keeping_file(code: CodeType) -> tuple[Any, ...]:
    """cloudpickle's reduction of `code`, to be rebuilt by `_code_in_file`."""
    rebuild, args = _cloudpickle_reduce_code(code)
    return _code_in_file, (rebuild, args, code.co_filename)


class _FlowPickler(cloudpickle.Pickler):
    """cloudpickle, except that code sent by value keeps the name of its file.

    cloudpickle 3.1.3 renames it "<dynamic-code>" (for payloads that do not depend on where the
    code was written). A worker's tracebacks would then name no file and show no source line for
    the steps of a flow file, a script or a notebook cell.
    """

    dispatch_table = ChainMap(
        {CodeType: _reduce_code_keeping_file}, cloudpickle.Pickler.dispatch_table
    )


def pickle_flow(flow_cls: type, graph: FlowGraph) -> bytes:
    """The flow class and its graph, pickled together for a worker's setup.

    The class goes by reference when its module is importable, else by value. The graph goes
    with it, already built and linted: a worker cannot always read the steps' source to build it
    again (a file deleted or edited since, code from a notebook cell). Pickled together, the
    graph's step functions are the class's own in the worker too.
    """
    module = sys.modules.get(flow_cls.__module__)
    # cloudpickle sends `__main__`'s classes by value on its own; other modules need saying so.
    by_value = (
        module is not None and module.__name__ != "__main__" and not _importable(module.__name__)
    )
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        with io.BytesIO() as out:
            _FlowPickler(out).dump((flow_cls, graph))
            return out.getvalue()
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def unsaved_sources(files: Iterable[str]) -> dict[str, list[str]]:
    """The lines of those source files that exist only in this process's `linecache`.

    Code typed into a notebook cell has no file a worker could read: its lines travel with the
    worker's setup, so that a worker's tracebacks show them.
    """
    return {
        file: linecache.getlines(file)
        for file in set(files)
        if not os.path.exists(file) and linecache.getlines(file)
    }


def describe_exit(exitcode: int | None) -> str:
    """How a worker process ended, in words."""
    if exitcode is None:
        return "ended for an unknown reason"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hints = {
            "SIGSEGV": " (segmentation fault)",
            "SIGKILL": " (killed: kill -9, or the out-of-memory killer)",
            "SIGABRT": " (aborted)",
            "SIGTERM": " (terminated)",
            "SIGBUS": " (bus error)",
        }
        return f"was killed by {name}{hints.get(name, '')}"
    return (
        f"exited with status {exitcode} without returning (os._exit, or an error while the "
        "worker started: a script that runs a flow must do it under "
        "`if __name__ == '__main__':`, since workers import the main script)"
    )


def worker_died(task_id: int, step: str, exitcode: int | None) -> WorkerDied:
    """The error of a task whose worker process ended without returning."""
    return WorkerDied(
        f"The worker process running task {task_id} of step *{step}* {describe_exit(exitcode)}."
    )


def _context() -> Any:
    # fork is unsafe with the loop's threads running; forkserver forks from a clean server,
    # which imports aioflow once so that each new worker starts with it loaded.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["aioflow.runtime.process_worker"])
    return context


class ProcessLane:
    """Up to `size` worker processes owned by one run.

    Every worker holds the read end of the lane's lifeline, a pipe whose only write end is this
    process's: when this process ends, however it ends (kill -9 included), each worker reads
    end-of-file and exits (`process_worker.watch_lifeline`). Without it a worker, blocked on its
    task queue (whose write end it holds itself), outlives its run, and so do the forkserver and
    the resource tracker it keeps connected.
    """

    def __init__(self, setup: WorkerSetup, size: int) -> None:
        self.setup = setup
        self.size = max(1, size)
        self._idle: list[ProcessPoolExecutor] = []
        self._all: list[ProcessPoolExecutor] = []
        self._slots = anyio.Semaphore(self.size)
        self._context = _context()
        self._lifeline, self._holding = self._context.Pipe(duplex=False)

    def _new_worker(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=self._context,
            initializer=process_worker.initialize,
            initargs=(self.setup, self._lifeline),
        )
        self._all.append(pool)
        return pool

    @staticmethod
    def _process(pool: ProcessPoolExecutor) -> Any:
        processes = getattr(pool, "_processes", None) or {}
        return next(iter(processes.values()), None)

    def _discard(self, pool: ProcessPoolExecutor, kill: bool) -> int | None:
        process = self._process(pool)
        if kill and process is not None and process.is_alive():
            process.kill()
        # The pool's manager thread joins a dead worker too. Under forkserver the exit status
        # is one message on a pipe, and of two threads polling at once one reads it and the
        # other reads end-of-file, which multiprocessing reports as status 255 (a SIGSEGV
        # became "exited with status 255"). So the status is read only after that thread ends.
        pool.shutdown(wait=True, cancel_futures=True)
        exitcode = None if process is None else process.exitcode
        if pool in self._all:
            self._all.remove(pool)
        return exitcode

    async def run(self, request: TaskRequest, timeout: float | None = None) -> TaskReply:
        """Run a task in a worker; raise WorkerDied, or TimeoutError after `timeout` seconds."""
        async with self._slots:
            pool = self._idle.pop() if self._idle else self._new_worker()
            try:
                future = pool.submit(process_worker.run_task, request)
                with anyio.fail_after(timeout):
                    reply: TaskReply = await asyncio.wrap_future(future)
            except BrokenProcessPool:
                exitcode = await anyio.to_thread.run_sync(self._discard, pool, False)
                raise worker_died(request.task_id, request.step, exitcode) from None
            except BaseException:
                # Timed out or cancelled: the process may still be running the body.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._discard, pool, True)
                raise
            self._idle.append(pool)
            return reply

    async def ping(self) -> int:
        """A trivial round trip through a worker (warms it up); returns its pid."""
        async with self._slots:
            pool = self._idle.pop() if self._idle else self._new_worker()
            try:
                return await asyncio.wrap_future(pool.submit(process_worker.ping))
            finally:
                self._idle.append(pool)

    def close(self) -> None:
        """Stop every worker (running bodies are killed)."""
        for pool in list(self._all):
            self._discard(pool, kill=True)
        self._idle.clear()
        self._holding.close()
        self._lifeline.close()


__all__ = ["ProcessLane", "describe_exit", "pickle_flow", "unsaved_sources"]
