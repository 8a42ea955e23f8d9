"""The `aioflow` command and the `python flow.py <command>` idiom: a thin shell over the runtime.

`aioflow run flow.py --alpha 0.5` loads the flow file and hands the rest of the command line to
the flow's own command group, the same one `python flow.py run --alpha 0.5` reaches through
`MyFlow()`. The group's `run` command has one option per flow parameter, so `--help` lists them.

`aioflow runs|list`, `logs`, `dump` and `tag` read a store back through the client (see
`client/`), and print it with `runs_table.py` and `dump.py`; they need no flow file.

Modules: `entry.py` (`main`, the console script), `output.py` (exit codes, Metaflow-style error
printing), `flow_commands.py` (a flow's command group: run, resume, show, check;
`main_for_flow`), `client_commands.py` (logs, dump, runs/list, tag), `runs_table.py` and
`dump.py` (the text `aioflow runs` and `aioflow dump` print) and `typer_app.py` (the `aioflow`
typer app).

Importing this package loads only the module of `main` and `main_for_flow`: a flow's run needs
neither typer nor the client's commands, so the other names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .entry import main, main_for_flow

if TYPE_CHECKING:
    from .flow_commands import flow_group
    from .output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
    from .typer_app import app

_LAZY_NAMES = {
    "flow_group": ".flow_commands",
    "EXIT_FAILED": ".output",
    "EXIT_INTERRUPTED": ".output",
    "EXIT_USAGE": ".output",
    "app": ".typer_app",
}


#: Imports the module of a lazily exported name (see `_LAZY_NAMES`) on first use.
__getattr__ = lazy_exports(__name__, _LAZY_NAMES)


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "app",
    "flow_group",
    "main",
    "main_for_flow",
]
