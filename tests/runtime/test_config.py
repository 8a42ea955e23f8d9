"""`run_config`: the one place run options are checked and their defaults defined."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioflow import FlowSpec, start_flow, step
from aioflow.exceptions import ParameterError
from aioflow.runtime.config import RunConfig, run_config


class TinyFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_the_defaults_are_the_dataclass_defaults() -> None:
    assert run_config() == RunConfig()
    assert (RunConfig().max_workers, RunConfig().max_num_splits) == (16, 100)
    assert RunConfig().executor == "thread"


def test_values_are_kept_as_immutable_tuples() -> None:
    config = run_config(tags=["a", "b"], with_decorators=["retry"], max_workers=3)
    assert config.tags == ("a", "b") and config.with_decorators == ("retry",)
    assert config.max_workers == 3


KW = "Invalid value for keyword argument"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_workers": 0}, f"{KW} 'max_workers': 0 is not in the range x>=1."),
        ({"max_num_splits": "9"}, f"{KW} 'max_num_splits': '9' is not a valid"),
        ({"max_workers": True}, f"{KW} 'max_workers': True is not a valid integer."),
        ({"tags": "a"}, "tags='a': give a list of tags, such as tags=['a']."),
        ({"tags": [""]}, f"{KW} 'tags': Invalid tag ''"),
        ({"executor": "gpu"}, f"{KW} 'executor': 'gpu' is not one of thread"),
        ({"config": ["a"]}, f"{KW} 'config': give a dict of config name -> value"),
        ({"config_value": {"": 1}}, f"{KW} 'config_value': '' is not a config name."),
    ],
)
def test_a_bad_option_is_named_as_the_keyword_argument_it_was_given_as(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterError) as info:
        run_config(**options)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_workers": 0}, "Invalid value for '--max-workers': 0 is not in the range x>=1."),
        ({"max_num_splits": "9"}, "Invalid value for '--max-num-splits': '9' is not a valid"),
        ({"tags": [""]}, "Invalid value for '--tag': Invalid tag ''"),
        ({"executor": "gpu"}, "Invalid value for '--executor': 'gpu' is not one of thread"),
        (
            {"config": {"a": "x"}, "config_value": {"a": 1}},
            "Config 'a' is given both with --config",
        ),
    ],
)
def test_from_the_command_line_a_bad_option_is_named_as_the_option(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterError) as info:
        run_config(**options, from_cli=True)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_listeners_added_later_are_called_after_the_given_ones() -> None:
    def first(event: object) -> None: ...
    def second(event: object) -> None: ...

    assert run_config(listeners=[first]).listening(second).listeners == (first, second)


async def test_start_flow_raises_on_entering_as_run_flow_does(aioflow_root: Path) -> None:
    handle = start_flow(TinyFlow, quiet=True, max_workers=0)  # nothing is checked yet
    with pytest.raises(ParameterError, match="Invalid value for keyword argument 'max_workers'"):
        async with handle:
            pass
