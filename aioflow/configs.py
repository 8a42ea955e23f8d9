"""`Config`: a flow's configuration, read once per run before the graph starts (Metaflow 2.13+).

    class TrainFlow(FlowSpec):
        cfg = Config("cfg", default="train.json")

        @resources(cpu=cfg.cpu)                     # or cpu=config_expr("cfg.cpu")
        @step
        def start(self):
            print(self.cfg.model.layers, self.cfg["model"]["layers"])

A config's value comes from `--config cfg FILE` or `--config-value cfg JSON` (`run_flow(...,
config={"cfg": "file.json"}, config_value={"cfg": {...}})`), else from the `default` file, else
from `default_value`. It is parsed once (JSON, or by `parser`), stored as an immutable
`ConfigValue` artifact, and read in steps like any artifact. In the class body, where no run
exists yet, `cfg.cpu` and `config_expr("cfg.cpu")` are *deferred* values: decorator attributes
and parameter defaults holding them are evaluated when a run resolves its configs.
"""

from __future__ import annotations

import builtins
import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from types import CodeType
from typing import Any

from .exceptions import FlowDefinitionError, ParameterError, ReadOnlyArtifactError

__all__ = [
    "Config",
    "ConfigValue",
    "Deferred",
    "ResolvedConfigs",
    "config_expr",
    "flow_configs",
    "is_deferred",
    "resolve_configs",
]


def _frozen(value: Any) -> Any:
    """`value` with dicts as ConfigValues and lists as tuples, all the way down."""
    if isinstance(value, ConfigValue):
        return value
    if isinstance(value, Mapping):
        return ConfigValue(value)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, ConfigValue):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thawed(item) for item in value]
    return value


class ConfigValue(Mapping[str, Any]):
    """A config's parsed value: read-only, by attribute (`cfg.model.layers`) or item
    (`cfg["model"]["layers"]`). Nested dicts are ConfigValues, lists are tuples;
    `to_dict()` gives a plain, mutable copy."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", {str(k): _frozen(v) for k, v in data.items()})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"The config has no key {name!r}; its keys are: {', '.join(self._data) or '-'}."
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"A config is immutable: cannot set {name!r}.")

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"A config is immutable: cannot delete {name!r}.")

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(f"A config is immutable: cannot set {key!r}.")

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"A config is immutable: cannot delete {key!r}.")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConfigValue):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        import json  # (here, as below: json is imported only by the flows that need it)

        return hash(json.dumps(self.to_dict(), sort_keys=True, default=repr))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConfigValue, (self.to_dict(),))

    def __repr__(self) -> str:
        return f"ConfigValue({self.to_dict()!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable copy (dicts and lists)."""
        return {key: _thawed(value) for key, value in self._data.items()}


# -- deferred values ------------------------------------------------------------------------------


class Deferred:
    """A value that exists only once a run has resolved its configs (see `ResolvedConfigs`)."""

    def evaluate(self, configs: ResolvedConfigs) -> Any:
        """The value in the run whose configs are `configs`."""
        raise NotImplementedError

    def __getattr__(self, name: str) -> _ConfigPath:
        if name.startswith("_"):
            raise AttributeError(name)
        return _ConfigPath(self, ("attr", name))

    def __getitem__(self, key: Any) -> _ConfigPath:
        return _ConfigPath(self, ("item", key))


class _ConfigRoot(Deferred):
    config: Config

    def __init__(self, config: Config) -> None:
        object.__setattr__(self, "config", config)

    def evaluate(self, configs: ResolvedConfigs) -> Any:
        return configs.value_of(self.config)

    def __repr__(self) -> str:
        return self.config.attr_name or self.config.name


class _ConfigPath(Deferred):
    """`cfg.a["b"]` written in a class body: one attribute or item access on another value."""

    parent: Deferred
    step: tuple[str, Any]

    def __init__(self, parent: Deferred, step: tuple[str, Any]) -> None:
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "step", step)

    def evaluate(self, configs: ResolvedConfigs) -> Any:
        value = self.parent.evaluate(configs)
        kind, key = self.step
        try:
            return getattr(value, key) if kind == "attr" else value[key]
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            raise FlowDefinitionError(f"Cannot evaluate {self!r}: {exc}") from None

    def __repr__(self) -> str:
        kind, key = self.step
        return f"{self.parent!r}.{key}" if kind == "attr" else f"{self.parent!r}[{key!r}]"


class _ConfigExpr(Deferred):
    # Only the text is kept (compiled again when evaluated): a flow class sent to a worker
    # process by value carries its decorators, and code objects do not pickle.
    expression: str

    def __init__(self, expression: str) -> None:
        _compiled(expression)  # a syntax error shows where the flow is defined
        object.__setattr__(self, "expression", expression)

    def evaluate(self, configs: ResolvedConfigs) -> Any:
        code = _compiled(self.expression)
        try:
            return eval(code, {"__builtins__": builtins}, configs.namespace())
        except Exception as exc:
            raise FlowDefinitionError(
                f"Cannot evaluate config_expr({self.expression!r}): {type(exc).__name__}: {exc}"
            ) from None

    def __repr__(self) -> str:
        return f"config_expr({self.expression!r})"


def _compiled(expression: str) -> CodeType:
    try:
        return compile(expression, "<config_expr>", "eval")
    except SyntaxError as exc:
        raise FlowDefinitionError(
            f"config_expr({expression!r}) is not a Python expression: {exc.msg}."
        ) from None


def config_expr(expression: str) -> Deferred:
    """A Python expression over the flow's configs (by attribute or config name), such as
    `config_expr("cfg.cpu * 2")`, evaluated once per run when its configs are resolved.

    Use it where a config is needed outside a step: decorator attributes, parameter defaults,
    or anywhere the config attribute itself is not in scope (a base class, another module)."""
    return _ConfigExpr(expression)


def is_deferred(value: Any) -> bool:
    """True when `value` is a config-dependent value (a `Config` or an expression over one)."""
    return isinstance(value, (Deferred, Config))


def evaluate_deferred(value: Any, configs: ResolvedConfigs) -> Any:
    """`value` with every deferred value in it (in dicts and lists too) evaluated."""
    if isinstance(value, Config):
        return configs.value_of(value)
    if isinstance(value, Deferred):
        return value.evaluate(configs)
    if isinstance(value, dict):
        return {key: evaluate_deferred(item, configs) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(evaluate_deferred(item, configs) for item in value)
    return value


# -- the declaration ---------------------------------------------------------------------------


def _named_parser(parser: str) -> Callable[[str], Any]:
    module_name, _, func_name = parser.rpartition(".")
    try:
        func = getattr(importlib.import_module(module_name), func_name) if module_name else None
    except (ImportError, AttributeError):
        func = None
    if not callable(func):
        raise ParameterError(f"Config parser {parser!r} is not an importable 'module.function'.")
    return func


class Config:
    """A configuration of the flow, declared as a class attribute (see the module's docstring).

    `default` is a file path (or a callable given a `ParameterContext`, returning one) read when
    nothing is given for the run; `default_value` is used when that file does not exist (or
    when there is no `default`): a dict, text for the parser, or a callable returning either.
    `parser` turns the text into a dict: a function, or its "module.function" name; JSON when
    None. `required=True` makes a run without any value a usage error.
    """

    def __init__(
        self,
        name: str,
        default: str | Callable[[Any], str] | None = None,
        default_value: str | Mapping[str, Any] | Callable[[Any], Any] | None = None,
        help: str | None = None,
        required: bool | None = None,
        parser: str | Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(name, str) or not name or name.startswith("-") or " " in name:
            raise ParameterError(f"Config name {name!r} is not a valid option name.")
        if kwargs:
            raise ParameterError(f"Config *{name}*: unexpected argument(s) {sorted(kwargs)}.")
        self.name = name
        self.attr_name: str | None = None
        self.default = os.fspath(default) if isinstance(default, os.PathLike) else default
        self.default_value = default_value
        self.help = help
        self.required = bool(required)
        self.parser = parser

    def __repr__(self) -> str:
        return f"Config({self.name!r})"

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr_name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """The Config itself on the class; on a flow, the run's `ConfigValue` (or None)."""
        if instance is None:
            return self
        return instance._aioflow_artifact(self.attr_name)

    def __set__(self, instance: Any, value: Any) -> None:
        raise ReadOnlyArtifactError(
            f"Configs are not modifiable: '{self.attr_name}' is the Config '{self.name}'."
        )

    def __getattr__(self, name: str) -> Deferred:
        # In the class body: `cfg.cpu` is the value `cpu` will have in a run.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(_ConfigRoot(self), name)

    def __getitem__(self, key: Any) -> Deferred:
        return _ConfigRoot(self)[key]

    def _parse(self, text: str, where: str) -> ConfigValue:
        parser = self.parser
        try:
            if parser is None:
                import json

                parsed = json.loads(text)
            else:
                parsed = (_named_parser(parser) if isinstance(parser, str) else parser)(text)
        except ParameterError:
            raise
        except Exception as exc:
            raise ParameterError(
                f"Config '{self.name}': {where} is not valid: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(parsed, Mapping):
            raise ParameterError(
                f"Config '{self.name}': {where} must hold a mapping (a JSON object), "
                f"not {type(parsed).__name__}."
            )
        return ConfigValue(parsed)

    def _read(self, path: str, given: bool) -> ConfigValue | None:
        path = os.path.expanduser(path)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            if not given:
                return None
            raise ParameterError(
                f"Config '{self.name}': the file '{path}' does not exist."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ParameterError(
                f"Config '{self.name}': could not read the file '{path}': {exc}"
            ) from None
        return self._parse(text, f"the file '{path}'")

    def _from_value(self, value: Any, where: str) -> ConfigValue:
        if isinstance(value, Mapping):
            import json

            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise ParameterError(f"Config '{self.name}': {where} is not JSON: {exc}") from None
            return ConfigValue(value)
        if isinstance(value, (str, bytes)):
            return self._parse(value.decode() if isinstance(value, bytes) else value, where)
        raise ParameterError(
            f"Config '{self.name}': {where} must be a dict or text, not {type(value).__name__}."
        )

    def resolve(self, file: str | None, value: Any, ctx: Any) -> ConfigValue | None:
        """The config's value in a run given `file` (--config) or `value` (--config-value)."""
        if file is not None and value is not None:
            raise ParameterError(
                f"Config '{self.name}': give either --config or --config-value, not both."
            )
        if file is not None:
            return self._read(os.fspath(file), given=True)
        if value is not None:
            return self._from_value(value, "the given value")
        if self.default is not None:
            path = self.default(ctx) if callable(self.default) else self.default
            found = self._read(os.fspath(path), given=False) if path else None
            if found is not None:
                return found
            if self.default_value is None:
                raise ParameterError(
                    f"Config '{self.name}': the default file '{path}' does not exist."
                )
        if self.default_value is not None:
            default_value = self.default_value
            if callable(default_value):
                default_value = default_value(ctx)
            return self._from_value(default_value, "the default value")
        if self.required:
            raise ParameterError(
                f"Config '{self.name}' is required: give --config {self.name} FILE or "
                f"--config-value {self.name} JSON."
            )
        return None


def flow_configs(flow_cls: type) -> list[tuple[str, Config]]:
    """(attribute name, Config) pairs of `flow_cls`, inherited ones included."""
    found: dict[str, Config] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Config):
                found[attr] = value
            elif attr in found:
                del found[attr]  # overridden by something else in a subclass
    for attr, config in found.items():
        if config.attr_name is None:
            config.attr_name = attr
    return list(found.items())


class ResolvedConfigs:
    """The values a run's configs took: `values` by attribute name (stored as artifacts), and
    the means to evaluate deferred values against them."""

    def __init__(self, configs: list[tuple[str, Config]], values: dict[str, Any]) -> None:
        self._configs = configs
        self.values = values

    def value_of(self, config: Config) -> Any:
        """The value `config` took in this run."""
        for attr, declared in self._configs:
            if declared is config:
                return self.values[attr]
        raise FlowDefinitionError(f"{config!r} is not a Config of the flow being run.")

    def namespace(self) -> dict[str, Any]:
        """The names a `config_expr` sees: each config by config name and by attribute."""
        names: dict[str, Any] = {}
        for attr, config in self._configs:
            names[config.name] = self.values[attr]
            names[attr] = self.values[attr]
        return names

    def as_config_value(self) -> ConfigValue:
        """Every config by name, as `ParameterContext.configs`."""
        return ConfigValue(
            {c.name: (v.to_dict() if isinstance(v, ConfigValue) else v) for c, v in self._pairs()}
        )

    def _pairs(self) -> Iterator[tuple[Config, Any]]:
        for attr, config in self._configs:
            yield config, self.values[attr]

    def evaluate(self, value: Any) -> Any:
        """`value` with its deferred values evaluated (see `evaluate_deferred`)."""
        return evaluate_deferred(value, self)


def resolve_configs(
    flow_cls: type,
    files: Mapping[str, Any],
    values: Mapping[str, Any],
    ctx: Any,
) -> ResolvedConfigs:
    """Resolve every config of `flow_cls` once: `files` and `values` map config names to what
    `--config` and `--config-value` gave. Raises ParameterError naming the config (and file)."""
    configs = flow_configs(flow_cls)
    by_name = {config.name: config for _, config in configs}
    for given in (*files, *values):
        if given not in by_name:
            known = ", ".join(by_name) or "none"
            raise ParameterError(
                f"Unknown config '{given}' for flow {flow_cls.__name__}. Its configs are: {known}."
            )
    resolved = {
        attr: config.resolve(files.get(config.name), values.get(config.name), ctx)
        for attr, config in configs
    }
    return ResolvedConfigs(configs, resolved)
