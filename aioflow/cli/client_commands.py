"""The commands that read a store back through the client: `logs`, `dump`, `runs`/`list`, `tag`.

They need no flow file: each names what it reads by pathspec (`Flow/3/start`, `Flow/3`) and
finds the store with `--root` (or $AIOFLOW_ROOT, or ./.aioflow). `_reading` opens the store in
the namespace asked for and turns client errors into Metaflow-style exits (`output.py`); the
`tag` commands, as Metaflow's, look in the user's own namespace unless told otherwise. The
`aioflow` command (`typer_app.py`) registers them; the text they print is made by
`runs_table.py`, `dump.py` and the client's `tags.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import click
import typer

from ..client import Flow, Run, shared_store, tasks_at
from ..client.namespaces import scoped_namespace
from ..client.tags import format_run_tags, format_tag_table
from ..current import current_username
from ..exceptions import (
    AioflowException,
    InvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
)
from ..store import Store
from ..store.settings import BLOBS_ENV, METADATA_ENV
from .dump import dump_task
from .output import _echo, _fail
from .runs_table import runs_table


def _root_given(value: str | None) -> str | None:
    # An empty root would be the working folder (Path("") is "."): a usage error instead.
    if value == "":
        raise typer.BadParameter("is empty: give a store folder, or leave --root out.")
    return value


RootOption = Annotated[
    str | None,
    typer.Option(
        "--root",
        envvar="AIOFLOW_ROOT",
        help="Store folder.",
        # A text default: typer prints it as `[default: ...]`, which help text cannot carry
        # (rich markup reads the brackets as a tag and drops them).
        show_default="./.aioflow or the nearest one above",
        callback=_root_given,
    ),
]
# Where a store's metadata and blobs live (store/settings.py), declared once: the `aioflow`
# command takes them before any command (typer_app.py), `aioflow ui` after its name too.
MetadataOption = Annotated[
    str | None,
    typer.Option(
        "--metadata",
        envvar=METADATA_ENV,
        help="Where run metadata lives: postgresql://..., sqlite:///file (default: SQLite "
        "in the store folder).",
    ),
]
BlobsOption = Annotated[
    str | None,
    typer.Option(
        "--blobs",
        envvar=BLOBS_ENV,
        help="Where artifacts live: s3://bucket/prefix, gs://..., az://..., file:///..., "
        "a folder (default: the store folder's blobs/).",
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


def logs(
    pathspec: Annotated[str, typer.Argument(help="Flow/RunID/StepName or .../TaskID.")],
    stdout: Annotated[bool, typer.Option("--stdout", help="Show stdout only.")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr only.")] = False,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", help="Prefix each line with when it was printed.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", help="Show this attempt.", min=0, show_default="the latest"),
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
        typer.Argument(help="Only runs of this flow.", show_default="every flow"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 20,
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """List the newest runs: status, start time, duration, user, origin and tags
    (`aioflow runs delete FLOW/RUN ...` deletes runs)."""
    with _reading(root, namespace or None) as store:
        lines = runs_table(store, flow, limit)
        if not lines:
            where = f" of {flow}" if flow else ""
            _echo(f"No runs{where} in {store.root}.")
        for line in lines:
            _echo(line)


# -- tag ----------------------------------------------------------------------------------------

tag_app = typer.Typer(
    help="Add, remove, replace and list the user tags of runs.", no_args_is_help=True
)
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


def _change_tags(
    run: str, namespace: str | None, root: str | None, change: Callable[[Run], None]
) -> None:
    """Apply one tag change to a run of the user's namespace and print the new tags."""
    ns = _user_namespace(namespace)
    with _reading(root, ns) as store:
        target = _run_to_tag(store, run, ns)
        change(target)
        _echo("Operation successful. New tags:")
        _print_tags(target)


@tag_app.command("add")
def tag_add(
    run: RunArgument,
    tags: Annotated[list[str], typer.Argument(help="Tags to add.")],
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """Add tags to a run: aioflow tag add Flow/3 nightly reviewed."""
    _change_tags(run, namespace, root, lambda target: target.add_tags(tags))


@tag_app.command("remove")
def tag_remove(
    run: RunArgument,
    tags: Annotated[list[str], typer.Argument(help="Tags to remove.")],
    namespace: NamespaceOption = None,
    root: RootOption = None,
) -> None:
    """Remove tags from a run (system tags cannot be removed)."""
    _change_tags(run, namespace, root, lambda target: target.remove_tags(tags))


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
    _change_tags(run, namespace, root, lambda target: target.replace_tags(remove, add))


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
