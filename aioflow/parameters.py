"""Run parameters of a flow: the parameters of a flow class and the values they take in a run.

This is the module to import parameters from. `Parameter`, `IncludeFile`, `JSONType` and
`ParameterContext` are declared in `parameter_declarations.py` and re-exported here; this module
finds and validates a flow class's parameters (`flow_parameters`), collects its class-level
constants (`flow_constants`) and turns the values given on the command line or to `run_flow`
into final values (`resolve_parameters`). Every usage problem raises `ParameterError`, with the
wording Metaflow users know from click. It is plain Python: the click options of the `run`
command are built from these parameters by `aioflow.cli.parameter_options`, so importing aioflow
does not import click.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from .configs import Config, ResolvedConfigs
from .decorators import is_step
from .exceptions import InvalidValue, ParameterError
from .parameter_declarations import (
    IncludeFile,
    JSONType,
    JSONTypeClass,
    Parameter,
    ParameterContext,
)

__all__ = [
    "IncludeFile",
    "InvalidValue",
    "JSONType",
    "JSONTypeClass",
    "Parameter",
    "ParameterContext",
    "flow_constants",
    "flow_parameters",
    "resolve_parameters",
]

# Names Metaflow refuses as parameter names (options of its `run`), as Metaflow spells them.
METAFLOW_RESERVED: tuple[str, ...] = (
    *("params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file"),
    *("max-num-splits", "max-workers", "max-log-size", "user-namespace"),
)
# Options of `aioflow run` that a parameter's option would collide with.
AIOFLOW_RUN_OPTIONS: tuple[str, ...] = (
    *("max_workers", "max_num_splits", "tag", "run_id_file", "quiet", "root", "with"),
    *("origin_run_id", "namespace", "help"),
)
# FlowSpec attributes a parameter (or constant) must not shadow; the last four are Metaflow's.
FLOWSPEC_ATTRIBUTES = frozenset(
    {"next", "input", "index", "foreach_stack", "merge_artifacts", "name"}
    | {"cmd", "script_name", "file", "path_spec"}
)


def _unknown_parameter_error(
    key: str, flow_name: str, params: list[Parameter], from_cli: bool
) -> ParameterError:
    prefix = "--" if from_cli else ""
    names = [param.name if from_cli else param.name.replace("-", "_") for param in params]
    shown = ", ".join(prefix + name for name in names)
    import difflib  # for this message only

    close = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
    return ParameterError(
        f"Unknown parameter '{key}' for flow {flow_name}.{hint} "
        + (f"Valid parameters are: {shown}." if shown else "The flow has no parameters.")
    )


def _norm(name: str) -> str:
    """The key click derives from an option name: lower case, dashes as underscores."""
    return name.replace("-", "_").lower()


def _static_lookup(cls: type, name: str) -> Any:
    """The raw class attribute `name` as found along the MRO (descriptors not invoked)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def _user_attribute_names(cls: type, skip: tuple[type, ...] = ()) -> list[str]:
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object and klass not in skip:
            names.update(dict.fromkeys(vars(klass)))
    return list(names)


def flow_parameters(flow_cls: type) -> list[tuple[str, Parameter]]:
    """(attribute name, Parameter) pairs of `flow_cls`, inherited ones included, in definition
    order; raises `ParameterError` for reserved or duplicate names and for attributes that
    would shadow FlowSpec's own."""
    reserved = {_norm(n): "it is an option of `run`" for n in AIOFLOW_RUN_OPTIONS}
    reserved |= {_norm(n): "it is reserved by Metaflow" for n in METAFLOW_RESERVED}
    found: list[tuple[str, Parameter]] = []
    seen: dict[str, str] = {}
    for attr in _user_attribute_names(flow_cls):
        param = _static_lookup(flow_cls, attr)
        if not isinstance(param, Parameter):
            continue
        if param.attr_name is None:
            param.attr_name = attr
        where = f"Parameter '{param.name}' (flow attribute '{attr}')"
        if attr.startswith("_"):
            raise ParameterError(
                f"{where}: attributes starting with '_' cannot hold parameters. "
                "Please use a different attribute name."
            )
        if attr in FLOWSPEC_ATTRIBUTES:
            raise ParameterError(
                f"{where}: the attribute name '{attr}' is used by FlowSpec itself. "
                "Please use a different attribute name."
            )
        if _norm(param.name) in reserved:
            raise ParameterError(
                f"{where}: '{param.name}' is a reserved word: {reserved[_norm(param.name)]}. "
                "Please use a different name for your parameter."
            )
        if _norm(param.name) in seen:
            raise ParameterError(
                f"Parameter *{param.name}* is specified twice (flow attributes "
                f"'{seen[_norm(param.name)]}' and '{attr}'). Note that parameter names are "
                "case-insensitive and '-' equals '_'."
            )
        seen[_norm(param.name)] = attr
        found.append((attr, param))
    return found


_NOT_CONSTANT: tuple[type, ...] = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.ModuleType,
)
_NOT_CONSTANT += (property, classmethod, staticmethod, functools.cached_property, type, Parameter)
_NOT_CONSTANT += (Config,)


def flow_constants(flow_cls: type, base_cls: type) -> dict[str, object]:
    """Class-level constants of `flow_cls`: class attributes of the user's classes (not of
    `base_cls` or above) that are not `_`-prefixed, Parameters, functions, methods, steps,
    properties, class/static methods, classes or modules (Metaflow persists them as artifacts)."""
    constants: dict[str, object] = {}
    for attr in _user_attribute_names(flow_cls, skip=base_cls.__mro__):
        if attr.startswith("_") or attr in FLOWSPEC_ATTRIBUTES:
            continue
        value = _static_lookup(flow_cls, attr)
        if isinstance(value, _NOT_CONSTANT) or is_step(value):
            continue
        constants[attr] = value
    return constants


def _stderr_logger(msg: str = "", **_: Any) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve_parameters(
    flow_cls: type,
    given: Mapping[str, Any],
    *,
    flow_name: str,
    user_name: str,
    from_cli: bool,
    logger: Callable[..., None] | None = None,
    configs: ResolvedConfigs | None = None,
) -> dict[str, Any]:
    """Final values of every parameter of `flow_cls`, keyed by attribute name.

    `given` maps parameter names (as on the CLI; click's lower-case, underscore form works too)
    to values: strings from the CLI (`from_cli=True`, None meaning not given) or Python values
    from `run_flow`. Missing values take the default (a callable default is called once, with a
    `ParameterContext`); every value is converted to the parameter's type. Raises
    `ParameterError` for unknown names, missing required parameters and invalid values.

    A parameter given no value takes it from the environment first (`Parameter.env_names`:
    `AIOFLOW_RUN_<NAME>`, `METAFLOW_RUN_<NAME>`), then from its default, which may use the
    run's `configs`. (On the command line click reads the same variables.)
    """
    params = flow_parameters(flow_cls)
    by_key = {_norm(param.name): param for _, param in params}
    values: dict[str, Any] = {}
    for key, value in given.items():
        param = by_key.get(_norm(key))
        if param is None:
            raise _unknown_parameter_error(key, flow_name, [p for _, p in params], from_cli)
        if value is not None:
            if param.name in values:
                raise ParameterError(f"Parameter '{param.name}' is given twice.")
            values[param.name] = value
    from_env: dict[str, str] = {}  # parameter name -> the variable its value came from
    for _, param in params:
        if param.name not in values:
            found = param.env_value()
            if found is not None:
                from_env[param.name], values[param.name] = found
    ctx = ParameterContext(
        flow_name,
        user_name,
        "",
        logger or _stderr_logger,
        "local",
        configs.as_config_value() if configs is not None else None,
    )
    resolved = {}
    for attr, param in params:
        try:
            resolved[attr] = param._resolve(values.get(param.name), ctx, configs, from_cli)
        except ParameterError as exc:
            if param.name not in from_env:
                raise
            raise ParameterError(f"${from_env[param.name]}: {exc.message}") from None
    return resolved
