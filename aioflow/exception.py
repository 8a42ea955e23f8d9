"""Metaflow's `metaflow.exception` module path: `from aioflow.exception import MetaflowException`.

A port of a Metaflow flow stays a rename of `metaflow` to `aioflow`. Every class here is one of
`aioflow.exceptions` (where all of aioflow's exceptions are defined), under Metaflow's name.
"""

from .exceptions import (
    ExceptionWrapper,
    InternalError,
    InvalidNextException,
    InvalidPathspec,
    MetaflowException,
    MetaflowExceptionWrapper,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    MetaflowTaggingError,
    MissingInMergeArtifactsException,
    TimeoutException,
    UnhandledInMergeArtifactsException,
)

#: Metaflow's names for aioflow's classes of the same meaning.
MetaflowInternalError = InternalError
MetaflowInvalidPathspec = InvalidPathspec

__all__ = [
    "ExceptionWrapper",
    "InvalidNextException",
    "MetaflowException",
    "MetaflowExceptionWrapper",
    "MetaflowInternalError",
    "MetaflowInvalidPathspec",
    "MetaflowNamespaceMismatch",
    "MetaflowNotFound",
    "MetaflowTaggingError",
    "MissingInMergeArtifactsException",
    "TimeoutException",
    "UnhandledInMergeArtifactsException",
]
