"""The commands `python flow.py` shares with `aioflow`: logs, dump, tag, card, output-dot and
output-mermaid.

Metaflow users type `python flow.py logs 3/start` and `python flow.py output-dot`; these are
`aioflow logs MyFlow/3/start` and `aioflow show flow.py --format dot` with the flow known
(`python flow.py card view start` opens the card of the step's task in the latest run). The
store commands are `client_commands.py`'s own, with the same options, given pathspecs without
the flow's name (`3/start`; a full `MyFlow/3/start` works too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..flowspec import FlowSpec
from ..graph import FlowGraph
from .graph_text import graph_text

# The argument of each command that names a run, step or task, and its help in a flow's group.
_PATHSPEC_ARGUMENTS = {
    "pathspec": "RunID/StepName or RunID/StepName/TaskID.",
    "run": "The run: RunID.",
    "target": "A run (RunID), or the flow's name for all its runs.",
}


def _qualify(flow_name: str, value: str) -> str:
    """`3/start` -> `MyFlow/3/start`; a value that names the flow already stays as it is."""
    if value == flow_name or value.startswith(f"{flow_name}/"):
        return value
    return f"{flow_name}/{value}"


def _for_flow(command: Any, flow_name: str) -> Any:
    """`command` (one of `aioflow`'s, built afresh) with its pathspec argument relative to the flow.

    Changed in place, not rebuilt: typer may build it with its own copy of click's classes.
    """
    for sub in getattr(command, "commands", {}).values():  # a group: `tag`
        _for_flow(sub, flow_name)
    for param in command.params:
        if param.param_type_name == "argument" and param.name in _PATHSPEC_ARGUMENTS:
            param.help = _PATHSPEC_ARGUMENTS[param.name]
    callback: Callable[..., Any] | None = command.callback
    if callback is None:
        return command

    def qualified(**kwargs: Any) -> Any:
        for name in _PATHSPEC_ARGUMENTS.keys() & kwargs.keys():
            kwargs[name] = _qualify(flow_name, kwargs[name])
        return callback(**kwargs)

    command.callback = qualified
    return command


class _Forwarding(click.Command):
    """A click command handing its whole command line to one of `aioflow`'s typer commands.

    Typer builds its commands with its own copy of click, whose exits and help a click group
    does not understand; so the group gets this stand-in, and the typer command parses, prints
    its help and reports its errors itself. It is built when first needed (for its help text,
    or to run it), not with the group: typer and the client are not imported for a run.
    """

    def __init__(self, name: str, build: Callable[[], Any]) -> None:
        self._build = build
        super().__init__(
            name,
            params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
            callback=self._forward,
            context_settings={"ignore_unknown_options": True, "help_option_names": []},
        )

    @property
    def help(self) -> str | None:
        """The typer command's help (building it)."""
        help_text: str | None = self._build().help
        return help_text

    @help.setter
    def help(self, value: str | None) -> None:
        pass  # always the typer command's (click.Command.__init__ sets None)

    def _forward(self, args: tuple[str, ...]) -> None:
        command = self._build()
        command.main(list(args), prog_name=click.get_current_context().command_path)


def _store_commands() -> Any:
    """`aioflow`'s logs, dump, tag and card commands, as click builds them from the typer
    functions."""
    import typer

    from .card_commands import card_app
    from .client_commands import dump, logs, tag_app

    app = typer.Typer()
    app.command()(logs)
    app.command()(dump)
    app.add_typer(tag_app, name="tag")
    app.add_typer(card_app, name="card")
    return typer.main.get_group(app)


def add_store_commands(group: click.Group, flow_cls: type[FlowSpec]) -> None:
    """Add logs, dump, tag, card, output-dot and output-mermaid to the command group of
    `flow_cls`."""
    built: dict[str, Any] = {}

    def command(name: str) -> Callable[[], Any]:
        def build() -> Any:
            if not built:  # the four at once, on the first need of any
                commands = _store_commands().commands
                for each in ("logs", "dump", "tag", "card"):
                    built[each] = _for_flow(commands[each], flow_cls.__name__)
            return built[name]

        return build

    for name in ("logs", "dump", "tag", "card"):
        group.add_command(_Forwarding(name, command(name)))

    @group.command("output-dot", help="Print the flow's graph in Graphviz dot.")
    def output_dot() -> None:
        click.echo(graph_text(FlowGraph(flow_cls), "dot"), nl=False)

    @group.command("output-mermaid", help="Print the flow's graph as a Mermaid flowchart.")
    def output_mermaid() -> None:
        click.echo(graph_text(FlowGraph(flow_cls), "mermaid"), nl=False)
