"""`aioflow runs delete FLOW/RUN ...` and `aioflow gc`: delete runs, then the blobs nobody names.

Both go through `store/gc.py` (which runs may go, and the sweep that is safe while other runs
write); this module reads the options, opens the store and prints what was freed, with the
store folder's size before and after.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import AioflowException, StoreError
from ..store import RunRecord, Store
from ..store import gc as store_gc
from .client_commands import RootOption
from .output import _echo, _fail


def folder_size(folder: Path | None) -> int:
    """Bytes of every file under `folder` (0 for a store without one)."""
    if folder is None:
        return 0
    total = 0
    for path, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(path, name)).st_size
            except OSError:  # removed meanwhile
                continue
    return total


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns at GB


def _open(root: str | None) -> Store:
    try:
        return Store(root, create=False)
    except AioflowException as exc:
        _fail(exc)


def _print_report(report: store_gc.Report, before: int, after: int, store: Store) -> None:
    names = ", ".join(f"{r.flow}/{r.run_id}" for r in report.runs[:10])
    more = f" and {len(report.runs) - 10} more" if len(report.runs) > 10 else ""
    _echo(f"Deleted {len(report.runs)} runs" + (f": {names}{more}" if names else "") + ".")
    _echo(
        f"Freed {report.small_blobs} blobs in the database ({_size(report.small_bytes)}) and "
        f"{report.files} blob files ({_size(report.file_bytes)})."
    )
    if report.kept_recent:
        why = "runs in progress may name them" if report.in_progress else "put just now"
        _echo(f"Kept {report.kept_recent} unreferenced blob files written recently ({why}).")
    _echo(f"Store {store.location}: {_size(before)} -> {_size(after)}.")


def _collect(store: Store, runs: list[RunRecord], dry_run: bool) -> None:
    before = folder_size(store.root)
    try:
        report = store_gc.collect(store, runs, dry_run=dry_run)
    except StoreError as exc:
        _fail(exc)
    if dry_run:
        names = ", ".join(f"{r.flow}/{r.run_id}" for r in report.runs)
        _echo(f"Would delete {len(report.runs)} runs" + (f": {names}" if names else "") + ".")
        if not runs:
            _echo(
                f"Would free {report.files} unreferenced blob files ({_size(report.file_bytes)})."
            )
        else:
            _echo("Then every blob no remaining run names would go (counted when deleting).")
        return
    _print_report(report, before, folder_size(store.root), store)


def runs_delete(
    pathspecs: Annotated[list[str], typer.Argument(help="Runs to delete: FlowName/RunID ...")],
    root: RootOption = None,
) -> None:
    """Delete runs (never one in progress), then every blob no remaining run names."""
    store = _open(root)
    try:
        chosen = []
        for pathspec in pathspecs:
            flow, _, run_id = pathspec.partition("/")
            if not flow or not (run_id.isascii() and run_id.isdigit()) or "/" in run_id:
                raise typer.BadParameter(f"{pathspec!r} is not a run: give FlowName/RunID.")
            record = store.metadata.run(flow, int(run_id)) if int(run_id) < 2**63 else None
            if record is None:
                _fail(StoreError(f"Run {pathspec} does not exist in {store.location}."))
            chosen.append(record)
        _collect(store, chosen, dry_run=False)
    finally:
        store.close()


def _age(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return store_gc.parse_age(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def gc(
    keep_last: Annotated[
        int | None,
        typer.Option("--keep-last", min=0, help="Keep the newest N runs of each flow."),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Delete only runs older than this: 30d, 12h, 45m."),
    ] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only runs of this flow.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only runs with this tag (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Delete old runs (--keep-last, --older-than; never one in progress), then every blob no
    remaining run names. Without either bound, only the blobs."""
    seconds = _age(older_than)
    store = _open(root)
    try:
        everything = store_gc.all_runs(store)
        chosen = store_gc.choose_runs(
            everything, keep_last=keep_last, older_than=seconds, flow=flow, tag=tag or ()
        )
        spared = store_gc.protected(store, everything)
        kept = [r for r in chosen if r.run_id in spared]
        for run in kept:
            _echo(f"Keeping {run.flow}/{run.run_id}: {spared[run.run_id]}.")
        _collect(store, [r for r in chosen if r.run_id not in spared], dry_run)
    finally:
        store.close()


__all__ = ["folder_size", "gc", "runs_delete"]
