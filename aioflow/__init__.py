"""aioflow: Metaflow-style flows run in-process on asyncio, with deduplicated artifacts.

Write a flow as for Metaflow (`from aioflow import FlowSpec, step, Parameter`), then run it with
`aioflow run flow.py`, `python flow.py run`, or `await run_flow(MyFlow)`.
"""

__version__ = "0.1.0"

from .api import resume_flow, run_flow, run_flow_sync
from .client import DataArtifact, Flow, Run, Step, Task
from .current import current
from .decorators import catch, environment, resources, retry, step, timeout
from .exceptions import (
    AioflowException,
    FlowFailed,
    MetaflowException,
    MissingInMergeArtifactsException,
    UnhandledInMergeArtifactsException,
)
from .flowspec import FlowSpec
from .namespaces import default_namespace, get_namespace, namespace
from .parameters import IncludeFile, JSONType, Parameter

__all__ = [
    "AioflowException",
    "DataArtifact",
    "Flow",
    "FlowFailed",
    "FlowSpec",
    "IncludeFile",
    "JSONType",
    "MetaflowException",
    "MissingInMergeArtifactsException",
    "Parameter",
    "Run",
    "Step",
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
    "step",
    "timeout",
]
