"""The command group of one flow: `run`, `resume`, `show`, `check`, and `main_for_flow`.

`flow_group(MyFlow)` builds a click group whose `run` command has one option per flow
parameter plus the run options (`--max-workers`, `--tag`, `--root`, ...), so `--help` lists
them. `python flow.py run ...` reaches it through `main_for_flow`, and `aioflow run flow.py
...` through the `aioflow` command (`typer_app.py`). A run executes in this process under
`anyio.run`; the first Ctrl-C (or SIGTERM) cancels it cleanly, and the outcome becomes the
exit code (`output.py`).
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import click

from ..console import Console, RunConsole, console_for, failure_lines
from ..decorators import EXECUTORS
from ..exceptions import AioflowException, FlowDefinitionError, ParameterError
from ..flowspec import FlowSpec
from ..graph import FlowGraph
from ..runtime.config import (
    DEFAULT_EXECUTOR,
    DEFAULT_MAX_NUM_SPLITS,
    DEFAULT_MAX_WORKERS,
    RunConfig,
    run_config,
    validate_tags,
)
from ..runtime.graphs import linted_graph
from ..runtime.runner import PreparedRun, RunOutcome, open_run, prepare, prepare_resume
from ..runtime.task import task_pathspec
from ..store.keeper import StoreKeeper, store_keeper
from ..tracebacks import format_exception
from .flow_store_commands import add_store_commands
from .graph_text import FORMATS, graph_text
from .output import EXIT_FAILED, EXIT_INTERRUPTED, _echo, _fail, _header, _validate
from .parameter_options import click_params
from .signals import receive_stop_signals
from .spin_command import spin_command

# -- running ------------------------------------------------------------------------------------


async def _run_until_signal(
    prepared: PreparedRun,
    config: RunConfig,
    on_open: Callable[[str], None],
    notice: Callable[[str], None],
    keepers: list[StoreKeeper],
) -> RunOutcome | None:
    """Run the flow; the first Ctrl-C (or SIGTERM) cancels it cleanly, a second one exits.

    `on_open` gets the run id as soon as the run is stored, before its first task; `notice`
    prints the console's line about the cancelling (on a line of its own). The loop's store
    keeper goes to `keepers`, for `_execute` to close once the loop is over.
    """
    keepers.append(store_keeper())
    outcome: RunOutcome | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        run_scope = anyio.CancelScope()

        async def watch_signals() -> None:
            with receive_stop_signals() as signals:
                count = 0
                async for _ in signals:
                    count += 1
                    if count == 1:
                        notice("Cancelling the run (press Ctrl-C again to exit at once)...")
                        run_scope.cancel()
                    else:
                        os._exit(EXIT_INTERRUPTED)

        tg.start_soon(watch_signals)
        with run_scope:
            try:
                opened = await open_run(prepared, config)
                on_open(opened.run_id)
                outcome = await opened.run()
            except Exception as exc:
                # Raised out of the task group it would arrive wrapped in an ExceptionGroup;
                # keep it bare so `_run` can report it.
                error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return outcome


@functools.cache  # registered once per process
def _no_collection_at_exit() -> None:
    """Skip the interpreter's last garbage collections at the process's exit.

    They would walk every object left, 30,000 and more after a run (10-30 ms, a fifth of a
    small flow's whole `aioflow run`), only to find the modules' reference cycles to tear
    down, which the process's end frees anyway. Once the run is over (and its store closed,
    `_run_until_signal`), `gc.freeze()` at exit moves them out of the collector: the other
    `atexit` handlers and `weakref.finalize` callbacks still run, module globals are still
    cleared, and only unreachable objects in reference cycles go unfinalized, which the
    language allows at exit.
    """
    atexit.register(gc.freeze)


def _config(opts: dict[str, Any]) -> RunConfig:
    """The run options of the command line (click has checked each already)."""
    try:
        return run_config(
            root=opts["root"],
            max_workers=opts["max_workers"],
            max_num_splits=opts["max_num_splits"],
            tags=opts["tag"],
            executor=opts["executor"],
            with_decorators=opts["with_"],
            quiet=opts["quiet"],
            run_id_file=opts["run_id_file"],
            config=dict(opts.get("config") or ()),
            config_value=dict(opts.get("config_value") or ()),
            branch=opts.get("branch"),
            production=bool(opts.get("production")),
            from_cli=True,
            dask_address=opts.get("dask_address"),
        )
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc


def _run(flow_cls: type[FlowSpec], given: dict[str, Any], opts: dict[str, Any]) -> None:
    _header(flow_cls)
    _validate(flow_cls)
    config = _config(opts)
    try:
        prepared = prepare(flow_cls, given, config, from_cli=True)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc
    except FlowDefinitionError as exc:
        _fail(exc)
    _execute(flow_cls, prepared, config, verbose=opts["verbose"], report=opts.get("report"))


def _resume(flow_cls: type[FlowSpec], step: str | None, opts: dict[str, Any]) -> None:
    _header(flow_cls)
    _validate(flow_cls)
    config = _config(opts)
    try:
        prepared, config = prepare_resume(
            flow_cls, config, origin_run_id=opts["origin_run_id"], step=step
        )
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc
    except AioflowException as exc:
        _fail(exc)
    _echo(
        f"Resuming {flow_cls.__name__}/{config.origin_run_id}"
        + (f" from step {step}" if step else ""),
        True,
    )
    _execute(flow_cls, prepared, config, verbose=opts["verbose"], report=opts.get("report"))


def _resume_hint() -> str:
    """The command that resumes a run of this command's flow, as a format string of `run_id`."""
    # The root command's name is how the user typed it: `aioflow run flow.py` (typer_app.py
    # passes it so) or `flow.py` (`python flow.py run`).
    typed = click.get_current_context().find_root().info_name or ""
    typed = typed.replace("{", "{{").replace("}", "}}")
    if typed.startswith("aioflow "):
        flow_file = typed.split(" ", 2)[-1]
        return f"aioflow resume {flow_file} --origin-run-id {{run_id}}"
    return f"python {typed} resume --origin-run-id {{run_id}}"


def _print_failure(outcome: RunOutcome) -> None:
    """What `--quiet` prints of a failed run: the failed task's traceback and the summary."""
    failure = outcome.failure
    if failure is not None and failure.error is not None:
        pathspec = task_pathspec(outcome.flow_name, outcome.run_id, failure.spec)
        for line in failure_lines(pathspec, failure.error.traceback):
            _echo(line, err=True)
    elif outcome.error is not None:
        _echo(f"    Run {outcome.flow_name}/{outcome.run_id} failed: {outcome.error}", err=True)


def _write_report(outcome: RunOutcome, report: Path) -> None:
    """`--report`: the ended run's report, written whether it succeeded or not."""
    from ..handle import client_run
    from ..report import write_report

    run = client_run(outcome)
    try:
        written = write_report(run, report)
    except AioflowException as exc:
        _fail(exc)
    finally:
        # The report read the store through the client: its connections close now, so
        # nothing is left for the exit to close (`_no_collection_at_exit`).
        run._store.close()
    _echo(f"Wrote the report of {outcome.flow_name}/{outcome.run_id} to {written}", err=True)


def _check_report(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    # A report that cannot be written is a usage error found before the run starts.
    if value is None:
        return None
    from ..report import report_target

    try:
        return report_target(value, "'--report'")
    except ParameterError as exc:
        raise click.BadParameter(exc.message.split(": ", 1)[1], ctx, param) from exc


def _execute(
    flow_cls: type[FlowSpec],
    prepared: PreparedRun,
    config: RunConfig,
    verbose: bool = False,
    report: Path | None = None,
) -> None:
    # No listener at all with --quiet: then the runtime builds no event per task, and a
    # failure is printed from the run's outcome.
    resume_hint = _resume_hint()
    console: RunConsole = Console()
    if not config.quiet:
        console = console_for(
            verbose=verbose, graph=linted_graph(flow_cls), resume_hint=resume_hint
        )
        config = config.listening(console)
    started: list[str] = []

    def remember(run_id: str) -> None:
        started.append(run_id)
        if config.run_id_file:
            Path(config.run_id_file).write_text(run_id)

    # (Full collections are kept off the run by the runtime: runtime/collector.py.)
    _no_collection_at_exit()
    keepers: list[StoreKeeper] = []
    try:
        outcome = anyio.run(_run_until_signal, prepared, config, remember, console.notice, keepers)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc
    except AioflowException as exc:
        _fail(exc)
    except Exception as exc:
        # Anything unexpected is printed as Metaflow does: "Internal error" and the traceback.
        _echo("    Internal error", err=True)
        _echo(format_exception(exc), err=True)
        raise SystemExit(EXIT_FAILED) from None
    finally:
        # The loop is over, and the process ends with it: the store's last connection closes
        # now (SQLite checkpoints its log then), so nothing is left for the exit to close
        # (`_no_collection_at_exit`).
        for keeper in keepers:
            keeper.close()
    if outcome is not None and report is not None:
        _write_report(outcome, report)
    if outcome is None:
        # The run is stored as cancelled (the word `aioflow runs` and the client use); the
        # live console's summary has said so already, with the command to resume it.
        if not console.summarizes and started:
            resume = resume_hint.format(run_id=started[0])
            _echo(f"Run {flow_cls.__name__}/{started[0]} was cancelled. Resume it with:", err=True)
            _echo(f"    {resume}", err=True)
        raise SystemExit(EXIT_INTERRUPTED)
    if not outcome.successful:
        if config.quiet:
            _print_failure(outcome)
        raise SystemExit(EXIT_FAILED)


def _check_tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    # A bad --tag is a usage error naming the option, found before anything is stored.
    try:
        return validate_tags(value)
    except ParameterError as exc:
        raise click.BadParameter(exc.message, ctx, param) from exc


_RUN_OPTIONS = [
    click.Option(["--max-workers"], type=click.IntRange(min=1), default=DEFAULT_MAX_WORKERS,
                 show_default=True, help="Maximum number of tasks running at once."),
    click.Option(["--max-num-splits"], type=click.IntRange(min=1),
                 default=DEFAULT_MAX_NUM_SPLITS, show_default=True,
                 help="Maximum number of splits a foreach may create."),
    click.Option(["--tag"], multiple=True, callback=_check_tags,
                 help="Tag the run (repeatable)."),
    click.Option(["--run-id-file"], default=None, help="Write the run id to this file."),
    click.Option(["--root"], default=None, envvar="AIOFLOW_ROOT", show_envvar=True,
                 show_default="./.aioflow or the nearest one above", help="Store folder."),
    click.Option(["--quiet"], is_flag=True,
                 help="Print nothing but errors and the failure summary."),
    click.Option(["--verbose"], is_flag=True,
                 help="On a terminal, also print when each task starts and finishes."),
    click.Option(["--executor"], type=click.Choice(EXECUTORS), default=DEFAULT_EXECUTOR,
                 show_default=True, help="Where sync steps run by default."),
    click.Option(["--dask-address"], default=None, envvar="AIOFLOW_DASK_ADDRESS",
                 show_envvar=True, show_default="a local cluster for the run",
                 help="The Dask scheduler that dask steps run on, such as tcp://host:8786."),
    click.Option(["--report"], default=None, callback=_check_report, metavar="FILE",
                 help="Write the run's report (one HTML file) to FILE when it ends."),
    click.Option(["--with", "with_"], multiple=True, metavar="DECORATOR",
                 help="Add a decorator to every step, e.g. retry or retry:times=2 (repeatable)."),
]  # fmt: skip
_OPTION_NAMES = {opt.name for opt in _RUN_OPTIONS}

_FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
    help="text (steps and docstrings), dot (Graphviz) or mermaid (a Mermaid flowchart).",
)  # fmt: skip

# Configs and @project's branch: top-level options in Metaflow (`python flow.py --branch x
# run`), accepted there and after `run`/`resume` too (where `aioflow run flow.py` puts them),
# unless a flow parameter already takes the name.
_FLOW_OPTIONS = [
    click.Option(["--config", "config"], type=(str, str), multiple=True,
                 metavar="NAME FILE", help="Read config NAME from FILE (repeatable)."),
    click.Option(["--config-value", "config_value"], type=(str, str), multiple=True,
                 metavar="NAME JSON", help="Give config NAME as JSON text (repeatable)."),
    click.Option(["--branch"], default=None,
                 help="Run on this branch of the flow's @project (test.<branch>)."),
    click.Option(["--production"], is_flag=True, default=None,
                 help="Run on the production branch of the flow's @project."),
]  # fmt: skip
_TOP_LEVEL_KEY = "aioflow_flow_options"


def _flow_options(flow_cls: type[FlowSpec], params: list[click.Option]) -> list[click.Option]:
    """The config and @project options a command of `flow_cls` takes after `run`/`resume`."""
    taken = {name for param in params for name in param.opts}
    return [opt for opt in _FLOW_OPTIONS if not taken & set(opt.opts)]


def _with_top_level(opts: dict[str, Any]) -> dict[str, Any]:
    """`opts` with the config and @project options given before the command filled in."""
    ctx = click.get_current_context()
    top = ctx.find_root().meta.get(_TOP_LEVEL_KEY, {})
    merged = dict(opts)
    for name, value in top.items():
        if value and not merged.get(name):
            merged[name] = value
    return merged


def _check_without_command(flow_cls: type[FlowSpec]) -> Any:
    def callback(ctx: click.Context, **top_level: Any) -> None:
        ctx.meta[_TOP_LEVEL_KEY] = top_level
        # `python flow.py` with no command checks the flow, as Metaflow's does.
        if ctx.invoked_subcommand is None:
            _header(flow_cls)
            _validate(flow_cls)

    return callback


def flow_group(flow_cls: type[FlowSpec]) -> click.Group:
    """The command group of one flow: run, resume, show, check, and the store commands
    (logs, dump, tag, output-dot, output-mermaid: `flow_store_commands.py`)."""
    group = click.Group(
        name=flow_cls.__name__,
        help=flow_cls.__doc__,
        invoke_without_command=True,
        callback=click.pass_context(_check_without_command(flow_cls)),
        params=list(_FLOW_OPTIONS),
    )
    try:
        params = click_params(flow_cls)
    except ParameterError as exc:  # a badly declared parameter: the flow's fault, exit 1
        _fail(exc)
    flow_options = _flow_options(flow_cls, params)
    option_names = _OPTION_NAMES | {opt.name for opt in flow_options}

    def run_callback(**kwargs: Any) -> None:
        opts = {k: kwargs.pop(k) for k in list(kwargs) if k in option_names}
        given = {k: v for k, v in kwargs.items() if v is not None}
        _run(flow_cls, given, _with_top_level(opts))

    group.add_command(
        click.Command(
            "run",
            params=[*params, *_RUN_OPTIONS, *flow_options],
            callback=run_callback,
            help=f"Run {flow_cls.__name__}. Flow parameters are options.",
        )
    )

    def resume_callback(step: str | None, origin_run_id: str | None, **opts: Any) -> None:
        opts["origin_run_id"] = origin_run_id
        _resume(flow_cls, step, _with_top_level(opts))

    group.add_command(
        click.Command(
            "resume",
            params=[
                click.Argument(["step"], required=False),
                click.Option(
                    ["--origin-run-id"],
                    default=None,
                    help="The run to resume [default: the latest run started by `run`].",
                ),
                *_RUN_OPTIONS,
                *_FLOW_OPTIONS,
            ],
            callback=resume_callback,
            help=(
                f"Resume a run of {flow_cls.__name__}: clone its successful tasks and run the "
                "rest. With STEP, re-run that step and everything after it."
            ),
        )
    )

    @group.command(help="Show the flow's steps and transitions.")
    @_FORMAT_OPTION
    def show(fmt: str) -> None:
        click.echo(graph_text(FlowGraph(flow_cls), fmt), nl=False)

    @group.command(help="Check the flow's graph without running it.")
    def check() -> None:
        _header(flow_cls)
        _validate(flow_cls)

    add_store_commands(group, flow_cls)
    group.add_command(spin_command(flow_cls))
    return group


def main_for_flow(flow_cls: type[FlowSpec], argv: list[str]) -> None:
    """`python flow.py <command> ...`: run the flow's command group and exit."""
    flow_group(flow_cls).main(argv, prog_name=os.path.basename(sys.argv[0]))


def command_without_flow(name: str) -> click.Command:
    """`run` or `resume` before a flow file is named, for `aioflow run --help`: its help lists
    the options every flow's command takes (a flow's own `--help` adds its parameters)."""
    what = "Run a flow" if name == "run" else "Resume a run of a flow"
    return click.Command(
        name,
        params=[click.Argument(["flow_file"], metavar="FLOW_FILE"), *_RUN_OPTIONS],
        help=(
            f"{what}. The flow's parameters are options too, and so are its configs: "
            f"`aioflow {name} flow.py --help` lists them."
        ),
    )
