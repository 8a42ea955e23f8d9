"""The declaration of a run parameter: `Parameter`, `IncludeFile`, `JSONType` and their values.

A `Parameter` class attribute says what a run takes (name, type, default, separator, help, extra
option arguments) and knows how to turn one given value, or its default, into the value a step
reads: converting command-line text or a Python value to its type (`str`, `int`, `float`, `bool`
or `JSONType`), calling a callable default with a `ParameterContext`, reading an `IncludeFile`'s
file. Its usage errors are `ParameterError`s worded as click words them ("Invalid value for
'--alpha': ..."). Finding the parameters of a flow class and resolving a run's given values
against them is `aioflow.parameters`, which re-exports these names: import them from there.
"""

from __future__ import annotations

import codecs
import numbers
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from .configs import ResolvedConfigs, is_deferred
from .exceptions import InvalidValue, ParameterError, ReadOnlyArtifactError

__all__ = ["IncludeFile", "JSONType", "JSONTypeClass", "Parameter", "ParameterContext"]

_EXTRA_OPTION_KWARGS = frozenset(("hidden", "metavar", "envvar", "show_envvar"))
_TYPE_NAMES: dict[Any, str] = {str: "string", int: "integer", float: "float", bool: "boolean"}
_CLI_TYPE_NAMES: dict[Any, str] = {str: "text", int: "integer", float: "float", bool: "boolean"}
_BOOL_STATES = {"1": True, "true": True, "t": True, "yes": True, "y": True, "on": True}
_BOOL_STATES |= {"0": False, "false": False, "f": False, "no": False, "n": False, "off": False}


class ParameterContext(NamedTuple):
    """What a callable default receives: the run's flow, user and the parameter being evaluated.

    Same fields as Metaflow's; `ds_type` is always "local" and `configs` holds the run's configs
    by name (a `ConfigValue`).
    """

    flow_name: str
    user_name: str
    parameter_name: str
    logger: Callable[..., None]
    ds_type: str
    configs: Any = None


class JSONTypeClass:
    """The type of `JSONType`: a value given as JSON text, parsed with `json.loads`."""

    name = "JSON"

    def convert(self, value: Any, param: object = None, ctx: object = None) -> Any:
        """Parse `value` as JSON text; any other JSON-serializable value is returned as is.

        Raises `InvalidValue` for anything else. `param` and `ctx` are ignored: they keep the
        call of Metaflow's click type working.
        """
        return _convert_value(self, value)

    def __repr__(self) -> str:
        return "JSON"


JSONType = JSONTypeClass()
"""Use as `Parameter(..., type=JSONType)` for a value given as JSON text (a dict or list as is)."""


# The wording of a parameter's usage errors (an unknown name is `aioflow.parameters`'). The CLI's
# own errors are worded the same way by click, which knows the option; these are for values that
# reach `resolve_parameters`. A value given to `run_flow` is named as the keyword argument it was
# given as, so a Python caller is not told about an option they never typed.
def _given_as(param: Parameter, from_cli: bool) -> str:
    return f"'--{param.name}'" if from_cli else f"keyword argument '{param.name.replace('-', '_')}'"


def _invalid_value_error(
    param: Parameter, problem: str, origin: str = "", from_cli: bool = True
) -> ParameterError:
    # A value a default computed was given as neither: name the parameter.
    given_as = (
        f"parameter '{param.name}'" if origin and not from_cli else _given_as(param, from_cli)
    )
    return ParameterError(f"Invalid value for {given_as}{origin}: {problem}")


def _missing_value_error(param: Parameter, from_cli: bool = True) -> ParameterError:
    if from_cli:
        return ParameterError(f"Missing option '--{param.name}'.")
    return ParameterError(f"Missing {_given_as(param, from_cli)}: the parameter is required.")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return f"{value!r} (of type {value.__class__.__name__})"


def _convert_value(kind: Any, value: Any) -> Any:
    """Convert a CLI string or a Python value to `kind` (str, int, float, bool or JSONType)."""
    if isinstance(kind, JSONTypeClass):
        import json  # (here, as below: json is imported only by the flows that need it)

        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise InvalidValue(f"{value!r} is not a valid JSON object.") from None
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise InvalidValue(f"{_describe(value)} is not a valid JSON object.") from None
        return value
    if isinstance(value, str):
        if kind is str:
            return value
        if kind is bool:
            if value.strip().lower() in _BOOL_STATES:
                return _BOOL_STATES[value.strip().lower()]
        else:
            try:
                return kind(value.strip())
            except ValueError:
                pass
    elif isinstance(value, bool):
        if kind is bool:
            return value
    elif kind is int and isinstance(value, numbers.Integral):
        return int(value)
    elif kind is float and isinstance(value, numbers.Real):
        return float(value)
    raise InvalidValue(f"{_describe(value)} is not a valid {_TYPE_NAMES[kind]}.")


def _infer_type(name: str, default: Any, given: Any) -> Any:
    """The parameter's type: `given`, else that of a non-callable default, else str."""
    if given is None:
        if default is None or callable(default) or is_deferred(default):
            return str
        if isinstance(default, (dict, list)):
            return JSONType
        given = default.__class__
    if given is JSONTypeClass:
        return JSONType
    if given in _TYPE_NAMES or isinstance(given, JSONTypeClass):
        return given
    raise ParameterError(
        f"Parameter *{name}*: unsupported type {given!r}. "
        "Use one of str, int, float, bool or JSONType."
    )


class Parameter:
    """A run parameter of a flow, declared as a class attribute of a FlowSpec subclass.

    `alpha = Parameter("alpha", default=0.5)` gives the option `--alpha` of `run` and the
    read-only artifact `self.alpha`; the attribute name may differ from the parameter name.
    `type` is str, int, float, bool or `JSONType`; when None it is inferred from `default`
    (str when there is none). A callable `default` is called once per run with a
    `ParameterContext`. `separator` (string parameters only) splits the value into a list.
    `required` is ignored when there is a default. Extra keyword arguments (`hidden`, `metavar`,
    `envvar`, `show_envvar`) go to the option of the `run` command.
    """

    type_name: str
    """How the type is shown in `--help` ("integer", "JSON", "FilePath", ...)."""

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,
        help: str | None = None,
        required: bool | None = False,
        show_default: bool | None = True,
        separator: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(name, str) or not name or name.startswith("-") or " " in name:
            raise ParameterError(f"Parameter name {name!r} is not a valid option name.")
        self.name = name
        self.attr_name: str | None = None
        fields = {"show_default": show_default, "separator": separator, "required": required}
        for field in [field for field, value in fields.items() if callable(value)]:
            raise ParameterError(
                f"Parameter *{name}*: Field '{field}' cannot have a function as its value"
            )
        unknown = sorted(set(kwargs) - _EXTRA_OPTION_KWARGS)
        if unknown:
            raise ParameterError(f"Parameter *{name}*: unexpected argument(s) {unknown}.")
        self.default = default
        self.type = _infer_type(name, default, type)
        self.help = help
        self.required = bool(required)
        self.show_default = True if show_default is None else bool(show_default)
        self.separator = separator or None
        self.kwargs = kwargs
        self.type_name = _CLI_TYPE_NAMES.get(self.type, "JSON")
        string_default = (
            default is None or callable(default) or isinstance(default, str) or is_deferred(default)
        )
        if self.type_name == "JSON" and not string_default:
            import json

            try:
                json.dumps(default)
            except (TypeError, ValueError):
                raise ParameterError(
                    f"Parameter *{name}*: the default {default!r} is not a valid JSON object."
                ) from None
        if self.separator and not (self.type is str and string_default):
            raise ParameterError(
                f"Parameter *{name}*: Separator is only allowed for string parameters."
            )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, type={self.type_name})"

    def __set_name__(self, owner: type, name: str) -> None:
        """Record the flow attribute holding the parameter (its artifact name)."""
        self.attr_name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """The Parameter itself on the class; on a flow, the artifact's value."""
        if instance is None:
            return self
        return instance._aioflow_artifact(self.attr_name)

    def _read_only(self) -> ReadOnlyArtifactError:
        return ReadOnlyArtifactError(
            "Flow level attributes and Parameters are not modifiable: "
            f"'{self.attr_name}' is the Parameter '{self.name}'."
        )

    def __set__(self, instance: Any, value: Any) -> None:
        """Parameters are read-only: always raises `ReadOnlyArtifactError`."""
        raise self._read_only()

    def __delete__(self, instance: Any) -> None:
        raise self._read_only()

    def _convert(self, value: Any) -> Any:
        """Turn a given or default value into the parameter's value; raises `InvalidValue`."""
        if self.separator and isinstance(value, (list, tuple)):
            return [_convert_value(str, item) for item in value]
        value = _convert_value(self.type, value)
        return value.split(self.separator) if self.separator and value else value

    def check_text(self, text: str) -> None:
        """Check a value given on the command line; raises `InvalidValue` if it is not valid.

        The text itself is what reaches `resolve_parameters` (an `IncludeFile` is only checked
        to be readable here: it is read once, when the run resolves its parameters).
        """
        self._convert(text)

    @property
    def default_text(self) -> str | None:
        """The default as command-line text (JSON for `JSONType`); None when there is no
        default or it is callable (computed when the run starts)."""
        if self.default is None or callable(self.default) or is_deferred(self.default):
            return None
        return self._cli_text(self.default)

    def env_names(self) -> list[str]:
        """The environment variables that give the parameter's value when no value is given:
        `AIOFLOW_RUN_<NAME>`, then `METAFLOW_RUN_<NAME>` (the name upper-cased, dashes as
        underscores, as Metaflow's `run` reads them), unless the parameter names its own
        `envvar`."""
        own = self.kwargs.get("envvar")
        if own:
            return [own] if isinstance(own, str) else list(own)
        key = self.name.upper().replace("-", "_")
        return [f"AIOFLOW_RUN_{key}", f"METAFLOW_RUN_{key}"]

    def env_value(self) -> tuple[str, str] | None:
        """(variable, value) of the variable that gives the parameter its value (see
        `env_names`), or None."""
        for name in self.env_names():
            value = os.environ.get(name)
            if value is not None:
                return name, value
        return None

    def _resolve(
        self,
        value: Any,
        ctx: ParameterContext,
        configs: ResolvedConfigs | None = None,
        from_cli: bool = True,
    ) -> Any:
        """The final value of the parameter given `value` (None when it was not given); a
        default taken from a Config is evaluated against the run's `configs`. Errors name the
        option (`from_cli`) or the keyword argument of `run_flow`."""
        origin = ""
        if value is None and is_deferred(self.default):
            if configs is None:
                raise ParameterError(
                    f"The default of the Parameter *{self.name}* uses a Config, but the run "
                    "resolved none."
                )
            default = configs.evaluate(self.default)
            if default is None:
                return None
            kind = self.type if self.type is not str else _infer_type(self.name, default, None)
            try:
                return _convert_value(kind, default)
            except InvalidValue as exc:
                raise _invalid_value_error(self, str(exc), " (as given by its Config)") from None
        if value is None:
            if self.default is None:
                if self.required:
                    raise _missing_value_error(self, from_cli)
                return None
            value = self.default
            if not callable(value):  # converted exactly as the CLI converts it
                value = self._cli_text(value)
                origin = "" if from_cli else " (its default)"
            else:
                origin = " (as returned by its default function)"
                try:
                    value = value(ctx._replace(parameter_name=self.name))
                except Exception as exc:
                    raise ParameterError(
                        f"When evaluating the default of the Parameter *{self.name}*, "
                        f"the following exception occurred: {exc!r}"
                    ) from exc
                if value is None:
                    return None
        try:
            return self._convert(value)
        except InvalidValue as exc:
            raise _invalid_value_error(self, str(exc), origin, from_cli) from None

    def _cli_text(self, value: Any) -> str:
        if isinstance(self.type, JSONTypeClass) and not isinstance(value, str):
            import json

            return json.dumps(value)
        return str(os.fspath(value) if isinstance(value, os.PathLike) else value)


class IncludeFile(Parameter):
    """A parameter whose option takes a local file path and whose value is the file's content.

    The content is a str decoded with `encoding` when `is_text`, else bytes. `default` is a
    path (or a callable returning one). A file that cannot be read is a usage error.
    """

    def __init__(
        self,
        name: str,
        required: bool | None = False,
        is_text: bool = True,
        encoding: str = "utf-8",
        help: str | None = None,
        default: Any = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(default, os.PathLike):
            default = os.fspath(default)
        for field in {"type", "separator"} & set(kwargs):
            raise ParameterError(f"IncludeFile *{name}*: '{field}' cannot be given.")
        super().__init__(name, default=default, type=str, help=help, required=required, **kwargs)
        try:
            codecs.lookup(encoding or "utf-8")
        except LookupError:
            raise ParameterError(f"IncludeFile *{name}*: unknown encoding {encoding!r}.") from None
        self.is_text = is_text
        self.encoding = encoding or "utf-8"
        self.type_name = "FilePath"

    def _path(self, value: Any) -> str:
        if not isinstance(value, (str, os.PathLike)):
            raise InvalidValue(f"{_describe(value)} is not a valid file path.")
        path = os.path.expanduser(os.fspath(value))
        if "://" in path:
            raise InvalidValue(f"IncludeFile: only local files can be included (given '{path}')")
        return path

    def check_text(self, text: str) -> None:
        """Check that the file `text` names can be opened; raises `InvalidValue` if not."""
        path = self._path(text)
        try:
            with open(path, "rb"):
                pass
        except OSError:
            raise InvalidValue(f"IncludeFile: could not open file '{path}' for reading") from None

    def _convert(self, value: Any) -> Any:
        path = self._path(value)
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError:
            raise InvalidValue(f"IncludeFile: could not open file '{path}' for reading") from None
        if not self.is_text:
            return content
        try:
            return content.decode(self.encoding)
        except UnicodeDecodeError:
            raise InvalidValue(f"IncludeFile: file '{path}' is not valid {self.encoding}") from None
