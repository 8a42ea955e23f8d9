"""aioflow: Metaflow-style flows run in-process on asyncio, with deduplicated artifacts.

Write a flow as for Metaflow (`from aioflow import FlowSpec, step, Parameter`), then run it with
`aioflow run flow.py`, `python flow.py run`, `await run_flow(MyFlow)` or
`async with start_flow(MyFlow) as handle`.
"""

__version__ = "0.1.0"

from .api import resume_flow, run_flow, run_flow_sync, start_flow
from .client import DataArtifact, Flow, Metaflow, Run, Step, Task
from .current import current
from .decorators import catch, environment, resources, retry, step, timeout
from .exceptions import (
    AioflowException,
    ExceptionWrapper,
    FlowFailed,
    InvalidPathspec,
    MetaflowException,
    MetaflowExceptionWrapper,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    MissingInMergeArtifactsException,
    StoreError,
    UnhandledInMergeArtifactsException,
)
from .flowspec import FlowSpec
from .namespaces import default_namespace, get_namespace, namespace, scoped_namespace
from .parameters import IncludeFile, JSONType, Parameter
from .tags import MetaflowTaggingError, TaggingError

__all__ = [
    "AioflowException",
    "DataArtifact",
    "ExceptionWrapper",
    "Flow",
    "FlowFailed",
    "FlowSpec",
    "IncludeFile",
    "InvalidPathspec",
    "JSONType",
    "Metaflow",
    "MetaflowException",
    "MetaflowExceptionWrapper",
    "MetaflowNamespaceMismatch",
    "MetaflowNotFound",
    "MetaflowTaggingError",
    "MissingInMergeArtifactsException",
    "Parameter",
    "Run",
    "Step",
    "StoreError",
    "TaggingError",
    "Task",
    "UnhandledInMergeArtifactsException",
    "__version__",
    "catch",
    "current",
    "default_namespace",
    "environment",
    "get_namespace",
    "namespace",
    "resources",
    "resume_flow",
    "retry",
    "run_flow",
    "run_flow_sync",
    "scoped_namespace",
    "start_flow",
    "step",
    "timeout",
]
