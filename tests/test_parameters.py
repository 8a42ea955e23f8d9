"""Tests of aioflow.parameters: declaring, validating, resolving and exposing run parameters."""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any

import click
import pytest
from click.testing import CliRunner

from aioflow.cli.parameter_options import click_params
from aioflow.decorators import step
from aioflow.exceptions import AioflowException, ParameterError, ReadOnlyArtifactError
from aioflow.parameters import (
    IncludeFile,
    InvalidValue,
    JSONType,
    JSONTypeClass,
    Parameter,
    ParameterContext,
    flow_constants,
    flow_parameters,
    resolve_parameters,
)


class FakeFlowSpec:
    """Stand-in for aioflow.flowspec.FlowSpec: the attributes parameters must not shadow."""

    base_constant = "defined on the base"

    def __init__(self, artifacts: dict[str, Any]) -> None:
        self._artifacts = artifacts

    def _aioflow_artifact(self, name: str) -> Any:
        return self._artifacts[name]

    def next(self, *steps: Any, foreach: str | None = None) -> None:
        """Stand-in."""

    @property
    def input(self) -> Any:
        return None

    @property
    def index(self) -> int | None:
        return None

    def foreach_stack(self) -> list[Any]:
        return []

    def merge_artifacts(self, inputs: Any) -> None:
        """Stand-in."""


def resolve(flow: type, from_cli: bool = False, **given: Any) -> dict[str, Any]:
    return resolve_parameters(
        flow, given, flow_name=flow.__name__, user_name="tester", from_cli=from_cli
    )


def error_of(flow: type, from_cli: bool = False, **given: Any) -> str:
    with pytest.raises(ParameterError) as info:
        resolve(flow, from_cli=from_cli, **given)
    return str(info.value)


def make_flow(**attrs: Any) -> type:
    return type("TestFlow", (FakeFlowSpec,), dict(attrs))


def define_error(**attrs: Any) -> str:
    with pytest.raises(ParameterError) as info:
        flow_parameters(make_flow(**attrs))
    return str(info.value)


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("default", "kind"),
    [(0.5, float), (3, int), (True, bool), ("x", str), (None, str), (lambda ctx: 1, str)],
)
def test_type_is_inferred_from_the_default(default: Any, kind: type) -> None:
    assert Parameter("p", default=default).type is kind


def test_explicit_type_wins_and_dict_or_list_defaults_are_json() -> None:
    assert Parameter("p", default=1, type=float).type is float
    assert Parameter("p", default={"a": 1}).type is JSONType
    assert Parameter("p", default=[1, 2]).type is JSONType
    assert Parameter("p", type=JSONTypeClass).type is JSONType


def test_unsupported_type_is_refused() -> None:
    with pytest.raises(ParameterError, match=r"Parameter \*p\*: unsupported type <class 'set'>"):
        Parameter("p", type=set)
    with pytest.raises(ParameterError, match="unsupported type <class 'bytes'>"):
        Parameter("p", default=b"x")


def test_cli_strings_are_converted() -> None:
    flow = make_flow(
        alpha=Parameter("alpha", type=float),
        count=Parameter("count", type=int),
        flag=Parameter("flag", type=bool),
        text=Parameter("text"),
    )
    got = resolve(flow, from_cli=True, alpha="0.6", count=" 7 ", flag="True", text=" a b ")
    assert got == {"alpha": 0.6, "count": 7, "flag": True, "text": " a b "}
    for word, value in [("false", False), ("YES", True), ("0", False), ("on", True)]:
        assert resolve(flow, from_cli=True, flag=word)["flag"] is value


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (float, "abc", "Invalid value for '--p': 'abc' is not a valid float."),
        (int, "1.5", "Invalid value for '--p': '1.5' is not a valid integer."),
        (bool, "maybe", "Invalid value for '--p': 'maybe' is not a valid boolean."),
        (bool, "", "Invalid value for '--p': '' is not a valid boolean."),
    ],
)
def test_bad_cli_strings_name_option_value_and_type(kind: type, value: str, message: str) -> None:
    assert error_of(make_flow(p=Parameter("p", type=kind)), from_cli=True, p=value) == message


def test_python_values_are_accepted_when_they_convert() -> None:
    flow = make_flow(
        alpha=Parameter("alpha", default=0.5),
        count=Parameter("count", default=1),
        flag=Parameter("flag", default=False),
    )
    got = resolve(flow, alpha=3, count="12", flag=True)
    assert got == {"alpha": 3.0, "count": 12, "flag": True}
    assert isinstance(got["alpha"], float)
    assert resolve(flow, flag="no")["flag"] is False


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (
            int,
            2.5,
            "Invalid value for keyword argument 'p': 2.5 (of type float) is not a valid integer.",
        ),
        (
            int,
            True,
            "Invalid value for keyword argument 'p': True (of type bool) is not a valid integer.",
        ),
        (
            float,
            False,
            "Invalid value for keyword argument 'p': False (of type bool) is not a valid float.",
        ),
        (
            bool,
            1,
            "Invalid value for keyword argument 'p': 1 (of type int) is not a valid boolean.",
        ),
        (str, 5, "Invalid value for keyword argument 'p': 5 (of type int) is not a valid string."),
        (
            float,
            [1],
            "Invalid value for keyword argument 'p': [1] (of type list) is not a valid float.",
        ),
    ],
)
def test_wrong_python_types_are_errors(kind: type, value: Any, message: str) -> None:
    assert error_of(make_flow(p=Parameter("p", type=kind)), p=value) == message


def test_defaults_are_converted_like_cli_values() -> None:
    flow = make_flow(
        a=Parameter("a", default=2, type=float),
        b=Parameter("b", default=5, type=str),
        c=Parameter("c", default="7", type=int),
    )
    assert resolve(flow) == {"a": 2.0, "b": "5", "c": 7}
    bad = make_flow(p=Parameter("p", default="x", type=int))
    assert (
        error_of(bad)
        == "Invalid value for parameter 'p' (its default): 'x' is not a valid integer."
    )
    assert error_of(bad, from_cli=True) == "Invalid value for '--p': 'x' is not a valid integer."


# --- JSONType -----------------------------------------------------------------------------------


def test_json_parameter_parses_text_and_takes_python_values_as_is() -> None:
    flow = make_flow(cfg=Parameter("cfg", type=JSONType, default={"k": [1, 2]}))
    assert resolve(flow) == {"cfg": {"k": [1, 2]}}
    assert resolve(flow, from_cli=True, cfg='{"a": 1}') == {"cfg": {"a": 1}}
    value = {"x": [1, {"y": None}]}
    assert resolve(flow, cfg=value)["cfg"] is value
    assert resolve(flow, cfg=[1, 2])["cfg"] == [1, 2]


def test_bad_json_is_an_error() -> None:
    flow = make_flow(cfg=Parameter("cfg", type=JSONType))
    assert error_of(flow, from_cli=True, cfg="{bad") == (
        "Invalid value for '--cfg': '{bad' is not a valid JSON object."
    )
    assert error_of(flow, cfg={1, 2}) == (
        "Invalid value for keyword argument 'cfg': {1, 2} (of type set) is not a valid JSON object."
    )


def test_json_type_converts_like_metaflows() -> None:
    assert JSONType.convert('[1, "a"]', None, None) == [1, "a"]
    assert JSONType.convert({"a": 1}) == {"a": 1}
    with pytest.raises(
        ParameterError, match=r"Parameter \*p\*: the default \{1\} is not a valid JSON"
    ):
        Parameter("p", type=JSONType, default={1})
    with pytest.raises(InvalidValue, match=r"^'nope' is not a valid JSON object\.$"):
        JSONType.convert("nope", None, None)
    assert repr(JSONType) == "JSON"


# --- separator ---------------------------------------------------------------------------------


def test_separator_splits_strings() -> None:
    flow = make_flow(items=Parameter("items", default="a,b", separator=","))
    assert resolve(flow) == {"items": ["a", "b"]}
    assert resolve(flow, from_cli=True, items="x,y,z") == {"items": ["x", "y", "z"]}
    assert resolve(flow, items="") == {"items": ""}  # Metaflow: an empty value is not split
    assert resolve(flow, items=("p", "q")) == {"items": ["p", "q"]}
    assert error_of(flow, items=["p", 1]) == (
        "Invalid value for keyword argument 'items': 1 (of type int) is not a valid string."
    )


def test_separator_only_for_string_parameters() -> None:
    with pytest.raises(ParameterError) as info:
        Parameter("n", type=int, separator=",")
    assert str(info.value) == "Parameter *n*: Separator is only allowed for string parameters."
    with pytest.raises(ParameterError, match="Separator is only allowed"):
        Parameter("n", default=["a"], type=str, separator=",")


@pytest.mark.parametrize("field", ["show_default", "separator", "required"])
def test_fields_cannot_be_functions(field: str) -> None:
    with pytest.raises(ParameterError) as info:
        Parameter("p", **{field: lambda ctx: True})
    assert str(info.value) == f"Parameter *p*: Field '{field}' cannot have a function as its value"


def test_bad_names_and_arguments_are_refused() -> None:
    for name in ["", "--x", "a b"]:
        with pytest.raises(ParameterError, match="is not a valid option name"):
            Parameter(name)
    with pytest.raises(ParameterError, match=r"unexpected argument\(s\) \['colour'\]"):
        Parameter("p", colour="red")


# --- callable defaults -------------------------------------------------------------------------


def test_callable_default_is_called_once_per_resolve_with_a_context() -> None:
    seen: list[ParameterContext] = []

    def default(ctx: ParameterContext) -> int:
        seen.append(ctx)
        return 4

    flow = make_flow(lr=Parameter("learning_rate", default=default, type=float))
    assert resolve(flow) == {"lr": 4.0}
    assert len(seen) == 1
    ctx = seen[0]
    assert isinstance(ctx, ParameterContext)
    assert (ctx.flow_name, ctx.user_name, ctx.parameter_name) == (
        "TestFlow",
        "tester",
        "learning_rate",
    )
    assert ctx.ds_type == "local" and ctx.configs is None and callable(ctx.logger)
    assert ParameterContext._fields == (
        "flow_name",
        "user_name",
        "parameter_name",
        "logger",
        "ds_type",
        "configs",
    )
    resolve(flow)
    assert len(seen) == 2
    assert resolve(flow, learning_rate="0.1") == {"lr": 0.1}
    assert len(seen) == 2  # not called when a value is given


def test_callable_default_errors() -> None:
    def broken(ctx: ParameterContext) -> str:
        raise RuntimeError("no network")

    with pytest.raises(ParameterError) as info:
        resolve(make_flow(p=Parameter("p", default=broken)))
    assert str(info.value) == (
        "When evaluating the default of the Parameter *p*, the following exception occurred: "
        "RuntimeError('no network')"
    )
    assert isinstance(info.value.__cause__, RuntimeError)
    flow = make_flow(p=Parameter("p", type=int, default=lambda ctx: [1]))
    assert error_of(flow) == (
        "Invalid value for parameter 'p' (as returned by its default function): "
        "[1] (of type list) is not a valid integer."
    )
    assert resolve(make_flow(p=Parameter("p", default=lambda ctx: None))) == {"p": None}


# --- required, missing, unknown ----------------------------------------------------------------


MISSING_ALPHA = "Missing keyword argument 'alpha': the parameter is required."


def test_required_and_missing_values() -> None:
    flow = make_flow(a=Parameter("alpha", type=float, required=True), b=Parameter("beta"))
    assert error_of(flow) == MISSING_ALPHA
    assert error_of(flow, alpha=None) == MISSING_ALPHA  # None means not given
    assert error_of(flow, from_cli=True) == "Missing option '--alpha'."
    assert resolve(flow, alpha=1.5) == {"a": 1.5, "b": None}
    with_default = make_flow(a=Parameter("alpha", default=0.1, required=True))
    assert resolve(with_default) == {"a": 0.1}  # Metaflow: a default makes required moot


def test_unknown_names_list_the_valid_ones() -> None:
    flow = make_flow(a=Parameter("alpha", default=1), b=Parameter("beta", default=2))
    assert error_of(flow, gamma=3) == (
        "Unknown parameter 'gamma' for flow TestFlow. Valid parameters are: alpha, beta."
    )
    assert error_of(flow, alpah=3) == (
        "Unknown parameter 'alpah' for flow TestFlow. Did you mean 'alpha'? "
        "Valid parameters are: alpha, beta."
    )
    assert error_of(flow, from_cli=True, gamma="3") == (
        "Unknown parameter 'gamma' for flow TestFlow. Valid parameters are: --alpha, --beta."
    )
    assert error_of(flow, a=1) == (
        "Unknown parameter 'a' for flow TestFlow. Valid parameters are: alpha, beta."
    )
    assert error_of(make_flow(), x=1) == (
        "Unknown parameter 'x' for flow TestFlow. The flow has no parameters."
    )


def test_names_match_like_click_keys() -> None:
    flow = make_flow(n=Parameter("num-Items", default=1))
    assert resolve(flow, num_items="3") == {"n": 3}
    assert resolve(flow, **{"num-Items": 4}) == {"n": 4}
    assert (
        error_of(flow, num_items=1, **{"num-Items": 2}) == "Parameter 'num-Items' is given twice."
    )


def test_attribute_name_differs_from_parameter_name() -> None:
    flow = make_flow(lr=Parameter("learning_rate", default=0.01))
    assert flow_parameters(flow) == [("lr", flow.__dict__["lr"])]
    assert resolve(flow, learning_rate=0.5) == {"lr": 0.5}
    assert [opt.opts for opt in click_params(flow)] == [["--learning_rate"]]


# --- IncludeFile -------------------------------------------------------------------------------


def test_include_file_text_and_bytes(tmp_path: pathlib.Path) -> None:
    text = tmp_path / "data.csv"
    text.write_text("a,b\n1,2\n", encoding="utf-8")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xff\x10")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    flow = make_flow(
        data=IncludeFile("data", help="a CSV file"),
        raw=IncludeFile("raw", is_text=False),
        lat=IncludeFile("lat", encoding="latin-1"),
    )
    got = resolve(flow, from_cli=True, data=str(text), raw=str(blob), lat=str(latin))
    assert got == {"data": "a,b\n1,2\n", "raw": b"\x00\xff\x10", "lat": "café"}
    assert resolve(flow, data=text)["data"] == "a,b\n1,2\n"  # a PathLike from Python
    assert resolve(flow) == {"data": None, "raw": None, "lat": None}


def test_include_file_default_and_errors(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("hello")
    flow = make_flow(doc=IncludeFile("doc", default=path, required=True))
    assert resolve(flow) == {"doc": "hello"}
    missing = str(tmp_path / "nope.txt")
    assert error_of(flow, from_cli=True, doc=missing) == (
        f"Invalid value for '--doc': IncludeFile: could not open file '{missing}' for reading"
    )
    assert error_of(make_flow(doc=IncludeFile("doc", required=True))) == (
        "Missing keyword argument 'doc': the parameter is required."
    )
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfa")
    assert error_of(flow, doc=str(bad)) == (
        f"Invalid value for keyword argument 'doc': IncludeFile: file '{bad}' is not valid utf-8"
    )
    assert error_of(flow, doc="s3://bucket/key") == (
        "Invalid value for keyword argument 'doc': IncludeFile: only local files can be included "
        "(given 's3://bucket/key')"
    )
    assert (
        error_of(flow, doc=3)
        == "Invalid value for keyword argument 'doc': 3 (of type int) is not a valid file path."
    )
    with pytest.raises(ParameterError, match="unknown encoding 'klingon'"):
        IncludeFile("doc", encoding="klingon")
    with pytest.raises(ParameterError, match=r"IncludeFile \*doc\*: 'separator' cannot be given."):
        IncludeFile("doc", separator=",")


# --- flow_parameters: reserved and duplicate names ---------------------------------------------


@pytest.mark.parametrize(
    "name", ["params", "tags", "obj", "decospecs", "max-log-size", "user_namespace", "Run-Id-File"]
)
def test_metaflow_reserved_names(name: str) -> None:
    assert define_error(p=Parameter(name)) == (
        f"Parameter '{name}' (flow attribute 'p'): '{name}' is a reserved word: it is reserved by "
        "Metaflow. Please use a different name for your parameter."
    )


@pytest.mark.parametrize(
    "name", ["max_workers", "max-num-splits", "quiet", "root", "origin_run_id", "help", "WITH"]
)
def test_aioflow_run_options_are_reserved(name: str) -> None:
    message = define_error(p=Parameter(name))
    assert message.startswith(f"Parameter '{name}' (flow attribute 'p'): '{name}' is a reserved")
    assert "it is reserved by Metaflow" in message or "it is an option of `run`" in message


def test_run_only_options_say_so() -> None:
    assert "it is an option of `run`" in define_error(p=Parameter("quiet"))


@pytest.mark.parametrize(
    "attr", ["next", "input", "index", "foreach_stack", "merge_artifacts", "name"]
)
def test_flowspec_attributes_cannot_hold_parameters(attr: str) -> None:
    assert define_error(**{attr: Parameter("x")}) == (
        f"Parameter 'x' (flow attribute '{attr}'): the attribute name '{attr}' is used by "
        "FlowSpec itself. Please use a different attribute name."
    )


def test_private_attributes_cannot_hold_parameters() -> None:
    assert define_error(_secret=Parameter("secret")) == (
        "Parameter 'secret' (flow attribute '_secret'): attributes starting with '_' cannot "
        "hold parameters. Please use a different attribute name."
    )


@pytest.mark.parametrize("second", ["alpha", "ALPHA", "Alpha"])
def test_duplicate_names(second: str) -> None:
    assert define_error(a=Parameter("alpha"), b=Parameter(second)) == (
        f"Parameter *{second}* is specified twice (flow attributes 'a' and 'b'). Note that "
        "parameter names are case-insensitive and '-' equals '_'."
    )


def test_dash_and_underscore_are_duplicates_and_inheritance_counts() -> None:
    assert "is specified twice" in define_error(a=Parameter("my-p"), b=Parameter("my_p"))
    base = make_flow(a=Parameter("alpha"))
    child = type("Child", (base,), {"b": Parameter("alpha")})
    with pytest.raises(ParameterError, match=r"\*alpha\* is specified twice"):
        flow_parameters(child)


def test_flow_parameters_order_and_inheritance() -> None:
    class Base(FakeFlowSpec):
        zeta = Parameter("zeta", default=1)
        alpha = Parameter("alpha", default=2)
        shadowed = Parameter("shadowed")

    class Child(Base):
        mid = Parameter("mid", default="m")
        shadowed = 3  # a constant now, no longer a parameter

        @step
        def start(self) -> None:
            """A step."""

    assert [attr for attr, _ in flow_parameters(Child)] == ["zeta", "alpha", "mid"]
    assert resolve(Child) == {"zeta": 1, "alpha": 2, "mid": "m"}


# --- descriptor --------------------------------------------------------------------------------


def test_parameter_is_a_read_only_data_descriptor() -> None:
    class Flow(FakeFlowSpec):
        lr = Parameter("learning_rate", default=0.1)

    param = Flow.__dict__["lr"]
    assert Flow.lr is param
    assert param.attr_name == "lr" and param.name == "learning_rate"
    flow = Flow({"lr": 0.25})
    assert flow.lr == 0.25
    with pytest.raises(ReadOnlyArtifactError) as info:
        flow.lr = 1.0
    assert str(info.value) == (
        "Flow level attributes and Parameters are not modifiable: 'lr' is the Parameter "
        "'learning_rate'."
    )
    assert isinstance(info.value, AttributeError) and isinstance(info.value, AioflowException)
    with pytest.raises(ReadOnlyArtifactError):
        del flow.lr
    assert repr(param) == "Parameter('learning_rate', type=float)"


# --- flow_constants ----------------------------------------------------------------------------


def test_flow_constants_follow_metaflow() -> None:
    class Mixin:
        from_mixin = (1, 2)

    class Flow(Mixin, FakeFlowSpec):
        count = 3
        names = ["a", "b"]
        settings = {"k": "v"}
        _private = 1
        __dunder__ = 2
        param = Parameter("param", default=1)
        module = os
        builtin = len

        class Nested:
            pass

        def method(self) -> None:
            """A method."""

        @step
        def start(self) -> None:
            """A step."""

        @property
        def prop(self) -> int:
            return 1

        @classmethod
        def cm(cls) -> None:
            """A classmethod."""

        @staticmethod
        def sm() -> None:
            """A staticmethod."""

    class Child(Flow):
        extra = "x"
        count = 4

    assert flow_constants(Flow, FakeFlowSpec) == {
        "from_mixin": (1, 2),
        "count": 3,
        "names": ["a", "b"],
        "settings": {"k": "v"},
    }
    assert flow_constants(Child, FakeFlowSpec) == {
        "from_mixin": (1, 2),
        "count": 4,
        "names": ["a", "b"],
        "settings": {"k": "v"},
        "extra": "x",
    }


# --- click options -----------------------------------------------------------------------------


class CliFlow(FakeFlowSpec):
    alpha = Parameter("alpha", default=0.6, help="Learning rate.")
    count = Parameter("count", type=int, required=True, help="How many.")
    flag = Parameter("flag", default=False, help="A switch.")
    cfg = Parameter("cfg", type=JSONType, default={"a": 1}, help="Settings.")
    doc = IncludeFile("doc", help="A file.")
    items = Parameter("items", default="x,y", separator=",", show_default=False)
    seed = Parameter("seed", default=lambda ctx: 42, type=int, help="Seed.")


def make_command(flow: type, results: list[dict[str, Any]]) -> click.Command:
    options = click_params(flow)

    def run(**parsed: Any) -> None:
        given = {opt.name: parsed[opt.name] for opt in options if opt.name}
        results.append(
            resolve_parameters(flow, given, flow_name="CliFlow", user_name="u", from_cli=True)
        )

    return click.Command("run", params=list(options), callback=run)


def test_click_help_shows_types_defaults_help_and_required() -> None:
    result = CliRunner().invoke(make_command(CliFlow, []), ["--help"])
    assert result.exit_code == 0
    out = " ".join(result.output.split())
    assert "--alpha FLOAT Learning rate. [default: 0.6]" in out
    assert "--count INTEGER How many. [required]" in out
    assert "--flag BOOLEAN A switch. [default: False]" in out
    assert '--cfg JSON Settings. [default: {"a": 1}]' in out
    assert "--doc FILEPATH A file." in out
    assert "--items TEXT" in out and "x,y" not in out
    assert "--seed INTEGER Seed. [default: computed when the run starts]" in out


def test_click_run_resolves_values(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text("content")
    results: list[dict[str, Any]] = []
    args = ["--count", "3", "--flag", "true", "--cfg", '{"b": 2}', "--doc", str(path)]
    result = CliRunner().invoke(make_command(CliFlow, results), args)
    assert result.exit_code == 0, result.output
    assert results == [
        {
            "alpha": 0.6,
            "count": 3,
            "flag": True,
            "cfg": {"b": 2},
            "doc": "content",
            "items": ["x", "y"],
            "seed": 42,
        }
    ]
    CliRunner().invoke(make_command(CliFlow, results), ["--count", "1"])
    assert results[-1]["cfg"] == {"a": 1} and results[-1]["doc"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "x"], "Invalid value for '--count': 'x' is not a valid integer."),
        (
            ["--count", "1", "--alpha", "abc"],
            "Invalid value for '--alpha': 'abc' is not a valid float.",
        ),
        (["--count", "1", "--flag"], "Option '--flag' requires an argument."),
        (
            ["--count", "1", "--flag", "sure"],
            "Invalid value for '--flag': 'sure' is not a valid boolean.",
        ),
        (
            ["--count", "1", "--cfg", "{x"],
            "Invalid value for '--cfg': '{x' is not a valid JSON object.",
        ),
        (
            ["--count", "1", "--doc", "/no/such/file"],
            "IncludeFile: could not open file '/no/such/file' for reading",
        ),
        ([], "Missing option '--count'."),
        # click words this one itself, and its punctuation changed in 8.3 ("option: --gamma").
        (["--count", "1", "--gamma", "2"], re.compile("No such option:? '?--gamma'?")),
    ],
)
def test_click_bad_values_are_usage_errors(args: list[str], message: str | re.Pattern[str]) -> None:
    results: list[dict[str, Any]] = []
    result = CliRunner().invoke(make_command(CliFlow, results), args)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    if isinstance(message, str):
        assert message in output
    else:
        assert message.search(output), output
    assert results == []


def test_click_params_validate_the_flow() -> None:
    with pytest.raises(ParameterError, match="is a reserved word"):
        click_params(make_flow(p=Parameter("tag")))
    assert click_params(make_flow()) == []


def test_json_default_round_trips_through_the_cli() -> None:
    flow = make_flow(cfg=Parameter("cfg", default={"k": [1, 2.5, None, True]}))
    (option,) = click_params(flow)
    assert option.default == json.dumps({"k": [1, 2.5, None, True]})
    assert resolve(flow, from_cli=True, cfg=option.default) == resolve(flow)


def test_context_logger_writes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    def default(ctx: ParameterContext) -> str:
        ctx.logger("computing the default")
        return "v"

    assert resolve(make_flow(p=Parameter("p", default=default))) == {"p": "v"}
    assert capsys.readouterr().err == "computing the default\n"
    lines: list[str] = []
    flow = make_flow(p=Parameter("p", default=default))
    resolve_parameters(flow, {}, flow_name="F", user_name="u", from_cli=False, logger=lines.append)
    assert lines == ["computing the default"]


def test_extra_option_arguments_reach_click() -> None:
    flow = make_flow(
        secret=Parameter("secret", default="s", hidden=True),
        mode=Parameter("mode", default="a", metavar="MODE"),
    )
    result = CliRunner().invoke(make_command(flow, []), ["--help"])
    assert "--secret" not in result.output
    assert "--mode MODE" in result.output
