"""`@project`, against Metaflow's documented behaviour (the @project API page and "Coordinating
Larger Metaflow Projects").

As documented: `current` gains `project_name`, `branch_name`, `is_user_branch`, `is_production`
and `project_flow_name`; the branch is `user.<username>` by default, `test.<branch>` with
`--branch`, `prod` with `--production` (`prod.<branch>` with both); a branch or production given
both in the decorator and on the command line is an error; runs carry the `project:<name>` and
`project_branch:<branch>` tags, which a namespace can select; a project name has only lowercase
letters, digits and underscores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aioflow import (
    Config,
    Flow,
    FlowSpec,
    config_expr,
    current,
    project,
    run_flow,
    scoped_namespace,
    step,
)
from aioflow.exceptions import FlowDefinitionError, ParameterError
from aioflow.runtime.config import run_config
from aioflow.runtime.runner import prepare
from tests.helpers import aioflow_command

USER = "tester"


@pytest.fixture(autouse=True)
def _user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOFLOW_USER", USER)


@project(name="fraud_model")
class ScoreFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.seen = {
            name: getattr(current, name)
            for name in (
                "project_name",
                "branch_name",
                "is_user_branch",
                "is_production",
                "project_flow_name",
            )
        }
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@project(name="fraud_model", branch="shared")
class PinnedFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class PlainFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.project_name = current.project_name
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# Metaflow's documented branch names, by (--branch, --production).
EXPECTED = {
    (None, False): ("user.tester", True, False),
    ("feature", False): ("test.feature", False, False),
    (None, True): ("prod", False, True),
    ("feature", True): ("prod.feature", False, True),
}


@pytest.mark.parametrize(("branch", "production"), list(EXPECTED))
async def test_current_and_system_tags_follow_the_branch(
    aioflow_root: Path, branch: str | None, production: bool
) -> None:
    run = await run_flow(
        ScoreFlow, root=aioflow_root, quiet=True, branch=branch, production=production
    )
    branch_name, is_user_branch, is_production = EXPECTED[branch, production]
    assert run.data.seen == {
        "project_name": "fraud_model",
        "branch_name": branch_name,
        "is_user_branch": is_user_branch,
        "is_production": is_production,
        "project_flow_name": f"fraud_model.{branch_name}.ScoreFlow",
    }
    assert {"project:fraud_model", f"project_branch:{branch_name}"} <= run.system_tags


async def test_a_flow_without_project_has_none(aioflow_root: Path) -> None:
    run = await run_flow(PlainFlow, root=aioflow_root, quiet=True)
    assert run.data.project_name is None
    assert not any(tag.startswith("project") for tag in run.system_tags)


async def test_namespaces_select_a_project_or_one_of_its_branches(aioflow_root: Path) -> None:
    mine = await run_flow(ScoreFlow, root=aioflow_root, quiet=True)
    prod = await run_flow(ScoreFlow, root=aioflow_root, quiet=True, production=True)
    with scoped_namespace("project_branch:prod"):
        assert [run.id for run in Flow("ScoreFlow")] == [prod.id]
    with scoped_namespace("project:fraud_model"):
        assert [run.id for run in Flow("ScoreFlow")] == [prod.id, mine.id]
    with scoped_namespace(f"user:{USER}"):  # local runs stay in the user's namespace
        assert len(list(Flow("ScoreFlow"))) == 2


@project(name=config_expr("cfg.project"))
class ConfiguredProjectFlow(FlowSpec):
    cfg = Config("cfg", default_value={"project": "from_config"})

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_the_project_name_may_come_from_a_config() -> None:
    prepared = prepare(ConfiguredProjectFlow, {}, run_config())
    assert prepared.project is not None
    assert prepared.project.project_flow_name == "from_config.user.tester.ConfiguredProjectFlow"
    other = run_config(config_value={"cfg": {"project": "Not Valid"}})
    with pytest.raises(FlowDefinitionError, match=r"lowercase alphanumeric"):
        prepare(ConfiguredProjectFlow, {}, other)


def test_branch_in_the_decorator_counts_as_given() -> None:
    pinned = prepare(PinnedFlow, {}, run_config()).project
    assert pinned is not None
    assert pinned.branch_name == "test.shared"
    with pytest.raises(ParameterError, match=r"given both in @project\(branch=...\) and with"):
        prepare(PinnedFlow, {}, run_config(branch="other"))


def test_project_usage_errors() -> None:
    with pytest.raises(ParameterError, match=r"--branch is an option of flows with @project"):
        prepare(PlainFlow, {}, run_config(branch="x"))
    with pytest.raises(ParameterError, match=r"--production is an option of flows with @project"):
        prepare(PlainFlow, {}, run_config(production=True))
    with pytest.raises(ParameterError, match=r"Invalid value for '--branch': 'a b'"):
        prepare(ScoreFlow, {}, run_config(branch="a b"))
    for bad in ("Fraud", "fraud-model", ""):
        with pytest.raises(FlowDefinitionError, match=r"lowercase alphanumeric"):
            project(name=bad)


FLOW_FILE = """
from aioflow import FlowSpec, current, project, step

@project(name="cli_project")
class CliProjectFlow(FlowSpec):
    @step
    def start(self):
        print("branch", current.branch_name)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CliProjectFlow()
"""


def test_cli_branch_and_production(write_flow: Any, tmp_path: Path, aioflow_root: Path) -> None:
    flow = str(write_flow(FLOW_FILE, name="cli_project_flow.py"))
    env = {**os.environ, "AIOFLOW_ROOT": str(aioflow_root), "AIOFLOW_USER": USER}
    commands = {
        "branch test.feature": [sys.executable, flow, "--branch", "feature", "run"],
        "branch prod": [*aioflow_command(), "run", flow, "--production"],
        "branch user.tester": [*aioflow_command(), "run", flow],
    }
    for expected, argv in commands.items():
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
