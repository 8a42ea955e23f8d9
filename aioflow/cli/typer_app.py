"""The `aioflow` command: the typer app, its flow-file commands, and `main`, the console script.

`aioflow run flow.py ...` and `aioflow resume flow.py ...` load the flow file and hand the rest
of the command line to the flow's own command (`flow_commands.py`), so options and `--help`
are the flow's; `show`, `check` and `version` are answered here. The commands that read a
store back (`client_commands.py`) are registered after these, in the order `--help` lists them.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import click
import typer

from .._version import __version__
from ..exceptions import FlowDefinitionError
from ..flowspec import FlowSpec
from ..graph import FlowGraph
from ..loader import load_flow
from ..store.settings import BLOBS_ENV, METADATA_ENV
from .card_commands import card_app
from .client_commands import BlobsOption, MetadataOption, dump, logs, runs, tag_app
from .flow_commands import command_without_flow, flow_group
from .gc_commands import gc, runs_delete
from .graph_text import graph_text
from .output import _echo, _fail, _header, _validate
from .report_commands import report, ui
from .store_commands import store_app

app = typer.Typer(
    name="aioflow",
    help="Run Metaflow-style flows in-process on asyncio.",
    no_args_is_help=True,
    # `aioflow --install-completion` installs completion for the user's shell (typer's).
    add_completion=True,
)

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
_RUNS_DELETE = "runs delete"


def _load(flow_file: Path, metaflow_imports: bool = False) -> type[FlowSpec]:
    try:
        return load_flow(flow_file, metaflow_imports=metaflow_imports)
    except FlowDefinitionError as exc:
        _fail(exc)


def _delegate(
    ctx: typer.Context, flow_file: Path, command: str, metaflow_imports: bool = False
) -> None:
    # Invoke the flow's command itself, so usage lines read `aioflow run flow.py [OPTIONS]`.
    group = flow_group(_load(flow_file, metaflow_imports))
    group.commands[command].main(ctx.args, prog_name=f"aioflow {command} {flow_file}")


FlowFile = Annotated[Path, typer.Argument(help="The flow file.")]


class GraphFormat(str, Enum):
    """What `aioflow show --format` prints (see `graph_text.py`)."""

    text = "text"
    dot = "dot"
    mermaid = "mermaid"


#: Runs a flow file written for Metaflow as it is (see `aioflow/metaflow_imports.py`).
METAFLOW_IMPORTS = "--metaflow-imports"
MetaflowImports = Annotated[
    bool,
    typer.Option(
        METAFLOW_IMPORTS,
        help="Resolve the flow file's `metaflow` imports to aioflow (for this flow only).",
    ),
]


@app.command(context_settings=_PASS_THROUGH)
def run(ctx: typer.Context, flow_file: FlowFile, metaflow_imports: MetaflowImports = False) -> None:
    """Run a flow: aioflow run flow.py [--param value ...] (see: aioflow run flow.py --help)."""
    _delegate(ctx, flow_file, "run", metaflow_imports)


@app.command(context_settings=_PASS_THROUGH)
def resume(
    ctx: typer.Context, flow_file: FlowFile, metaflow_imports: MetaflowImports = False
) -> None:
    """Resume a run: aioflow resume flow.py [STEP] [--origin-run-id ID] (see --help)."""
    _delegate(ctx, flow_file, "resume", metaflow_imports)


@app.command(context_settings=_PASS_THROUGH)
def spin(
    ctx: typer.Context, flow_file: FlowFile, metaflow_imports: MetaflowImports = False
) -> None:
    """Run one step again, here: aioflow spin flow.py STEP [--run-id N] [--task ID] (see --help)."""
    _delegate(ctx, flow_file, "spin", metaflow_imports)


@app.command()
def show(
    flow_file: FlowFile,
    fmt: Annotated[
        GraphFormat,
        typer.Option(
            "--format",
            help="text (steps and docstrings), dot (Graphviz) or mermaid (a Mermaid flowchart).",
        ),
    ] = GraphFormat.text,
) -> None:
    """Show a flow's steps and transitions, as text or as a Graphviz or Mermaid graph."""
    click.echo(graph_text(FlowGraph(_load(flow_file)), fmt.value), nl=False)


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


def _print_version(value: bool) -> None:
    if value:
        _echo(f"aioflow {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    metadata: MetadataOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Run Metaflow-style flows in-process on asyncio."""
    _store_options(metadata, blobs)


def _store_options(metadata: str | None, blobs: str | None) -> None:
    # Exported for the whole process: every store it opens, and its worker processes, use them.
    if metadata:
        os.environ[METADATA_ENV] = metadata
    if blobs:
        os.environ[BLOBS_ENV] = blobs


def _leading_store_options(args: list[str]) -> list[str]:
    """Take `--metadata URL` and `--blobs URL` given before the command (`aioflow --blobs
    s3://b/p run flow.py`) off `args`, exporting them; the rest of the command line."""
    args = list(args)
    while args:
        name, eq, value = args[0].partition("=")
        if name not in ("--metadata", "--blobs"):
            break
        if not eq:
            if len(args) < 2:
                break  # typer reports the missing value
            value = args[1]
            del args[1]
        del args[0]
        _store_options(
            value if name == "--metadata" else None, value if name == "--blobs" else None
        )
    return args


# -- reading runs back (client_commands.py) -----------------------------------------------------
# Registered here, after the flow-file commands, so `aioflow --help` lists them in this order.
app.command()(logs)
app.command()(dump)
app.command("runs")(runs)
app.command("list", help="List the newest runs (the same as `aioflow runs`).")(runs)
app.add_typer(tag_app, name="tag")
app.add_typer(card_app, name="card")
app.command()(report)
app.command()(ui)
app.command()(gc)
app.add_typer(store_app, name="store")
# `aioflow runs delete ...`: `runs` takes a flow name as its argument, so `main` hands
# `runs delete` to this command (its name has the space, so usage lines read as typed).
app.command(_RUNS_DELETE, hidden=True)(runs_delete)


def main() -> None:
    """Entry point of the `aioflow` console script."""
    args = _leading_store_options(sys.argv[1:])
    # `aioflow run flow.py --help` must reach the flow's own run command, which lists the
    # flow's parameters, rather than typer's help for `run`. The flow file may come after
    # options (`aioflow run --quiet flow.py`): it is the first argument naming a .py file.
    if args and args[0] in ("run", "resume", "spin"):
        rest = args[1:]
        file_at = next((i for i, a in enumerate(rest) if a.endswith(".py")), None)
        if file_at is not None:
            flow_file = rest.pop(file_at)
            metaflow_imports = METAFLOW_IMPORTS in rest
            rest = [a for a in rest if a != METAFLOW_IMPORTS]
            group = flow_group(_load(Path(flow_file), metaflow_imports))
            group.commands[args[0]].main(rest, prog_name=f"aioflow {args[0]} {flow_file}")
            return
        if (
            "--help" in rest and args[0] != "spin"
        ):  # no flow file yet: list the options every flow's command takes
            command_without_flow(args[0]).main(["--help"], prog_name=f"aioflow {args[0]}")
            return
    if args[:2] == ["runs", "delete"]:
        app(args=[_RUNS_DELETE, *args[2:]], prog_name="aioflow")
        return
    app()
