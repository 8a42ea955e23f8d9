"""A flow's Parameters as click options of its `run` command.

`aioflow.parameters` declares, checks and resolves parameters in plain Python; this module is
the click side: `click_params(MyFlow)` gives one `--<name>` option per parameter. The options
check each value as it is parsed (a bad one is a usage error, exit status 2, worded by click as
"Invalid value for '--alpha': ...") but pass the text on unchanged, defaults included, for
`resolve_parameters(..., from_cli=True)` to turn into the run's values.
"""

from __future__ import annotations

from typing import Any

import click

from ..parameters import InvalidValue, Parameter, flow_parameters

__all__ = ["ParameterType", "click_params"]


class ParameterType(click.ParamType):
    """The click type of one parameter's option: checks the text, returns it unchanged."""

    def __init__(self, parameter: Parameter) -> None:
        self.parameter = parameter
        self.name = parameter.type_name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Check a command-line string (click also passes values that are already converted,
        which are returned as they are); an invalid one fails as click's own types do."""
        if isinstance(value, str):
            try:
                self.parameter.check_text(value)
            except InvalidValue as exc:
                self.fail(str(exc), param, ctx)
        return value


def _click_option(param: Parameter) -> click.Option:
    help_text, required, extra = param.help or "", param.required, dict(param.kwargs)
    # METAFLOW_RUN_<NAME> (and AIOFLOW_RUN_<NAME>) give a value before the default does.
    extra.setdefault("envvar", param.env_names())
    if callable(param.default):
        help_text += f"{' ' if help_text else ''}[default: computed when the run starts]"
        required = False
    elif param.default_text is not None:  # click >= 8.3 takes default=None as a given value
        extra["default"] = param.default_text
    return click.Option(
        ["--" + param.name],
        type=ParameterType(param),
        required=required,
        help=help_text or None,
        show_default=param.show_default,
        **extra,
    )


def click_params(flow_cls: type) -> list[click.Option]:
    """Click options (`--<name>`) of the `run` command, one per parameter in definition order.

    They check values but pass strings on, defaults included: give `{option.name:
    parsed[option.name]}` for these options to `resolve_parameters(..., from_cli=True)`. A
    callable default is left to `resolve_parameters` (click sees None). Raises `ParameterError`
    when the flow's parameters are badly declared.
    """
    return [_click_option(param) for _, param in flow_parameters(flow_cls)]
