"""The `aioflow` command: the typer app and its flow-file commands.

`main`, the console script (`entry.py`), imports this module for every command line but a
flow's own `run`, `resume` and `spin`. `aioflow run flow.py ...` and `aioflow resume flow.py
...` load the flow file and hand the rest of the command line to the flow's own command
(`flow_commands.py`), so options and `--help` are the flow's; `show`, `check` and `version`
are answered here. The commands that read a
store back (`client_commands.py`) are registered after these, in the order `--help` lists them.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import click
import typer

from .._version import __version__
from ..graph import FlowGraph
from .card_commands import card_app
from .client_commands import BlobsOption, MetadataOption, dump, logs, runs, tag_app
from .entry import METAFLOW_IMPORTS, RUNS_DELETE, _load, _store_options
from .flow_commands import flow_group
from .gc_commands import gc, runs_delete
from .graph_text import graph_text
from .output import _echo, _header, _validate
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
app.command(RUNS_DELETE, hidden=True)(runs_delete)
