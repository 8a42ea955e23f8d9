"""`aioflow store info` and `aioflow store copy`: where a store lives, and moving runs between
stores.

A store on the command line is the configured one (`aioflow --metadata URL --blobs URL`,
`$AIOFLOW_METADATA`/`$AIOFLOW_BLOBS`, `aioflow.toml` or `[tool.aioflow]`, else `.aioflow/`),
or, for `copy`, the one `--from`/`--to` name: a store folder (SQLite and files there), or a
metadata URL with its blob store given by `--from-blobs`/`--to-blobs`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import AioflowException, StoreError
from ..store import Store, resolve_root
from ..store.copy import copy_runs
from ..store.open import backends, open_blobs, open_metadata
from ..store.settings import StoreSettings, redact, store_settings
from .output import EXIT_FAILED, _echo, _fail

store_app = typer.Typer(
    help="Where the store lives, and copying runs between stores.", no_args_is_help=True
)

RootOption = Annotated[
    str | None,
    typer.Option("--root", envvar="AIOFLOW_ROOT", help="Store folder (for SQLite and files)."),
]


def _describe(url: str | None, default: Path, source: str | None) -> str:
    where = redact(url) if url is not None else str(default)
    return f"{where} (from {source})" if source else f"{where} (default)"


@store_app.command()
def info(root: RootOption = None) -> None:
    """Print where metadata and blobs live, and check both can be reached."""
    try:
        settings = store_settings()
        folder = resolve_root(root)
    except AioflowException as exc:
        _fail(exc)
    sources = settings.sources
    metadata_at = _describe(settings.metadata, folder / "metadata.db", sources.get("metadata"))
    _echo(f"metadata: {metadata_at}")
    _echo(f"blobs:    {_describe(settings.blobs, folder / 'blobs', sources.get('blobs'))}")
    failed = False
    try:
        metadata = (
            open_metadata(settings.metadata, create=False)
            if settings.metadata is not None
            else Store(folder, create=False, settings=StoreSettings()).metadata
        )
        try:
            flows = metadata.flows()
        finally:
            metadata.close()
        _echo(f"metadata reachable: {len(flows)} flow(s) stored")
    except AioflowException as exc:
        failed = True
        _echo(f"metadata NOT reachable: {exc.message}", err=True)
    try:
        _echo(f"blobs reachable: {_check_blobs(settings, folder)}")
    except AioflowException as exc:
        failed = True
        _echo(f"blobs NOT reachable: {exc.message}", err=True)
    if failed:
        raise SystemExit(EXIT_FAILED)


def _check_blobs(settings: StoreSettings, folder: Path) -> str:
    if settings.blobs is None:
        blobs = folder / "blobs"
        if not blobs.is_dir():
            return f"{blobs} does not exist yet (the first large artifact creates it)"
        return f"{blobs} is a folder"
    store = open_blobs(settings.blobs)
    check = getattr(store, "check", None)
    if check is not None:
        return str(check())
    path = Path(store.location)
    if path.exists() and not path.is_dir():
        raise StoreError(f"The blob folder {path} is a file.")
    return f"{path} is a folder" if path.is_dir() else f"{path} does not exist yet"


def _check_side(where: str | None, blobs: str | None, side: str) -> None:
    """Usage errors of `--from`/`--to`, before any store is opened."""
    if where is None and blobs is not None:
        raise typer.BadParameter(f"--{side}-blobs needs --{side}.")
    if where is not None and "://" in where and blobs is None:
        raise typer.BadParameter(
            f"--{side} {redact(where)} is a metadata URL: give its blob store with "
            f"--{side}-blobs URL."
        )


def _open_side(where: str | None, blobs: str | None, create: bool) -> Store:
    """The store `--from`/`--to` names: the configured one, a folder, or a metadata URL."""
    if where is None:
        return Store(create=create)
    if "://" in where:
        settings = StoreSettings(metadata=where, blobs=blobs)
        metadata, blob_store = backends(Path(os.devnull), settings, create=create)
        return Store(metadata=metadata, blobs=blob_store)
    settings = StoreSettings(blobs=blobs)
    return Store(Path(where), create=create, settings=settings)


@store_app.command()
def copy(
    what: Annotated[
        str | None, typer.Argument(help="FLOW or FLOW/RUN to copy (default: every run).")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from", help="Store folder or metadata URL to copy from (default: this one)."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--to", help="Store folder or metadata URL to copy to (default: this one)."),
    ] = None,
    source_blobs: Annotated[
        str | None, typer.Option("--from-blobs", help="Blob store URL of --from.")
    ] = None,
    target_blobs: Annotated[
        str | None, typer.Option("--to-blobs", help="Blob store URL of --to.")
    ] = None,
) -> None:
    """Copy runs, with the blobs they reference (each once), from one store to another."""
    flow, run_id = _parse_what(what)
    if source is None and target is None:
        raise typer.BadParameter("give --from, --to or both (one may be this store).")
    for where, blobs, side in ((source, source_blobs, "from"), (target, target_blobs, "to")):
        _check_side(where, blobs, side)
    try:
        src = _open_side(source, source_blobs, create=False)
        try:
            dst = _open_side(target, target_blobs, create=True)
            try:
                if src.location == dst.location and type(src.blobs) is type(dst.blobs):
                    raise StoreError(f"--from and --to are the same store ({src.location}).")
                report = copy_runs(
                    src,
                    dst,
                    flow,
                    run_id,
                    on_run=lambda f, old, new: _echo(f"{f}/{old} -> {f}/{new}"),
                )
            finally:
                dst.close()
        finally:
            src.close()
    except AioflowException as exc:
        _fail(exc)
    for f, old, why in report.skipped:
        _echo(f"{f}/{old} skipped: {why}")
    _echo(
        f"Copied {len(report.copied)} run(s), {report.blobs} blob(s), {report.bytes:,} bytes sent."
    )


def _parse_what(what: str | None) -> tuple[str | None, int | None]:
    if not what:
        return None, None
    flow, _, run = what.partition("/")
    if not flow or (run and not run.isdigit()) or run.count("/"):
        raise typer.BadParameter(f"{what!r} is not FLOW or FLOW/RUN (a run id is a number).")
    return flow, int(run) if run else None


__all__ = ["store_app"]
