"""`main`, the `aioflow` console script, kept apart from the typer app so a run starts fast.

`aioflow run flow.py ...` (and `resume`, `spin`) goes straight to the flow's own click command
(`flow_commands.py`): neither typer nor the client's commands are imported for it, which is
most of what the command line would otherwise load before running anything. Every other
command line is typer's (`typer_app.py`), imported then.

While `main` imports the command line and the runtime, the cyclic garbage collector is paused:
imports make tens of thousands of objects that live as long as the process, and collections
triggered on the way would walk them again and again for nothing. What they made then goes
straight to the collector's oldest generation, so the first collection after them does not
walk it either (it took 5 ms). The flow file is imported after, with the collector as usual;
while the run goes on, `runtime/collector.py` keeps what the process held at its start out of
the collections.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..flowspec import FlowSpec

#: Runs a flow file written for Metaflow as it is (see `aioflow/metaflow_imports.py`).
METAFLOW_IMPORTS = "--metaflow-imports"
#: The name of `aioflow runs delete` among typer's commands (see `main`).
RUNS_DELETE = "runs delete"


def _load(flow_file: Path, metaflow_imports: bool = False) -> type[FlowSpec]:
    from ..exceptions import FlowDefinitionError
    from ..loader import load_flow
    from .output import _fail

    try:
        return load_flow(flow_file, metaflow_imports=metaflow_imports)
    except FlowDefinitionError as exc:
        _fail(exc)


def _store_options(metadata: str | None, blobs: str | None) -> None:
    # Exported for the whole process: every store it opens, and its worker processes, use them.
    from ..store.settings import BLOBS_ENV, METADATA_ENV

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


@contextmanager
def _importing() -> Iterator[None]:
    """Import with the cyclic collector paused (see the module's doc)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:  # (else unfreezing would thaw the host's objects)
                # Everything made so far to the oldest generation, without walking it.
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _flow_command(command: str, rest: list[str]) -> Callable[[], Any] | None:
    """`aioflow run|resume|spin ...`: the flow's own command, ready to run; None when the
    command line names no flow file (then typer's command answers, or the options are
    listed)."""
    file_at = next((i for i, a in enumerate(rest) if a.endswith(".py")), None)
    if file_at is None:
        if "--help" in rest and command != "spin":
            # No flow file yet: list the options every flow's command takes.
            with _importing():
                from .flow_commands import command_without_flow
            return lambda: command_without_flow(command).main(
                ["--help"], prog_name=f"aioflow {command}"
            )
        return None
    rest = list(rest)
    flow_file = rest.pop(file_at)
    metaflow_imports = METAFLOW_IMPORTS in rest
    rest = [a for a in rest if a != METAFLOW_IMPORTS]
    with _importing():
        from .flow_commands import flow_group
    group = flow_group(_load(Path(flow_file), metaflow_imports))
    return lambda: group.commands[command].main(rest, prog_name=f"aioflow {command} {flow_file}")


def main_for_flow(flow_cls: type[FlowSpec], argv: list[str]) -> None:
    """`python flow.py <command> ...`: run the flow's command group and exit (`MyFlow()` at the
    end of a flow file calls this, through `FlowSpec.__init__`)."""
    with _importing():
        from .flow_commands import main_for_flow as run_group
    run_group(flow_cls, argv)


def main() -> None:
    """Entry point of the `aioflow` console script."""
    args = _leading_store_options(sys.argv[1:])
    # `aioflow run flow.py --help` must reach the flow's own run command, which lists the
    # flow's parameters, rather than typer's help for `run`. The flow file may come after
    # options (`aioflow run --quiet flow.py`): it is the first argument naming a .py file.
    if args and args[0] in ("run", "resume", "spin"):
        run = _flow_command(args[0], args[1:])
        if run is not None:
            run()
            return
    with _importing():
        from .typer_app import app
    if args[:2] == ["runs", "delete"]:
        app(args=[RUNS_DELETE, *args[2:]], prog_name="aioflow")
        return
    app()
