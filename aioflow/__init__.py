"""aioflow: Metaflow-style flows run in-process on asyncio, with deduplicated artifacts.

Write a flow as for Metaflow (`from aioflow import FlowSpec, step, Parameter`), then run it with
`aioflow run flow.py`, `python flow.py run`, `await run_flow(MyFlow)` or
`async with start_flow(MyFlow) as handle`.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__
from .configs import Config, ConfigValue, config_expr
from .current import current
from .decorators import catch, environment, parallel, resources, retry, step, timeout
from .exceptions import (
    AioflowException,
    BlobCorrupted,
    BlobError,
    BlobNotFound,
    ExceptionWrapper,
    FlowFailed,
    InternalError,
    InvalidPathspec,
    MetadataError,
    MetaflowException,
    MetaflowExceptionWrapper,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    MetaflowTaggingError,
    MissingInMergeArtifactsException,
    StoreError,
    StoreFull,
    TaggingError,
    UnhandledInMergeArtifactsException,
    WorkerDied,
)
from .flowspec import FlowSpec
from .packages import conda, conda_base, pypi, pypi_base
from .parameters import IncludeFile, JSONType, Parameter
from .project import project
from .remote import batch, kubernetes
from .secrets import secrets
from .transient import transient

if TYPE_CHECKING:
    from .api import resume_flow, run_flow, run_flow_sync, start_flow
    from .card_decorator import card
    from .client import DataArtifact, Flow, Metaflow, Run, Step, Task, set_root
    from .client.metadata_provider import default_metadata, get_metadata, metadata
    from .client.namespaces import (
        default_namespace,
        get_namespace,
        namespace,
        scoped_namespace,
    )
    from .runner_api import NBRunner, Runner

# Public names whose modules are imported on first use. Running a flow needs asyncio and the
# runtime, reading runs (and choosing which: the namespace) needs the client and its store;
# defining a flow needs neither, and neither does a plain `import aioflow`.
_LAZY_NAMES: dict[str, str] = {
    **dict.fromkeys(("resume_flow", "run_flow", "run_flow_sync", "start_flow"), ".api"),
    **dict.fromkeys(
        ("DataArtifact", "Flow", "Metaflow", "Run", "Step", "Task", "set_root"), ".client"
    ),
    **dict.fromkeys(
        ("default_namespace", "get_namespace", "namespace", "scoped_namespace"),
        ".client.namespaces",
    ),
    **dict.fromkeys(("default_metadata", "get_metadata", "metadata"), ".client.metadata_provider"),
    **dict.fromkeys(("NBRunner", "Runner"), ".runner_api"),
    "card": ".card_decorator",
}


#: Imports the module of a lazily exported name (see `_LAZY_NAMES`) on first use.
__getattr__ = lazy_exports(__name__, _LAZY_NAMES)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES})


__all__ = [
    "AioflowException",
    "BlobCorrupted",
    "BlobError",
    "BlobNotFound",
    "Config",
    "ConfigValue",
    "DataArtifact",
    "ExceptionWrapper",
    "Flow",
    "FlowFailed",
    "FlowSpec",
    "IncludeFile",
    "InternalError",
    "InvalidPathspec",
    "JSONType",
    "MetadataError",
    "Metaflow",
    "MetaflowException",
    "MetaflowExceptionWrapper",
    "MetaflowNamespaceMismatch",
    "MetaflowNotFound",
    "MetaflowTaggingError",
    "MissingInMergeArtifactsException",
    "NBRunner",
    "Parameter",
    "Run",
    "Runner",
    "Step",
    "StoreError",
    "StoreFull",
    "TaggingError",
    "Task",
    "UnhandledInMergeArtifactsException",
    "WorkerDied",
    "__version__",
    "batch",
    "card",
    "catch",
    "conda",
    "conda_base",
    "config_expr",
    "current",
    "default_metadata",
    "default_namespace",
    "environment",
    "get_metadata",
    "get_namespace",
    "kubernetes",
    "metadata",
    "namespace",
    "parallel",
    "project",
    "pypi",
    "pypi_base",
    "resources",
    "resume_flow",
    "retry",
    "run_flow",
    "run_flow_sync",
    "scoped_namespace",
    "secrets",
    "set_root",
    "start_flow",
    "step",
    "timeout",
    "transient",
]
