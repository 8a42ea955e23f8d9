"""The CLI reference page, generated from the command tree at build time (an MkDocs hook).

`docs/cli.md` holds a `<!-- cli-reference -->` marker; `on_page_markdown` replaces it with one
section per command of the `aioflow` typer app (walked as click commands, sub-groups such as
`tag` included) and per command of a flow file's own group (`python flow.py COMMAND`). The
options of `run`, `resume` and the other commands that hand the rest of the line to a flow
file come from that group, so the page shows what a real flow's command accepts (its
parameters aside). Nothing is copied by hand: a new command or option appears in the next
build, and `tests/test_docs.py` checks that every command of both trees has its section.

Commands are handled by duck typing: typer 0.26+ builds them with its own copy of click, so
they are not `click.Command` instances, while a flow's group is plain click.
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MARKER = "<!-- cli-reference -->"

#: A flow with no parameters: its command group holds the options every flow's commands take.
_FLOW = '''
from aioflow import FlowSpec, step


class MyFlow(FlowSpec):
    """A flow without parameters."""

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def aioflow_command() -> Any:
    """The `aioflow` command, as the click command tree typer builds from its app."""
    import typer

    from aioflow.cli import app

    return typer.main.get_command(app)


def flow_command() -> Any:
    """The command group of a flow file (`python flow.py COMMAND`), of a flow without
    parameters."""
    from aioflow.cli import flow_group
    from aioflow.loader import load_flow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference_flow.py"
        path.write_text(_FLOW)
        return flow_group(load_flow(path))


def _context(command: Any, path: str) -> Any:
    return command.context_class(command, info_name=path)


def walk(group: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every command under `group` with its full name (`aioflow tag add`), depth first in the
    group's own order (the order of `--help`)."""
    ctx = _context(group, prefix)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None:
            continue
        path = f"{prefix} {name}"
        yield path, command
        if hasattr(command, "list_commands"):
            yield from walk(command, path)


def _text(text: str) -> str:
    """Help text as Markdown prose: `<branch>` is a placeholder, not an HTML tag, and
    `[STEP] [--origin-run-id ID]` a synopsis, not a reference link."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("[", "\\[").replace("]", "\\]")


def _cell(text: str) -> str:
    return _text(" ".join(text.split())).replace("|", "\\|")


def _parameter_rows(command: Any, ctx: Any) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None:  # a plain click argument has no help of its own
            record = ((param.metavar or param.name or "").upper(), "")
        code = " ".join(record[0].split()).replace("|", "\\|")
        rows.append(f"| `{code}` | {_cell(record[1])} |")
    return rows


def section(path: str, command: Any, parser: Any = None, usage_prefix: str = "") -> str:
    """One command's section: its help, its usage line and a table of its parameters.

    `parser` is the command that really parses the arguments when it is another one (the
    flow's `run` behind `aioflow run FLOW_FILE`); its usage and parameters are shown."""
    parser = parser or command
    ctx = _context(parser, path)
    help_text = _text(textwrap.dedent(command.help or command.short_help or "").strip())
    pieces = parser.collect_usage_pieces(ctx)
    usage = " ".join([path, *([usage_prefix] if usage_prefix else []), *pieces])
    rows = _parameter_rows(parser, ctx)
    lines = [f"### `{path}`", "", help_text, "", "```text", usage, "```", ""]
    if rows:
        lines += ["| Argument or option | Description |", "| --- | --- |", *rows, ""]
    return "\n".join(lines)


def reference() -> str:
    """The whole reference, as Markdown."""
    top = aioflow_command()
    flow = flow_command()
    parts = [section("aioflow", top)]
    for path, command in walk(top, "aioflow"):
        name = path.split()[-1]
        # A command that takes a flow file hands the rest of its line to the flow's command.
        if command.context_settings.get("allow_extra_args") and name in flow.commands:
            parts.append(section(path, command, flow.commands[name], "FLOW_FILE"))
        else:
            parts.append(section(path, command))
    parts += [
        "## `python flow.py`",
        "",
        "A flow file that ends with `MyFlow()` is a command of its own, as in Metaflow. The",
        "flow's parameters are options of `run` (`python flow.py run --help` lists them).",
        "",
    ]
    parts += [section(path, command) for path, command in walk(flow, "python flow.py")]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: fill the CLI page's marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())
