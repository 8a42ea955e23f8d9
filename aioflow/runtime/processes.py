"""The process executor: a run's pool of worker processes for CPU-bound steps.

Each worker is a long-lived process with a pipe of its own (`worker_pipe.py`) and runs one
task at a time, so when a worker dies (a segfault, `os._exit`, a kill, the OOM killer) exactly
one task is known to have died with it: that task fails with a message saying how, the worker
is replaced, and the other workers and their tasks carry on. Workers start on first use and are
reused by every process task of the run. A task that times out or is cancelled has its worker
killed, since a running process cannot be interrupted any other way.
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
from types import CodeType
from typing import Any

import anyio
import cloudpickle

from ..exceptions import WorkerDied
from ..graph import FlowGraph
from . import process_worker
from .process_worker import TaskReply, TaskRequest, WorkerSetup
from .worker_pipe import WorkerGone, WorkerPipe


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


#: The CPUs this process may run on.
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ProcessLane:
    """Up to `size` worker processes owned by one run.

    Every worker holds the read end of the lane's lifeline, a pipe whose only write end is this
    process's: when this process ends, however it ends (kill -9 included), each worker reads
    end-of-file and exits (`process_worker.watch_lifeline`), even one busy in a step. Without it
    a busy worker outlives its run, and so do the forkserver and the resource tracker it keeps
    connected.
    """

    def __init__(self, setup: WorkerSetup, size: int) -> None:
        self.setup = setup
        self.size = max(1, size)
        self._idle: list[WorkerPipe] = []
        self._all: list[WorkerPipe] = []
        self._slots = anyio.Semaphore(self.size, fast_acquire=True)
        self._context = _context()
        self._lifeline, self._holding = self._context.Pipe(duplex=False)

    async def _worker(self) -> WorkerPipe:
        """An idle worker, else a new one."""
        while self._idle:
            worker = self._idle.pop()
            if not worker.gone:
                return worker
            await self._discard(worker, kill=False)  # it ended while idle
        worker = WorkerPipe(self._context, process_worker.serve, (self.setup, self._lifeline))
        self._all.append(worker)
        try:
            # In a thread: the first start under forkserver starts the server too.
            await anyio.to_thread.run_sync(worker.start)
            worker.attach(asyncio.get_running_loop())
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard(worker, kill=True)
            raise
        return worker

    async def _discard(self, worker: WorkerPipe, kill: bool) -> int | None:
        """Stop watching `worker`, end it (`kill`) and return how it ended."""
        worker.detach()
        if worker in self._all:
            self._all.remove(worker)
        return await anyio.to_thread.run_sync(worker.reap, kill)

    async def _call(
        self, message: Any, timeout: float | None, died: Callable[[int | None], Exception]
    ) -> Any:
        """Send `message` to a worker and return its answer; `died(exitcode)` is raised when
        the worker ends before answering."""
        async with self._slots:
            while True:
                worker = await self._worker()
                try:
                    # The loop watches for the answer only if a CPU is left for it.
                    watch = len(self._all) - len(self._idle) < _CPUS
                    if timeout is None:  # no cancel scope: one costs microseconds a task
                        ok, value = await worker.call(message, watch)
                    else:
                        with anyio.fail_after(timeout):
                            ok, value = await worker.call(message, watch)
                    break
                except WorkerGone as gone:
                    with anyio.CancelScope(shield=True):
                        exitcode = await self._discard(worker, kill=False)
                    if not gone.received and worker.answered:
                        # It ended while idle, before the message reached it: another one.
                        # (Not a new worker: one that ends as it starts would end again.)
                        continue
                    raise died(exitcode) from None
                except BaseException:
                    # Timed out or cancelled: the process may still be running the body.
                    with anyio.CancelScope(shield=True):
                        await self._discard(worker, kill=True)
                    raise
            self._idle.append(worker)
        if not ok:
            raise value  # raised by the worker outside the task (WorkerSetupError)
        return value

    async def run(self, request: TaskRequest, timeout: float | None = None) -> TaskReply:
        """Run a task in a worker; raise WorkerDied, or TimeoutError after `timeout` seconds."""

        def died(exitcode: int | None) -> Exception:
            return worker_died(request.task_id, request.step, exitcode)

        message = (process_worker.TASK, process_worker.request_to_wire(request))
        return process_worker.reply_from_wire(await self._call(message, timeout, died))

    async def ping(self) -> int:
        """A trivial round trip through a worker (warms it up); returns its pid."""

        def died(exitcode: int | None) -> Exception:
            return WorkerDied(f"A worker process {describe_exit(exitcode)}.")

        pid: int = await self._call((process_worker.PING, None), None, died)
        return pid

    async def aclose(self) -> None:
        """`close`, in a thread (it may take a while), once the loop stopped watching."""
        for worker in self._all:
            worker.detach()
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        """Stop every worker (running bodies are killed)."""
        for worker in self._all:
            worker.detach()
            if worker.started and not worker.gone:
                worker.process.kill()  # all of them now, then each awaited
        for worker in self._all:
            worker.reap(kill=True)
        self._all.clear()
        self._idle.clear()
        self._holding.close()
        self._lifeline.close()


__all__ = ["ProcessLane", "describe_exit", "pickle_flow", "unsaved_sources"]
