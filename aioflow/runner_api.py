"""Metaflow's programmatic API, `Runner` and `NBRunner`, run in this process.

    with Runner("flow.py", show_output=False).run(alpha=5) as running:
        print(running.run, running.status)           # the client Run; "successful"
    async with Runner("flow.py").async_run(alpha=5) as running:   # or `with await ...`
        await running.wait()
    run = NBRunner(MyFlow).nbrun(alpha=5)             # in a notebook: the client Run

Metaflow's Runner starts `python flow.py run` in a subprocess; here the flow runs in-process
through `run_flow` / `resume_flow` (so arguments are checked before anything is stored, and a
bad parameter raises ParameterError at once instead of reading as a failed run). What the
subprocess would have printed is kept as `stdout` / `stderr`: the run's console lines.

The blocking calls (`run`, `resume`, `nbrun`, `nbresume`) run the flow on an event loop of their
own; called where a loop is running (a notebook cell), they run it in a worker thread and block
until it ends, as Metaflow's do. The `async_` calls need asyncio: the run goes on in a task of
the caller's loop while `ExecutingRun` reports on it.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from .api import resume_flow, run_flow
from .client import Run
from .console import Console
from .events import Event, RunStarted
from .exceptions import FlowFailed
from .flowspec import FlowSpec
from .loader import load_flow

#: Keyword arguments of `run()` / `resume()` that are run options, not flow parameters.
_RUN_OPTIONS = frozenset(
    {
        "tags",
        "max_workers",
        "max_num_splits",
        "executor",
        "with_decorators",
        "config",
        "config_value",
        "branch",
        "production",
    }
)
#: Metaflow's top-level options that mean nothing in-process (their local values only).
_IGNORED = {"pylint": None, "metadata": "local", "datastore": "local", "environment": "local"}
#: `Runner(**kwargs)` options passed on to every run (Metaflow's top-level ones).
_RUNNER_OPTIONS = frozenset({"decospecs", "branch", "production", "config", "config_value"})


class _Lines(io.StringIO):
    """One console stream of a run, kept as text and lines; wakes up `stream_log` readers."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._partial = ""
        self._changed = asyncio.Event()

    def write(self, text: str) -> int:
        *complete, self._partial = (self._partial + text).split("\n")
        if complete:
            self.lines.extend(complete)
            self.wake()
        return super().write(text)

    def wake(self) -> None:
        """Tell `stream_log` readers there is something new (or that the run ended)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def next_change(self) -> asyncio.Event:
        """The event the next `wake` sets."""
        return self._changed

    @property
    def text(self) -> str:
        """Everything written so far."""
        return self.getvalue()


class ExecutingRun:
    """A run started by a Runner: `run` (the client Run), `status`, `returncode`, `stdout`,
    `stderr`, `wait()`, `stream_log()`. Leaving its `with` block cancels it if still running."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.run: Run | None = None
        self._status = "running"
        self._out = _Lines()
        self._err = _Lines()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._started_event: asyncio.Event | None = None
        self._pathspec = ""

    # -- what Metaflow's ExecutingRun tells -----------------------------------------------------

    @property
    def status(self) -> str:
        """The run's state: "running", then "successful" or "failed" ("timeout" when
        `wait(timeout=)` ran out first)."""
        return self._status

    @property
    def returncode(self) -> int | None:
        """None while the run goes on, 0 when it succeeded, 1 otherwise (as `aioflow run`)."""
        if self._status == "running":
            return None
        return 0 if self._status == "successful" else 1

    @property
    def stdout(self) -> str:
        """The run's console output so far: what `aioflow run` prints to stdout."""
        return self._out.text

    @property
    def stderr(self) -> str:
        """What `aioflow run` prints to stderr (the failure summary of a failed run)."""
        return self._err.text

    async def wait(self, timeout: float | None = None, stream: str | None = None) -> ExecutingRun:
        """Wait for the run to end (cancelling it after `timeout` seconds: status "timeout"),
        printing `stream` ("stdout" or "stderr") as it comes when given; returns self."""
        task = self._task
        if task is None or task.done():
            if task is not None:
                await task
            return self
        printer = None
        if stream is not None:
            printer = asyncio.ensure_future(self._print(stream))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except asyncio.TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._status = "timeout"
        finally:
            if printer is not None:
                await printer
        return self

    async def _print(self, stream: str) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        async for _, line in self.stream_log(stream):
            print(line, file=out)

    async def stream_log(
        self, stream: str, position: int | None = None
    ) -> AsyncIterator[tuple[int, str]]:
        """Yield `(position, line)` of a stream ("stdout" or "stderr") until the run ends.

        A position counts lines (Metaflow's counts bytes): pass the last one seen plus one to
        go on from there.
        """
        lines = self._stream(stream)
        at = position or 0
        while True:
            change = lines.next_change()  # taken before reading, so no line slips between
            while at < len(lines.lines):
                yield at, lines.lines[at]
                at += 1
            if self._status != "running":
                return
            await change.wait()

    def _stream(self, stream: str) -> _Lines:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"A stream is 'stdout' or 'stderr', not {stream!r}.")
        return self._out if stream == "stdout" else self._err

    # -- running ------------------------------------------------------------------------------

    async def _drive(self, body: Callable[[list[Any]], Awaitable[Run]]) -> None:
        """Run the flow to its end, recording its Run and status (never raises FlowFailed)."""
        console = Console(self._out, self._err)
        try:
            run = await body([console, self._on_event])
        except FlowFailed as failed:
            self.run = failed.run if failed.run is not None else self.run
            self._status = "failed"
        except asyncio.CancelledError:
            # Only this object cancels the task (a block left early, `wait(timeout=)`): the
            # run is stored as cancelled, which Metaflow's status reads as failed.
            self._status = "failed"
        except BaseException:
            self._status = "failed"
            raise
        else:
            self.run = run
            self._status = "successful"
        finally:
            self._out.wake()
            self._err.wake()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started = True
            self._pathspec = event.pathspec
            if self._started_event is not None:
                self._started_event.set()

    async def _start(self, body: Callable[[list[Any]], Awaitable[Run]]) -> ExecutingRun:
        """Start the run in a task of this loop; return once it is stored (or has failed)."""
        self._started_event = asyncio.Event()
        self._task = asyncio.ensure_future(self._drive(body))
        started = asyncio.ensure_future(self._started_event.wait())
        try:
            await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the caller was cancelled while the run started: stop it too
            await self._cancel()
            raise
        finally:
            started.cancel()
        if not self._started:
            await self._task  # it failed before storing anything: raise why
        if self.run is None:
            root = self.runner._root
            self.run = await anyio.to_thread.run_sync(
                lambda: Run(self._pathspec, root=root, _namespace_check=False)
            )
        return self

    async def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- blocks -------------------------------------------------------------------------------

    def __enter__(self) -> ExecutingRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()  # a sync block cannot wait: the run ends cancelled soon after

    async def __aenter__(self) -> ExecutingRun:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._cancel()

    def __repr__(self) -> str:
        return f"<ExecutingRun {self.run.pathspec if self.run else '(starting)'} {self.status}>"


class _StartingRun:
    """What `async_run()` returns: `await` it for the ExecutingRun, or `async with` it."""

    def __init__(self, start: Callable[[], Coroutine[Any, Any, ExecutingRun]]) -> None:
        self._start = start
        self._executing: ExecutingRun | None = None

    def __await__(self) -> Generator[Any, None, ExecutingRun]:
        return self._start().__await__()

    async def __aenter__(self) -> ExecutingRun:
        self._executing = await self._start()
        return self._executing

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executing is not None:
            await self._executing._cancel()


def _block_on(run: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run a coroutine function to its end on a loop of its own, in a worker thread when this
    thread's loop is running (a notebook cell): the caller blocks either way."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        anyio.run(run)
        return
    context = contextvars.copy_context()  # the caller's namespace and store choice
    errors: list[BaseException] = []

    def work() -> None:
        try:
            context.run(anyio.run, run)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work, name="aioflow Runner")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


class Runner:
    """Run a flow file from Python, as Metaflow's `Runner` (in this process).

    `show_output` prints the run's console as it goes (it is kept in `stdout`/`stderr` either
    way). `root` is the store folder (aioflow's; default as `aioflow run`), `metaflow_imports`
    runs a flow file written for Metaflow unmodified (see `aioflow.metaflow_imports`). Other
    keyword arguments are Metaflow's top-level options: `decospecs` (`--with`), `branch`,
    `production`, `config`, `config_value`; `pylint` and the local `metadata`, `datastore` and
    `environment` are accepted and change nothing, as is `file_read_timeout` (there is no
    subprocess output file to wait for). `profile`, `env` and `cwd` shape a subprocess Metaflow
    would start and are refused.
    """

    def __init__(
        self,
        flow_file: str | os.PathLike[str],
        show_output: bool = True,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        file_read_timeout: int = 3600,
        *,
        root: str | os.PathLike[str] | None = None,
        metaflow_imports: bool = False,
        **kwargs: Any,
    ) -> None:
        for name, value in (("profile", profile), ("env", env), ("cwd", cwd)):
            if value is not None:
                raise TypeError(
                    f"Runner({name}=...) is not supported: aioflow runs the flow in this "
                    "process, not in a subprocess it could set up."
                )
        self._options: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name in _IGNORED:
                if value not in (_IGNORED[name], None, False, True):
                    raise TypeError(
                        f"Runner({name}={value!r}) is not supported: aioflow runs locally."
                    )
                continue
            if name not in _RUNNER_OPTIONS:
                raise TypeError(f"Runner() got an option aioflow does not know: {name}={value!r}")
            self._options["with_decorators" if name == "decospecs" else name] = value
        self._flow_file = flow_file
        self._flow_cls: type[FlowSpec] | None = None
        self._metaflow_imports = metaflow_imports
        self.show_output = show_output
        self._root = root

    def _flow(self) -> type[FlowSpec]:
        if self._flow_cls is None:
            self._flow_cls = load_flow(
                Path(self._flow_file), metaflow_imports=self._metaflow_imports
            )
        return self._flow_cls

    def _body(self, resume: bool, kwargs: dict[str, Any]) -> Callable[..., Awaitable[Run]]:
        """The coroutine function that runs (or resumes) the flow, given the listeners."""
        flow_cls = self._flow()
        options = {**self._options, "root": self._root, "quiet": not self.show_output}
        run_id_file = kwargs.pop("run_id_file", None)
        if resume:
            for name in ("origin_run_id", "step_to_rerun", "step"):
                if name in kwargs:
                    options["step" if name == "step_to_rerun" else name] = kwargs.pop(name)
            unknown = set(kwargs) - _RUN_OPTIONS
            if unknown:
                raise TypeError(f"resume() takes no flow parameters: {', '.join(sorted(unknown))}")

        async def body(listeners: list[Any]) -> Run:
            if run_id_file is not None:
                listeners = [*listeners, _run_id_writer(run_id_file)]
            if resume:
                return await resume_flow(flow_cls, listeners=listeners, **options, **kwargs)
            return await run_flow(flow_cls, listeners=listeners, **options, **kwargs)

        return body

    def _executing(self, resume: bool, kwargs: dict[str, Any]) -> tuple[ExecutingRun, Any]:
        return ExecutingRun(self), self._body(resume, dict(kwargs))

    # -- blocking ------------------------------------------------------------------------------

    def run(self, **kwargs: Any) -> ExecutingRun:
        """Run the flow to its end and return the ExecutingRun (flow parameters and run
        options by name: `run(alpha=5, tags=["x"], max_workers=4)`)."""
        executing, body = self._executing(False, kwargs)
        _block_on(lambda: _to_end(executing, body))
        return executing

    def resume(self, **kwargs: Any) -> ExecutingRun:
        """Resume a run (`origin_run_id=`, `step_to_rerun=`; default: the latest run) to its
        end and return the ExecutingRun."""
        executing, body = self._executing(True, kwargs)
        _block_on(lambda: _to_end(executing, body))
        return executing

    # -- asynchronous --------------------------------------------------------------------------

    def async_run(self, **kwargs: Any) -> _StartingRun:
        """Start the flow; `await` it (or `async with` it) for the ExecutingRun once the run is
        stored, while it goes on in a task of the running loop."""
        executing, body = self._executing(False, kwargs)
        return _StartingRun(lambda: executing._start(body))

    def async_resume(self, **kwargs: Any) -> _StartingRun:
        """`resume()`, started as `async_run()` starts a run."""
        executing, body = self._executing(True, kwargs)
        return _StartingRun(lambda: executing._start(body))

    def cleanup(self) -> None:
        """Nothing to clean: no temporary files are made (kept for Metaflow's API)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cleanup()


async def _to_end(executing: ExecutingRun, body: Callable[..., Awaitable[Run]]) -> None:
    await executing._start(body)
    await executing.wait()


def _run_id_writer(path: str | os.PathLike[str]) -> Callable[[Event], None]:
    def write(event: Event) -> None:
        if isinstance(event, RunStarted):
            Path(path).write_text(event.run_id)

    return write


class NBRunner(Runner):
    """`Runner` for a flow class defined in a notebook: `NBRunner(MyFlow).nbrun(alpha=5)`."""

    def __init__(
        self,
        flow: type[FlowSpec],
        show_output: bool = True,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        base_dir: str | None = None,
        file_read_timeout: int = 3600,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(flow, type) and issubclass(flow, FlowSpec)):
            raise TypeError(f"NBRunner() takes a FlowSpec subclass, not {flow!r}.")
        super().__init__(
            flow.__name__, show_output, profile, env, None, file_read_timeout, **kwargs
        )
        self._flow_cls = flow

    def nbrun(self, **kwargs: Any) -> Run:
        """Run the flow to its end and return its client Run (whether it succeeded or not)."""
        return _the_run(self.run(**kwargs))

    def nbresume(self, **kwargs: Any) -> Run:
        """Resume a run to its end and return the new run's client Run."""
        return _the_run(self.resume(**kwargs))


def _the_run(executing: ExecutingRun) -> Run:
    assert executing.run is not None  # a run that ended was stored
    return executing.run


__all__ = ["ExecutingRun", "NBRunner", "Runner"]
