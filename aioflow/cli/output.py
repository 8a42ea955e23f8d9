"""How the command line reports: exit codes, Metaflow-style errors, the header and validation.

Every command prints through `_echo`, and stops on an aioflow error through `_fail`, which
prints it as Metaflow's console does (headline, where, indented message) and exits with a
code: 1 (EXIT_FAILED) for a failure, 2 (EXIT_USAGE) for a usage error, 130
(EXIT_INTERRUPTED) for a run stopped by Ctrl-C. `_header` and `_validate` print the lines
that open `run`, `resume` and `check`, and stop at a graph that does not lint.
"""

from __future__ import annotations

from typing import NoReturn

import click

from .._version import __version__
from ..current import current_username
from ..exceptions import AioflowException, FlowDefinitionError, LintError
from ..flowspec import FlowSpec
from ..graph import FlowGraph
from ..runtime.graphs import linted_graph

#: Exit codes: a failed run or command, a usage error (as click's), a run stopped by a signal.
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
        graph = linted_graph(flow_cls)  # the run's own: built and linted once per class
    except FlowDefinitionError as exc:
        _fail(exc)
    _echo("    The graph looks good!", err=True)
    return graph


def _header(flow_cls: type[FlowSpec]) -> None:
    user = current_username()
    _echo(f"aioflow {__version__} executing {flow_cls.__name__} for user:{user}", err=True)
