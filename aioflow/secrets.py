"""`@secrets`: secrets injected as environment variables into a step's tasks.

    @secrets(sources=[{"type": "inline", "id": "db",
                       "options": {"env_vars": {"DB_USER": "scott", "DB_PASSWORD": "tiger"}}}])
    @step
    def start(self):
        connect(os.environ["DB_USER"], os.environ["DB_PASSWORD"])

aioflow reads the `inline` source Metaflow documents for local use and testing: the variables
in `options["env_vars"]`. The cloud secrets managers (AWS Secrets Manager, Azure Key Vault, GCP
Secret Manager) are out of its reach: a step naming one fails before the run starts, saying so.
Like `@environment`, the variables need a process of their own (threads share `os.environ`), so
the step runs in a worker process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from .decorators import StepDecorator, register, step_decorator
from .exceptions import FlowDefinitionError

__all__ = ["SecretsDecorator", "secrets"]

#: Metaflow's source types, and what each needs that aioflow does not have.
UNREACHABLE_SOURCES = {
    "aws-secrets-manager": "AWS Secrets Manager (boto3 and AWS credentials)",
    "az-key-vault": "Azure Key Vault (the Azure SDK and credentials)",
    "gcp-secret-manager": "GCP Secret Manager (the Google Cloud SDK and credentials)",
}
INLINE = "inline"
#: Where Metaflow reads the type of a source given without one.
DEFAULT_TYPE_VARIABLES = (
    "AIOFLOW_DEFAULT_SECRETS_BACKEND_TYPE",
    "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _default_type() -> str | None:
    for variable in DEFAULT_TYPE_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    return None


def _source_type(source: str | Mapping[str, Any]) -> tuple[str | None, str]:
    """(type, id) of a source: a dict with "type" and "id", or "type.id", or "id"."""
    if isinstance(source, Mapping):
        return source.get("type") or _default_type(), str(source.get("id", ""))
    for known in (INLINE, *UNREACHABLE_SOURCES):
        if source.startswith(known + "."):
            return known, source[len(known) + 1 :]
    return _default_type(), source


class SecretsDecorator(StepDecorator):
    """Inject the secrets of `sources` as environment variables into the step's tasks (see the
    module's docstring). `role` is accepted for compatibility; the inline source needs none."""

    name = "secrets"
    defaults: ClassVar[dict[str, Any]] = {"sources": [], "role": None}

    def validate(self) -> None:
        """`sources` is a list of source names ("type.id") or dicts."""
        sources = self.attributes["sources"]
        if isinstance(sources, (str, Mapping)):
            sources = [sources]
        if not isinstance(sources, (list, tuple)) or not all(
            isinstance(source, (str, Mapping)) for source in sources
        ):
            raise FlowDefinitionError(
                "@secrets(sources=...) takes a list of secret sources: names or dicts."
            )
        self.attributes["sources"] = list(sources)

    def step_env(self) -> dict[str, str]:
        """The variables of every source; a source aioflow cannot read is an error naming it."""
        env: dict[str, str] = {}
        for source in self.attributes["sources"]:
            kind, secret_id = _source_type(source)
            if kind != INLINE:
                raise FlowDefinitionError(_unreachable(source, kind))
            options = source.get("options", {}) if isinstance(source, Mapping) else {}
            variables = options.get("env_vars", {}) if isinstance(options, Mapping) else None
            if not isinstance(variables, Mapping):
                raise FlowDefinitionError(
                    f"@secrets: the inline source {secret_id!r} gives its variables as "
                    "options={'env_vars': {name: value}}."
                )
            for name, value in variables.items():
                if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                    raise FlowDefinitionError(
                        f"@secrets: {name!r} (source {secret_id!r}) is not a valid environment "
                        "variable name."
                    )
                if name in env:
                    raise FlowDefinitionError(
                        f"@secrets: the variable {name!r} is given by more than one source."
                    )
                env[name] = str(value)
        return env


def _unreachable(source: str | Mapping[str, Any], kind: str | None) -> str:
    shown = dict(source) if isinstance(source, Mapping) else source
    example = "{'type': 'inline', 'id': ..., 'options': {'env_vars': {...}}}"
    if kind is None:
        return (
            f"@secrets: the source {shown!r} names no type and no default secrets backend is "
            f"set ($METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE). aioflow reads inline sources only: "
            f"{example}."
        )
    needs = UNREACHABLE_SOURCES.get(kind)
    if needs is None:
        return (
            f"@secrets: the source {shown!r} has the unknown type {kind!r}; aioflow reads "
            f"inline sources only: {example}."
        )
    return (
        f"@secrets: the source {shown!r} is kept in {needs.split(' (')[0]}, which aioflow "
        f"cannot reach: reading it needs {needs.split(' (', 1)[1][:-1]} and Metaflow's "
        f"{kind} provider. For local runs give the values as an inline source: {example}."
    )


register(SecretsDecorator)
secrets = step_decorator(SecretsDecorator)
