"""Metaflow's decorators and defaults that flows written for its clusters rely on, against its
documented behaviour.

- Parameter and IncludeFile values from `METAFLOW_RUN_<NAME>` (and `AIOFLOW_RUN_<NAME>`): the name
  upper-cased with dashes as underscores, read when the option is not given, before the default.
- `@secrets` with the inline source (`{"type": "inline", "options": {"env_vars": {...}}}`), whose
  variables the step's tasks see in `os.environ`; a source aioflow cannot reach fails the run
  before it starts, naming the source.
- `@kubernetes` and `@batch` with their documented arguments (and `--with kubernetes`): the step
  runs here when no remote executor is configured, and a warning says so once per run.
- `@pypi`, `@conda`, `@pypi_base`, `@conda_base`: accepted when the packages they name are
  installed; otherwise an error listing the missing ones, before the run starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from aioflow import (
    FlowSpec,
    IncludeFile,
    Parameter,
    batch,
    conda,
    conda_base,
    kubernetes,
    pypi,
    pypi_base,
    resources,
    run_flow,
    secrets,
    step,
)
from aioflow.exceptions import FlowDefinitionError, ParameterError
from aioflow.runtime.config import run_config
from aioflow.runtime.runner import prepare

# -- parameter defaults from the environment -------------------------------------------------------


class EnvFlow(FlowSpec):
    learning_rate = Parameter("learning-rate", default=0.1)
    label = Parameter("label", default="none")
    notes = IncludeFile("notes", default=None)

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def _values(flow: type[FlowSpec], **given: Any) -> dict[str, Any]:
    return prepare(flow, given, run_config()).values


def test_parameters_read_metaflow_run_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("from the environment")
    monkeypatch.setenv("METAFLOW_RUN_LEARNING_RATE", "0.5")
    monkeypatch.setenv("METAFLOW_RUN_NOTES", str(notes))
    values = _values(EnvFlow)
    assert values["learning_rate"] == 0.5  # converted to the parameter's type
    assert values["notes"] == "from the environment"  # an IncludeFile reads the file named
    assert values["label"] == "none"
    monkeypatch.setenv("AIOFLOW_RUN_LEARNING_RATE", "0.7")  # aioflow's own name comes first
    assert _values(EnvFlow)["learning_rate"] == 0.7
    assert _values(EnvFlow, **{"learning-rate": 0.9})["learning_rate"] == 0.9  # given wins


def test_a_bad_value_from_the_environment_names_the_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METAFLOW_RUN_LEARNING_RATE", "fast")
    with pytest.raises(
        ParameterError, match=r"^\$METAFLOW_RUN_LEARNING_RATE: Invalid value .*'fast'"
    ):
        _values(EnvFlow)


ENV_FLOW_FILE = """
from aioflow import FlowSpec, Parameter, step

class CliEnvFlow(FlowSpec):
    size = Parameter("batch-size", type=int, required=True)

    @step
    def start(self):
        print("batch size", self.size)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CliEnvFlow()
"""


def test_the_command_line_reads_the_same_variables(
    write_flow: Any, tmp_path: Path, aioflow_root: Path
) -> None:
    flow = str(write_flow(ENV_FLOW_FILE, name="cli_env_flow.py"))
    env = {**os.environ, "AIOFLOW_ROOT": str(aioflow_root), "METAFLOW_RUN_BATCH_SIZE": "32"}
    done = subprocess.run(
        [sys.executable, flow, "run"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr  # the required option is given by the variable
    assert "batch size 32" in done.stdout
    done = subprocess.run(
        [sys.executable, flow, "run", "--batch-size", "8"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "batch size 8" in done.stdout


# -- @secrets -------------------------------------------------------------------------------------

INLINE = {
    "type": "inline",
    "id": "db",
    "options": {"env_vars": {"DB_USER": "scott", "DB_PORT": 5432}},
}


class SecretsFlow(FlowSpec):
    @secrets(sources=[INLINE])
    @step
    def start(self) -> None:
        self.seen = {name: os.environ.get(name) for name in ("DB_USER", "DB_PORT")}
        self.next(self.end)

    @step
    def end(self) -> None:
        self.outside = os.environ.get("DB_USER")


async def test_inline_secrets_are_environment_variables_of_the_step(aioflow_root: Path) -> None:
    run = await run_flow(SecretsFlow, root=aioflow_root, quiet=True)
    assert run["start"].task.data.seen == {"DB_USER": "scott", "DB_PORT": "5432"}
    assert run.data.outside is None  # only the decorated step sees them


def _secrets_flow(*sources: Any) -> type[FlowSpec]:
    class Flow(FlowSpec):
        @secrets(sources=list(sources))
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    return Flow


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("aws-secrets-manager.db-creds", r"kept in AWS Secrets Manager, which aioflow cannot"),
        (
            {"type": "gcp-secret-manager", "id": "db"},
            r"kept in GCP Secret Manager, which aioflow cannot reach: reading it needs the "
            r"Google Cloud SDK",
        ),
        ({"type": "vault", "id": "db"}, r"has the unknown type 'vault'"),
        ("db-creds", r"names no type and no default secrets backend is set"),
    ],
)
def test_unreachable_secret_sources_fail_before_the_run(
    source: Any, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE", raising=False)
    monkeypatch.delenv("AIOFLOW_DEFAULT_SECRETS_BACKEND_TYPE", raising=False)
    with pytest.raises(FlowDefinitionError, match=r"Step \*start\*: @secrets: the source ") as err:
        prepare(_secrets_flow(source), {}, run_config())
    assert err.match(expected)


def test_a_default_backend_type_applies_to_bare_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE", "aws-secrets-manager")
    with pytest.raises(FlowDefinitionError, match=r"AWS Secrets Manager"):
        prepare(_secrets_flow("db-creds"), {}, run_config())


def test_secrets_misuse() -> None:
    twice = {"type": "inline", "id": "again", "options": {"env_vars": {"DB_USER": "x"}}}
    with pytest.raises(FlowDefinitionError, match=r"'DB_USER' is given by more than one source"):
        prepare(_secrets_flow(INLINE, twice), {}, run_config())
    with pytest.raises(FlowDefinitionError, match=r"takes a list of secret sources"):
        secrets(sources=[1])


# -- @kubernetes and @batch ---------------------------------------------------------------------


class RemoteFlow(FlowSpec):
    @kubernetes(
        cpu=2,
        memory=1024,
        disk=20480,
        image="python:3.12",
        image_pull_policy="Always",
        service_account="runner",
        namespace="ml",
        node_selector={"pool": "gpu"},
        tolerations=[],
        labels={"team": "ml"},
        use_tmpfs=True,
        compute_pool="default",
    )
    @step
    def start(self) -> None:
        self.where = "here"
        self.next(self.train)

    @batch(cpu=1, memory=512, queue="jobs", iam_role="arn:aws:iam::1:role/x", efa=1)
    @resources(cpu=3)
    @step
    def train(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_remote_steps_run_here_and_a_warning_says_so_once(aioflow_root: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        run = await run_flow(RemoteFlow, root=aioflow_root, quiet=True)
    assert run.successful
    assert run["start"].task.data.where == "here"
    assert [str(w.message) for w in caught] == [
        "RemoteFlow: no remote executor is configured, so the steps start (@kubernetes), "
        "train (@batch) run on this machine."
    ]
    assert caught[0].filename == __file__  # it points at the first remote step
    assert caught[0].lineno == RemoteFlow.start.__code__.co_firstlineno
    with pytest.warns(UserWarning) as again:  # every run says so, not only the process's first
        await run_flow(RemoteFlow, root=aioflow_root, quiet=True)
    assert len(again) == 1


def test_remote_amounts_reserve_local_resources_as_metaflow_combines_them() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        options = prepare(RemoteFlow, {}, run_config()).options
    assert (options["start"].cpu, options["start"].memory) == (2, 1024)
    assert options["train"].cpu == 3  # the larger of @batch(cpu=1) and @resources(cpu=3)
    assert options["start"].remote == "kubernetes"
    assert options["end"].remote is None


def test_with_kubernetes_parses_like_other_decorators() -> None:
    class Plain(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    with pytest.warns(UserWarning, match=r"start \(@kubernetes\), end \(@kubernetes\)"):
        options = prepare(Plain, {}, run_config(with_decorators=["kubernetes:cpu=4,image=x"]))
    assert options.options["end"].cpu == 4
    with pytest.raises(ParameterError, match=r"@batch takes cpu, gpu, memory"):
        prepare(Plain, {}, run_config(with_decorators=["batch:cores=2"]))
    with pytest.raises(FlowDefinitionError, match=r"@kubernetes does not take cores"):
        kubernetes(cores=2)


# -- @pypi, @conda and their flow-level forms -----------------------------------------------------


@pypi_base(packages={"anyio": "4.0"}, python="3.11")
class InstalledFlow(FlowSpec):
    @pypi(packages={"msgpack": "1.0", "click": ">=8"})
    @step
    def start(self) -> None:
        self.next(self.end)

    @conda(libraries={"conda-forge::typing_extensions": ""}, python="3.11")
    @step
    def end(self) -> None:
        pass


async def test_installed_packages_are_accepted(aioflow_root: Path) -> None:
    run = await run_flow(InstalledFlow, root=aioflow_root, quiet=True)
    assert run.successful


def test_missing_packages_are_named_before_the_run() -> None:
    class StepMissing(FlowSpec):
        @conda(packages={"not-a-real-package-xyz": "1.0", "anyio": "4", "nor-this-one": "2"})
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    with pytest.raises(FlowDefinitionError) as err:
        prepare(StepMissing, {}, run_config())
    assert str(err.value).startswith(
        "Step *start*: @conda names packages that are not installed in this environment: "
        "nor-this-one, not-a-real-package-xyz. aioflow installs nothing at run time"
    )

    @conda_base(libraries={"not-a-real-package-xyz": "1.0"})
    class FlowMissing(InstalledFlow):
        pass

    with pytest.raises(FlowDefinitionError, match=r"@conda_base names packages .*xyz"):
        prepare(FlowMissing, {}, run_config())

    @pypi_base(packages={"not-a-real-package-xyz": "1.0"}, disabled=True)
    class Disabled(InstalledFlow):
        pass

    prepare(Disabled, {}, run_config())  # a disabled environment is not checked
