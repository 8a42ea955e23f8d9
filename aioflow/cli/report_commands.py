"""`aioflow report FLOW/RUN [-o run.html]` and
`aioflow ui [--root DIR] [--metadata URL] [--blobs URL] [--host] [--port]`.

`report` writes one self-contained HTML file (`aioflow.report`); `ui` serves the store's runs
live (`aioflow.ui`), and needs the `ui` extra (Starlette, uvicorn): without it, it is a usage
error saying what to install, before anything is opened. `ui` takes the store as every
command does (`--root`, and `aioflow --metadata URL --blobs URL ui`), and also with
`--metadata`/`--blobs` after its name; a store that cannot be opened is one error, before
anything is served.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from ..client import Run
from ..exceptions import AioflowException, InvalidPathspec
from ..store import Store
from ..store.settings import StoreSettings, store_settings
from .client_commands import BlobsOption, MetadataOption, RootOption, _reading
from .output import _echo, _fail

#: The modules the `ui` extra provides.
UI_MODULES = ("starlette", "uvicorn")


def report(
    run: Annotated[str, typer.Argument(help="The run: Flow/RunID.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="The HTML file to write.", show_default="<Flow>-<RunID>.html"
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Write a run's report: one HTML file (DAG, timeline, statistics, logs, cards)."""
    from ..report import write_report  # the report's modules load only for this command

    if run.count("/") != 1:
        raise typer.BadParameter(f"names a run as Flow/RunID, not {run!r}.", param_hint="'RUN'")
    target = output or Path(f"{run.replace('/', '-')}.html")
    if not target.parent.is_dir():
        raise typer.BadParameter(
            f"{target}: the folder {target.parent} does not exist.", param_hint="'--output'"
        )
    with _reading(root, None) as store:
        try:
            found = Run(run, _store=store, _namespace_check=False)
        except InvalidPathspec as exc:
            raise typer.BadParameter(exc.message, param_hint="'RUN'") from exc
        written = write_report(found, target)
    _echo(f"Wrote the report of {run} to {written}", err=True)


def _where(store: Store, settings: StoreSettings) -> str:
    """Where the store the UI serves is, for its first line."""
    if settings.is_default:
        return store.location
    return f"metadata {store.metadata.location}, blobs {store.blobs.location}"


def ui(
    root: RootOption = None,
    metadata: MetadataOption = None,
    blobs: BlobsOption = None,
    host: Annotated[
        str, typer.Option("--host", help="The address to serve on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="The port (0: any free one).")
    ] = 8420,
) -> None:
    """Serve the store's runs, their reports, cards and logs, live, in a web browser."""
    missing = [name for name in UI_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        # A usage error (exit 2), as typer's own: the command cannot run as installed.
        _echo(f"Error: aioflow ui needs {' and '.join(missing)}: pip install 'aioflow[ui]'", True)
        raise typer.Exit(2)
    from ..ui.server import bind, serve

    try:
        # Opened here, not shared: the settings given to this command are this store's only.
        settings = store_settings(metadata=metadata, blobs=blobs)
        store = Store(root, create=False, settings=settings)
    except AioflowException as exc:
        _fail(exc)
    try:
        try:
            sock = bind(host, port)
        except OSError as exc:
            _echo(f"Error: Cannot serve on {host}:{port}: {exc.strerror or exc}", True)
            raise typer.Exit(1) from None
        try:
            where = _where(store, settings)
            serve(store, sock, announce=lambda line: _echo(line, err=True), location=where)
        finally:
            sock.close()
    finally:
        store.close()
