"""`@project(name=...)`: flows that belong together, each run on a branch of the project.

    @project(name="fraud")
    class ScoreFlow(FlowSpec): ...

A run's branch follows Metaflow's rules: `user.<username>` by default, `test.<branch>` with
`--branch <branch>`, `prod` with `--production` (`prod.<branch>` with both). The run carries the
system tags `project:<name>` and `project_branch:<branch>`, so `namespace("project:fraud")` or
`namespace("project_branch:prod")` sees the project's runs, and `current` tells a step
`project_name`, `branch_name`, `is_user_branch`, `is_production` and `project_flow_name`
(`<project>.<branch>.<FlowName>`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .decorators import FlowDecorator, flow_decorator
from .exceptions import FlowDefinitionError, ParameterError

__all__ = ["ProjectDecorator", "ProjectInfo", "project", "project_info"]

#: Metaflow's rule for project names.
_PROJECT_NAME = re.compile(r"[a-z0-9_]+")
MAX_PROJECT_NAME = 128
_BRANCH_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


class ProjectDecorator(FlowDecorator):
    """Make the flow part of project `name` (see the module's docstring). `branch` and
    `production` may be given here instead of on the command line, not both."""

    name = "project"
    defaults = {"name": None, "branch": None, "production": False}

    def validate(self) -> None:
        """A lower-case name of letters, digits and underscores, at most 128 characters."""
        name = self.attributes["name"]
        if not isinstance(name, str) or not _PROJECT_NAME.fullmatch(name):
            raise FlowDefinitionError(
                f"@project(name={name!r}): the name may contain only lowercase alphanumeric "
                "characters and underscores."
            )
        if len(name) > MAX_PROJECT_NAME:
            raise FlowDefinitionError(
                f"@project(name=...): the name is longer than {MAX_PROJECT_NAME} characters."
            )
        branch = self.attributes["branch"]
        if branch is not None:
            _check_branch(branch, "@project(branch=...)")


project = flow_decorator(ProjectDecorator)


class ProjectInfo(NamedTuple):
    """What `current` tells about a run's project."""

    project_name: str
    branch_name: str
    is_user_branch: bool
    is_production: bool
    project_flow_name: str

    def system_tags(self) -> list[str]:
        """The tags a run of the project carries: `project:<name>`, `project_branch:<branch>`."""
        return [f"project:{self.project_name}", f"project_branch:{self.branch_name}"]


def _check_branch(branch: object, where: str) -> str:
    if not isinstance(branch, str) or not _BRANCH_NAME.fullmatch(branch):
        raise ParameterError(
            f"Invalid value for '{where}': {branch!r}: a branch name is made of letters, digits, "
            "'_', '.' and '-'."
        )
    return branch


def project_info(
    flow_name: str,
    deco: ProjectDecorator | None,
    *,
    username: str,
    branch: str | None = None,
    production: bool = False,
) -> ProjectInfo | None:
    """The project of a run of `flow_name` (None without @project), given `--branch` and
    `--production`. Raises ParameterError when they are given without @project, or both in the
    decorator and on the command line."""
    if deco is None:
        for option, value in (("--branch", branch), ("--production", production)):
            if value:
                raise ParameterError(
                    f"{option} is an option of flows with @project; {flow_name} has none."
                )
        return None
    if branch is not None and deco.attributes["branch"] is not None:
        raise ParameterError(
            "The branch is given both in @project(branch=...) and with --branch: give one."
        )
    if production and deco.attributes["production"]:
        raise ParameterError(
            "Production is set both in @project(production=True) and with --production: give one."
        )
    branch = branch if branch is not None else deco.attributes["branch"]
    if branch is not None:
        _check_branch(branch, "--branch")
    production = bool(production or deco.attributes["production"])
    if production:
        branch_name = "prod" if branch is None else f"prod.{branch}"
    else:
        branch_name = f"user.{username}" if branch is None else f"test.{branch}"
    name = deco.attributes["name"]
    return ProjectInfo(
        project_name=name,
        branch_name=branch_name,
        is_user_branch=not production and branch is None,
        is_production=production,
        project_flow_name=f"{name}.{branch_name}.{flow_name}",
    )
