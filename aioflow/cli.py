"""The `aioflow` command and the `python flow.py <command>` idiom: a thin shell over the runtime.

`aioflow run flow.py --alpha 0.5` loads the flow file and hands the rest of the command line to
the flow's own command group, the same one `python flow.py run --alpha 0.5` reaches through
`MyFlow()`. The group's `run` command has one option per flow parameter, so `--help` lists them.

`aioflow runs|list`, `logs`, `dump` and `tag` read a store back through the client (see
`client.py`, `runs_table.py`, `dump.py`, `tags.py`); they need no flow file.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import click
import typer

from . import __version__
from .client import Flow, Run, shared_store, tasks_at
from .console import Console
from .dump import dump_task
from .events import Event, RunStarted
from .exceptions import (
    AioflowException,
    FlowDefinitionError,
    InvalidPathspec,
    LintError,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    ParameterError,
)
from .flowspec import FlowSpec
from .graph import FlowGraph
from .loader import load_flow
from .namespaces import scoped_namespace
from .parameters import click_params
from .runs_table import runs_table
from .runtime.runner import (
    PreparedRun,
    RunOptions,
    RunOutcome,
    current_username,
    execute,
    prepare,
    prepare_resume,
    validate_tags,
)
from .store import Store
from .tags import format_run_tags, format_tag_table

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _echo(text: str = "", err: bool = False) -> None:
    click.echo(text, err=err)


def _fail(exc: AioflowException, code: int = EXIT_FAILED) -> NoReturn:
    """Print an error the way Metaflow does (headline, where, indented message) and exit."""
    headline = exc.headline
    message = exc.message
    if isinstance(exc, LintError):
        message = exc.bare_message
        if exc.file is not None:
            headline += f" in file {exc.file}"
        if exc.line is not None:
            headline += f" on line {exc.line}"
    # Metaflow's console drops the `*` highlight markers; the exception text keeps them.
    _echo(f"    {headline}:".replace("*", ""), err=True)
    for line in message.splitlines():
        _echo(f"    {line}".replace("*", ""), err=True)
    _echo("", err=True)
    raise SystemExit(code)


def _validate(flow_cls: type[FlowSpec]) -> FlowGraph:
    _echo("Validating your flow...", err=True)
    try:
        graph = FlowGraph(flow_cls)
        graph.lint()
    except FlowDefinitionError as exc:
        _fail(exc)
    _echo("    The graph looks good!", err=True)
    return graph


def _header(flow_cls: type[FlowSpec]) -> None:
    user = current_username()
    _echo(f"aioflow {__version__} executing {flow_cls.__name__} for user:{user}", err=True)


# -- running ------------------------------------------------------------------------------------


async def _run_until_signal(prepared: PreparedRun, options: RunOptions) -> RunOutcome | None:
    """Run the flow; the first Ctrl-C (or SIGTERM) cancels it cleanly, a second one exits."""
    outcome: RunOutcome | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        run_scope = anyio.CancelScope()

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                count = 0
                async for _ in signals:
                    count += 1
                    if count == 1:
                        _echo("Cancelling the run (press Ctrl-C again to exit at once)...", True)
                        run_scope.cancel()
                    else:
                        os._exit(EXIT_INTERRUPTED)

        tg.start_soon(watch_signals)
        with run_scope:
            try:
                outcome = await execute(prepared, options)
            except Exception as exc:
                # Raised out of the task group it would arrive wrapped in an ExceptionGroup;
                # keep it bare so `_run` can report it.
                error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return outcome


def _run(flow_cls: type[FlowSpec], given: dict[str, Any], opts: dict[str, Any]) -> None:
    _header(flow_cls)
    _validate(flow_cls)
    try:
        prepared = prepare(
            flow_cls,
            given,
            from_cli=True,
            with_decorators=opts["with_"],
            executor=opts["executor"],
        )
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc
    except FlowDefinitionError as exc:
        _fail(exc)
    _execute(flow_cls, prepared, opts)


def _resume(flow_cls: type[FlowSpec], step: str | None, opts: dict[str, Any]) -> None:
    _header(flow_cls)
    _validate(flow_cls)
    try:
        prepared, origin_id = prepare_resume(
            flow_cls,
            root=opts["root"],
            origin_run_id=opts["origin_run_id"],
            step=step,
            with_decorators=opts["with_"],
            executor=opts["executor"],
        )
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc
    except AioflowException as exc:
        _fail(exc)
    _echo(
        f"Resuming {flow_cls.__name__}/{origin_id}" + (f" from step {step}" if step else ""), True
    )
    _execute(flow_cls, prepared, opts, origin_id, step)


def _execute(
    flow_cls: type[FlowSpec],
    prepared: PreparedRun,
    opts: dict[str, Any],
    origin_run_id: str | None = None,
    resume_step: str | None = None,
) -> None:
    listeners: list[Any] = [] if opts["quiet"] else [Console()]
    started: list[RunStarted] = []

    def remember(event: Event) -> None:
        if isinstance(event, RunStarted):
            started.append(event)
            if opts["run_id_file"]:
                Path(opts["run_id_file"]).write_text(event.run_id)

    options = RunOptions(
        root=opts["root"],
        max_workers=opts["max_workers"],
        max_num_splits=opts["max_num_splits"],
        tags=opts["tag"],
        listeners=[remember, *listeners],
        origin_run_id=origin_run_id,
        resume_step=resume_step,
    )
    try:
        outcome = anyio.run(_run_until_signal, prepared, options)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from exc
    except AioflowException as exc:
        _fail(exc)
    except Exception:
        # Anything unexpected is printed as Metaflow does: "Internal error" and the traceback.
        _echo("    Internal error", err=True)
        _echo(traceback.format_exc(), err=True)
        raise SystemExit(EXIT_FAILED) from None
    if outcome is None:
        run_id = started[0].run_id if started else "?"
        _echo(f"Run {flow_cls.__name__}/{run_id} was cancelled and marked as failed.", err=True)
        raise SystemExit(EXIT_INTERRUPTED)
    if not outcome.successful:
        raise SystemExit(EXIT_FAILED)


def _check_tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    # A bad --tag is a usage error naming the option, found before anything is stored.
    try:
        return validate_tags(value)
    except ParameterError as exc:
        raise click.BadParameter(exc.message, ctx, param) from exc


_RUN_OPTIONS = [
    click.Option(["--max-workers"], type=click.IntRange(min=1), default=16, show_default=True,
                 help="Maximum number of tasks running at once."),
    click.Option(["--max-num-splits"], type=click.IntRange(min=1), default=100,
                 show_default=True, help="Maximum number of splits a foreach may create."),
    click.Option(["--tag"], multiple=True, callback=_check_tags,
                 help="Tag the run (repeatable)."),
    click.Option(["--run-id-file"], default=None, help="Write the run id to this file."),
    click.Option(["--root"], default=None, envvar="AIOFLOW_ROOT",
                 help="Store folder [default: ./.aioflow, or $AIOFLOW_ROOT]."),
    click.Option(["--quiet"], is_flag=True, help="Print nothing but errors."),
    click.Option(["--executor"], type=click.Choice(["thread", "process"]), default="thread",
                 show_default=True, help="Where sync steps run by default."),
    click.Option(["--with", "with_"], multiple=True, metavar="DECORATOR",
                 help="Add a decorator to every step, e.g. retry or retry:times=2 (repeatable)."),
]  # fmt: skip
_OPTION_NAMES = {opt.name for opt in _RUN_OPTIONS}


def _check_without_command(flow_cls: type[FlowSpec]) -> Any:
    def callback(ctx: click.Context) -> None:
        # `python flow.py` with no command checks the flow, as Metaflow's does.
        if ctx.invoked_subcommand is None:
            _header(flow_cls)
            _validate(flow_cls)

    return callback


def flow_group(flow_cls: type[FlowSpec]) -> click.Group:
    """The command group of one flow: run, show, check."""
    group = click.Group(
        name=flow_cls.__name__,
        help=flow_cls.__doc__,
        invoke_without_command=True,
        callback=click.pass_context(_check_without_command(flow_cls)),
    )

    def run_callback(**kwargs: Any) -> None:
        opts = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTION_NAMES}
        given = {k: v for k, v in kwargs.items() if v is not None}
        _run(flow_cls, given, opts)

    try:
        params = click_params(flow_cls)
    except ParameterError as exc:  # a badly declared parameter: the flow's fault, exit 1
        _fail(exc)
    group.add_command(
        click.Command(
            "run",
            params=[*params, *_RUN_OPTIONS],
            callback=run_callback,
            help=f"Run {flow_cls.__name__}. Flow parameters are options.",
        )
    )

    def resume_callback(step: str | None, origin_run_id: str | None, **opts: Any) -> None:
        opts["origin_run_id"] = origin_run_id
        _resume(flow_cls, step, opts)

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
            ],
            callback=resume_callback,
            help=(
                f"Resume a run of {flow_cls.__name__}: clone its successful tasks and run the "
                "rest. With STEP, re-run that step and everything after it."
            ),
        )
    )

    @group.command(help="Show the flow's steps and transitions.")
    def show() -> None:
        _echo(FlowGraph(flow_cls).describe())

    @group.command(help="Check the flow's graph without running it.")
    def check() -> None:
        _header(flow_cls)
        _validate(flow_cls)

    return group


def main_for_flow(flow_cls: type[FlowSpec], argv: list[str]) -> None:
    """`python flow.py <command> ...`: run the flow's command group and exit."""
    flow_group(flow_cls).main(argv, prog_name=os.path.basename(sys.argv[0]))


# -- the aioflow command --------------------------------------------------------------------------

app = typer.Typer(
    name="aioflow",
    help="Run Metaflow-style flows in-process on asyncio.",
    no_args_is_help=True,
    add_completion=False,
)

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _load(flow_file: Path) -> type[FlowSpec]:
    try:
        return load_flow(flow_file)
    except FlowDefinitionError as exc:
        _fail(exc)


def _delegate(ctx: typer.Context, flow_file: Path, command: str) -> None:
    # Invoke the flow's command itself, so usage lines read `aioflow run flow.py [OPTIONS]`.
    group = flow_group(_load(flow_file))
    group.commands[command].main(ctx.args, prog_name=f"aioflow {command} {flow_file}")


FlowFile = Annotated[Path, typer.Argument(help="The flow file.")]


@app.command(context_settings=_PASS_THROUGH)
def run(ctx: typer.Context, flow_file: FlowFile) -> None:
    """Run a flow: aioflow run flow.py [--param value ...] (see: aioflow run flow.py --help)."""
    _delegate(ctx, flow_file, "run")


@app.command(context_settings=_PASS_THROUGH)
def resume(ctx: typer.Context, flow_file: FlowFile) -> None:
    """Resume a run: aioflow resume flow.py [STEP] [--origin-run-id ID] (see --help)."""
    _delegate(ctx, flow_file, "resume")


@app.command()
def show(flow_file: FlowFile) -> None:
    """Show a flow's steps and transitions."""
    _echo(FlowGraph(_load(flow_file)).describe())


@app.command()
def check(flow_file: FlowFile) -> None:
    """Check a flow's graph without running it."""
    flow_cls = _load(flow_file)
    _header(flow_cls)
    _validate(flow_cls)


@app.command()
def version() -> None:
    """Print aioflow's version."""
    _echo(f"aioflow {__version__}")


# -- reading runs back: logs, dump, runs, tag ----------------------------------------------------

RootOption = Annotated[
    str | None,
    typer.Option(
        "--root",
        envvar="AIOFLOW_ROOT",
        help="Store folder [default: ./.aioflow, or $AIOFLOW_ROOT].",
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="Only runs carrying this tag, e.g. user:alice ('' for every run).",
    ),
]


@contextmanager
def _reading(root: str | None, ns: str | None = None) -> Iterator[Store]:
    """The store to read, in namespace `ns`; client errors become Metaflow-style exits."""
    try:
        with scoped_namespace(ns):
            yield shared_store(root)
    except InvalidPathspec as exc:
        # typer's own exception: newer typers carry their own copy of click.
        raise typer.BadParameter(exc.message) from exc
    except AioflowException as exc:
        _fail(exc)


def _user_namespace(given: str | None) -> str | None:
    # As Metaflow's `tag` commands: the user's own namespace unless told otherwise.
    if given is None:
        return f"user:{current_username()}"
    return given or None


def _stamp(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " "


@app.command()
def logs(
    pathspec: Annotated[str, typer.Argument(help="Flow/RunID/StepName or .../TaskID.")],
    stdout: Annotated[bool, typer.Option("--stdout", help="Show stdout only.")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr only.")] = False,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", help="Prefix each line with when it was printed.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", help="Show this attempt [default: the latest].", min=0),
    ] = None,
    root: RootOption = None,
) -> None:
    """Show what the tasks of a step, or one task, printed: aioflow logs Flow/3/start."""
    streams = [name for name, wanted in (("stdout", stdout), ("stderr", stderr)) if wanted]
    streams = streams or ["stdout", "stderr"]
    with _reading(root) as store:
        for task in tasks_at(pathspec, attempt, store=store):
            _echo(f"Dumping logs of {task.pathspec} (attempt {task.current_attempt})", err=True)
            if task.status == "running":
                _echo("    (still running: its output is stored when the attempt ends)", True)
            for stream in streams:
                if len(streams) > 1:
                    _echo(stream, err=True)
                lines = task.loglines(stream)
                text = "".join(f"{_stamp(ts) if timestamps else ''}{line}\n" for ts, line in lines)
                click.echo(text, nl=False)


@app.command()
def dump(
    pathspec: Annotated[str, typer.Argument(help="Flow/RunID/StepName or .../TaskID.")],
    private: Annotated[
        bool, typer.Option("--private/--no-private", help="Show _private artifacts too.")
    ] = False,
    include: Annotated[
        str, typer.Option("--include", help="Only these artifacts (comma-separated).")
    ] = "",
    max_value_size: Annotated[
        int,
        typer.Option(
            "--max-value-size", min=0, help="Cut values to this many characters; 0: no values."
        ),
    ] = 1000,
    root: RootOption = None,
) -> None:
    """Show each artifact of a step's tasks, or of one task: name, size, type, value."""
    wanted = {name for name in include.split(",") if name}
    found: set[str] = set()
    with _reading(root) as store:
        for task in tasks_at(pathspec, store=store):
            _echo(f"Dumping output of {task.pathspec}", err=True)
            rows = dump_task(task, private=private, include=wanted, max_value_size=max_value_size)
            found.update(row.name for row in rows)
            click.echo("".join(row.line() + "\n" for row in rows), nl=False)
        missing = sorted(wanted - found)
        if missing:
            raise MetaflowNotFound(
                f"No artifact named {', '.join(missing)} in {pathspec} "
                "(--include names artifacts exactly; see them all with --private)."
            )


def runs(
    flow: Annotated[
        str | None,
        typer.Argument(help="Only runs of this flow [default: every flow]."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 20,
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """List the newest runs: status, start time, duration, user, origin and tags."""
    with _reading(root, namespace or None) as store:
        lines = runs_table(store, flow, limit)
        if not lines:
            where = f" of {flow}" if flow else ""
            _echo(f"No runs{where} in {store.root}.")
        for line in lines:
            _echo(line)


app.command("runs")(runs)
app.command("list", help="List the newest runs (the same as `aioflow runs`).")(runs)

tag_app = typer.Typer(
    help="Add, remove, replace and list the user tags of runs.", no_args_is_help=True
)
app.add_typer(tag_app, name="tag")
RunArgument = Annotated[str, typer.Argument(help="The run: FlowName/RunID.")]


def _print_tags(run: Run, hide_system: bool = False) -> None:
    for line in format_run_tags(
        run.pathspec, run.user_tags, run.system_tags, hide_system=hide_system
    ):
        _echo(line)


def _run_to_tag(store: Store, pathspec: str, ns: str | None) -> Run:
    try:
        return Run(pathspec, _store=store)
    except MetaflowNamespaceMismatch as exc:
        raise MetaflowNamespaceMismatch(
            f"Run {pathspec} does not belong to namespace {ns}. Choose its namespace with "
            "--namespace (--namespace '' reaches every run)."
        ) from exc


@tag_app.command("add")
def tag_add(
    run: RunArgument,
    tags: Annotated[list[str], typer.Argument(help="Tags to add.")],
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """Add tags to a run: aioflow tag add Flow/3 nightly reviewed."""
    ns = _user_namespace(namespace)
    with _reading(root, ns) as store:
        target = _run_to_tag(store, run, ns)
        target.add_tags(tags)
        _echo("Operation successful. New tags:")
        _print_tags(target)


@tag_app.command("remove")
def tag_remove(
    run: RunArgument,
    tags: Annotated[list[str], typer.Argument(help="Tags to remove.")],
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """Remove tags from a run (system tags cannot be removed)."""
    ns = _user_namespace(namespace)
    with _reading(root, ns) as store:
        target = _run_to_tag(store, run, ns)
        target.remove_tags(tags)
        _echo("Operation successful. New tags:")
        _print_tags(target)


@tag_app.command("replace")
def tag_replace(
    run: RunArgument,
    add: Annotated[
        list[str] | None,
        typer.Option("--add", help="A tag to add (repeatable)."),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", help="A tag to remove (repeatable)."),
    ] = None,
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """Remove, then add tags of a run, atomically: --remove old --add new."""
    hint = "'--add' / '--remove'"
    if not add and not remove:
        raise typer.BadParameter(
            "Specify at least one tag to add (--add) and one tag to remove (--remove).",
            param_hint=hint,
        )
    if not remove:
        raise typer.BadParameter(
            "Specify at least one tag to remove; else please use tag add.", param_hint=hint
        )
    if not add:
        raise typer.BadParameter(
            "Specify at least one tag to add, else please use tag remove.", param_hint=hint
        )
    ns = _user_namespace(namespace)
    with _reading(root, ns) as store:
        target = _run_to_tag(store, run, ns)
        target.replace_tags(remove, add)
        _echo("Operation successful. New tags:")
        _print_tags(target)


@tag_app.command("list")
def tag_list(
    target: Annotated[str, typer.Argument(help="A run (FlowName/RunID) or a flow's runs.")],
    hide_system_tags: Annotated[
        bool, typer.Option("--hide-system-tags", help="Show user tags only.")
    ] = False,
    group_by_tag: Annotated[
        bool, typer.Option("--group-by-tag", help="List each user tag with its runs.")
    ] = False,
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """List the tags of a run, or of every run of a flow in the namespace."""
    ns = _user_namespace(namespace)
    with _reading(root, ns) as store:
        if "/" in target:
            chosen = [_run_to_tag(store, target, ns)]
        else:
            chosen = list(Flow(target, _store=store))
        if group_by_tag:
            for line in format_tag_table([(r.pathspec, r.user_tags) for r in chosen]):
                _echo(line)
            return
        for run in chosen:
            _print_tags(run, hide_system_tags)


def main() -> None:
    """Entry point of the `aioflow` console script."""
    args = sys.argv[1:]
    # `aioflow run flow.py --help` must reach the flow's own run command, which lists the
    # flow's parameters, rather than typer's help for `run`. The flow file may come after
    # options (`aioflow run --quiet flow.py`): it is the first argument naming a .py file.
    if args and args[0] in ("run", "resume"):
        rest = args[1:]
        file_at = next((i for i, a in enumerate(rest) if a.endswith(".py")), None)
        if file_at is not None:
            flow_file = rest.pop(file_at)
            group = flow_group(_load(Path(flow_file)))
            group.commands[args[0]].main(rest, prog_name=f"aioflow {args[0]} {flow_file}")
            return
    app()
