"""`Config` and `config_expr`, against Metaflow's documented behaviour (Configuring Flows, 2.13+).

What the documentation says, as checked here: a config's value is the file given with
`--config NAME FILE` or the value given with `--config-value NAME JSON` (giving both is an error),
else the `default` file, else `default_value`, else an error when `required`; it is parsed once
(JSON unless `parser` says otherwise), is immutable, is read by attribute or item, is persisted
as an artifact of the run, and can be used in decorators (`@retry(times=cfg.retries)`) and in
parameter defaults (`config_expr`) because it is evaluated before the run starts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aioflow import (
    Config,
    ConfigValue,
    FlowSpec,
    Parameter,
    config_expr,
    resources,
    retry,
    run_flow,
    step,
    timeout,
)
from aioflow.exceptions import FlowDefinitionError, ParameterError
from aioflow.parameters import ParameterContext
from aioflow.runtime.config import run_config
from aioflow.runtime.runner import prepare
from tests.helpers import aioflow_command

DEFAULT = {"cpu": 2, "retries": 1, "alpha": 5, "model": {"name": "tree", "layers": [1, 2]}}

PARSED: list[str] = []


def counting_parser(text: str) -> dict[str, Any]:
    """A parser that records each call: a run must parse its config exactly once."""
    PARSED.append(text)
    return dict(line.split("=", 1) for line in text.splitlines() if line)


class ConfigFlow(FlowSpec):
    cfg = Config("cfg", default_value=DEFAULT, help="The training config.")
    alpha = Parameter("alpha", default=config_expr("cfg.alpha"))

    @retry(times=cfg.retries)
    @resources(cpu=config_expr("cfg.cpu * 2"))
    @timeout(seconds=config_expr("cfg['cpu'] * 10"))
    @step
    def start(self) -> None:
        self.layers_by_attribute = self.cfg.model.layers
        self.layers_by_item = self.cfg["model"]["layers"]
        self.name_seen = self.cfg.model.name
        errors = []
        for change in (
            lambda: setattr(self, "cfg", {}),
            lambda: self.cfg.__setitem__("cpu", 1),
            lambda: setattr(self.cfg.model, "name", "x"),
        ):
            try:
                change()
            except (AttributeError, TypeError) as exc:
                errors.append(type(exc).__name__)
        self.errors = errors
        self.next(self.end)

    @step
    def end(self) -> None:
        self.cpu_at_end = self.cfg.cpu


class ParsedFlow(FlowSpec):
    settings = Config("settings", default_value="mode=fast\n", parser=counting_parser)

    @step
    def start(self) -> None:
        self.mode = self.settings.mode
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class RequiredFlow(FlowSpec):
    cfg = Config("cfg", required=True)

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ContextFlow(FlowSpec):
    cfg = Config("cfg", default_value={"greeting": "hello"})
    greeting = Parameter("greeting", default=lambda ctx: ctx.configs.cfg.greeting + "!")

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def _options(flow: type[FlowSpec], **config: Any) -> Any:
    return prepare(flow, {}, run_config(**config))


# -- values and access --------------------------------------------------------------------------


async def test_default_value_is_read_by_attribute_and_item_and_persisted(
    aioflow_root: Path,
) -> None:
    run = await run_flow(ConfigFlow, root=aioflow_root, quiet=True)
    start = run["start"].task.data
    assert start.layers_by_attribute == (1, 2)  # lists are read-only tuples
    assert start.layers_by_item == (1, 2)
    assert start.name_seen == "tree"
    assert run.data.cpu_at_end == 2
    assert run.data.cfg == DEFAULT  # persisted as an artifact of the run
    assert isinstance(run.data.cfg, ConfigValue)
    assert run.data.cfg.to_dict() == DEFAULT


async def test_a_config_is_immutable_in_a_step(aioflow_root: Path) -> None:
    run = await run_flow(ConfigFlow, root=aioflow_root, quiet=True)
    # assigning the artifact, setting an item, setting a nested attribute: all refused
    assert run["start"].task.data.errors == ["ReadOnlyArtifactError", "TypeError", "TypeError"]


async def test_config_file_and_config_value_replace_the_default(
    aioflow_root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**DEFAULT, "cpu": 4, "alpha": 8}))
    run = await run_flow(ConfigFlow, root=aioflow_root, quiet=True, config={"cfg": path})
    assert run.data.cfg["cpu"] == 4
    assert run.data.alpha == 8
    given = json.dumps({**DEFAULT, "cpu": 3})
    run = await run_flow(ConfigFlow, root=aioflow_root, quiet=True, config_value={"cfg": given})
    assert run.data.cpu_at_end == 3
    run = await run_flow(
        ConfigFlow, root=aioflow_root, quiet=True, config_value={"cfg": {**DEFAULT, "cpu": 6}}
    )
    assert run.data.cpu_at_end == 6


def test_the_default_file_comes_before_the_default_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = Config("cfg", default="present.json", default_value={"from": "value"})
    (tmp_path / "present.json").write_text('{"from": "file"}')
    assert cfg.resolve(None, None, None) == {"from": "file"}
    (tmp_path / "present.json").unlink()
    assert cfg.resolve(None, None, None) == {"from": "value"}
    with pytest.raises(ParameterError, match=r"Config 'cfg': the default file 'absent.json'"):
        Config("cfg", default="absent.json").resolve(None, None, None)


# -- in decorators and parameter defaults, once per run -------------------------------------------


def test_decorator_attributes_and_parameter_defaults_take_config_values() -> None:
    prepared = _options(ConfigFlow, config_value={"cfg": {**DEFAULT, "retries": 3, "cpu": 1}})
    start = prepared.options["start"]
    assert start.retries == 3  # @retry(times=cfg.retries)
    assert start.cpu == 2  # @resources(cpu=config_expr("cfg.cpu * 2"))
    assert start.timeout == 10  # @timeout(seconds=config_expr("cfg['cpu'] * 10"))
    assert prepared.values["alpha"] == 5  # typed as the config's value is: an int
    # The class's decorators are untouched: another run with another config sees its own.
    assert _options(ConfigFlow).options["start"].retries == 1


async def test_a_config_is_parsed_once_per_run(aioflow_root: Path) -> None:
    PARSED.clear()
    run = await run_flow(ParsedFlow, root=aioflow_root, quiet=True)
    assert run.data.mode == "fast"
    assert PARSED == ["mode=fast\n"]


async def test_callable_defaults_see_the_configs_in_their_context(aioflow_root: Path) -> None:
    run = await run_flow(ContextFlow, root=aioflow_root, quiet=True)
    assert run.data.greeting == "hello!"
    assert ParameterContext._fields[-1] == "configs"


# -- errors ---------------------------------------------------------------------------------------


def test_a_bad_config_file_is_one_error_naming_the_config_and_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ParameterError) as caught:
        _options(ConfigFlow, config={"cfg": bad})
    assert str(caught.value).startswith(f"Config 'cfg': the file '{bad}' is not valid: ")
    with pytest.raises(ParameterError, match=r"Config 'cfg': the file '.*missing.json' does not"):
        _options(ConfigFlow, config={"cfg": tmp_path / "missing.json"})
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ParameterError, match=r"must hold a mapping \(a JSON object\), not list"):
        _options(ConfigFlow, config={"cfg": tmp_path / "list.json"})


def test_config_usage_errors() -> None:
    with pytest.raises(ParameterError, match=r"Unknown config 'cgf' for flow ConfigFlow"):
        _options(ConfigFlow, config_value={"cgf": "{}"})
    with pytest.raises(ParameterError, match=r"given both with config= and config_value="):
        run_config(config={"cfg": "a.json"}, config_value={"cfg": "{}"})
    with pytest.raises(ParameterError, match=r"Config 'cfg' is required: give --config cfg FILE"):
        _options(RequiredFlow)
    with pytest.raises(FlowDefinitionError, match=r"config_expr\('cfg\.'\) is not a Python"):
        config_expr("cfg.")
    with pytest.raises(FlowDefinitionError, match=r"Step \*start\*: Cannot evaluate cfg.retries"):
        _options(ConfigFlow, config_value={"cfg": {"cpu": 1, "alpha": 1}})


# -- the command line ---------------------------------------------------------------------------


FLOW_FILE = """
from aioflow import Config, FlowSpec, Parameter, config_expr, step

class CliConfigFlow(FlowSpec):
    cfg = Config("cfg", default="defaults.json")
    size = Parameter("size", default=config_expr("cfg.size"))

    @step
    def start(self):
        print("size", self.size, "label", self.cfg.label)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CliConfigFlow()
"""


def test_cli_config_options_before_and_after_run(
    write_flow: Any, tmp_path: Path, aioflow_root: Path
) -> None:
    flow = write_flow(FLOW_FILE, name="cli_config_flow.py")
    (tmp_path / "defaults.json").write_text('{"size": 1, "label": "default"}')
    (tmp_path / "other.json").write_text('{"size": 2, "label": "file"}')
    env = {**os.environ, "AIOFLOW_ROOT": str(aioflow_root)}
    commands = {
        "size 1 label default": [*aioflow_command(), "run", str(flow)],
        "size 2 label file": [
            *aioflow_command(),
            "run",
            str(flow),
            "--config",
            "cfg",
            "other.json",
        ],
        "size 3 label value": [
            "python",
            str(flow),
            "--config-value",
            "cfg",
            '{"size": 3, "label": "value"}',
            "run",
        ],
    }
    for expected, argv in commands.items():
        if argv[0] == "python":
            argv[0] = os.environ.get("PYTHON", "") or __import__("sys").executable
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
    bad = subprocess.run(
        [*aioflow_command(), "run", str(flow), "--config", "cfg", "nowhere.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "Config 'cfg': the file 'nowhere.json' does not exist." in bad.stderr


def test_deferred_values_and_config_values_pickle() -> None:
    # A flow class sent to a worker process by value carries its decorators' deferred values,
    # and a ConfigValue artifact is pickled into the store.
    import pickle

    expr = pickle.loads(pickle.dumps(config_expr("cfg.cpu * 2")))
    assert repr(expr) == "config_expr('cfg.cpu * 2')"
    value = pickle.loads(pickle.dumps(ConfigValue(DEFAULT)))
    assert value == DEFAULT
    assert value.model.layers == (1, 2)
