"""The `aioflow` command and the `python flow.py <command>` idiom: a thin shell over the runtime.

`aioflow run flow.py --alpha 0.5` loads the flow file and hands the rest of the command line to
the flow's own command group, the same one `python flow.py run --alpha 0.5` reaches through
`MyFlow()`. The group's `run` command has one option per flow parameter, so `--help` lists them.

`aioflow runs|list`, `logs`, `dump` and `tag` read a store back through the client (see
`client/`), and print it with `runs_table.py` and `dump.py`; they need no flow file.

Modules: `output.py` (exit codes, Metaflow-style error printing), `flow_commands.py` (a flow's
command group: run, resume, show, check; `main_for_flow`), `client_commands.py` (logs, dump,
runs/list, tag), `runs_table.py` and `dump.py` (the text `aioflow runs` and `aioflow dump`
print) and `typer_app.py` (the `aioflow` typer app and `main`, the console script).
"""

from __future__ import annotations

from .flow_commands import flow_group, main_for_flow
from .output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from .typer_app import app, main

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "app",
    "flow_group",
    "main",
    "main_for_flow",
]
