"""The exception tree of aioflow: every error the package raises on purpose.

::

    AioflowException                      (alias: MetaflowException)
    ├── FlowDefinitionError               the flow file or class cannot be used
    │   └── LintError                     the graph breaks a rule; names step, file, line
    ├── ParameterError                    a parameter is declared or given wrongly (usage)
    ├── TransitionError                   self.next() misused at run time (InvalidNextException)
    ├── ArtifactError
    │   ├── ArtifactEncodingError         a value cannot be stored as an artifact
    │   ├── ReadOnlyArtifactError         a parameter or constant was assigned (AttributeError)
    │   └── CorruptBlobError              a stored blob does not match its key
    ├── MergeArtifactsException           merge_artifacts() misused
    │   ├── UnhandledInMergeArtifactsException   conflicting values; lists the names
    │   └── MissingInMergeArtifactsException     an `include` name is nowhere
    ├── StoreError                        the store cannot be opened or read
    ├── ClientError                       the client API cannot find what it was asked for
    │   ├── InvalidPathspec
    │   ├── MetaflowNotFound
    │   ├── MetaflowNamespaceMismatch
    │   └── TaggingError                  a tag is invalid or a tag change breaks the rules
    │                                     (alias: MetaflowTaggingError)
    ├── TimeoutException                  a task attempt ran past its @timeout
    ├── WorkerDied                        a worker process ended while running a task
    ├── WorkerSetupError                  a worker process could not load the flow
    ├── RemoteTaskError                   stands in for a step error that could not be pickled
    ├── TaskFailed                        a step body raised; carries step, task and cause
    └── FlowFailed                        a run did not succeed; carries the run and the failed task

Messages say what is wrong, where, and how to fix it.
"""

from __future__ import annotations

from typing import Any


class AioflowException(Exception):
    """Base class of every exception aioflow raises on purpose."""

    headline = "Aioflow error"

    def __init__(self, msg: str = "", **details: Any) -> None:
        super().__init__(msg)
        self.message = msg
        for key, value in details.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message


MetaflowException = AioflowException


class FlowDefinitionError(AioflowException):
    """The flow cannot be loaded or defined (bad file, no FlowSpec, bad decorator use)."""

    headline = "Flow definition error"


class LintError(FlowDefinitionError):
    """The flow's graph breaks one of the structural rules checked before every run."""

    headline = "Validity checker found an issue"

    def __init__(
        self,
        msg: str,
        step: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        where = ""
        if file is not None and line is not None:
            where = f"{file}, line {line}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + msg)
        self.step = step
        self.file = file
        self.line = line
        self.bare_message = msg


class ParameterError(AioflowException):
    """A parameter is declared wrongly or given a value it cannot take (a usage error)."""

    headline = "Invalid parameter"


class TransitionError(AioflowException):
    """`self.next()` was called wrongly, or its run-time target does not match the graph."""

    headline = "Invalid self.next() transition"


InvalidNextException = TransitionError


class ArtifactError(AioflowException):
    """Base class of errors about artifacts."""


class ArtifactEncodingError(ArtifactError):
    """A value assigned to `self` cannot be encoded as an artifact."""

    headline = "Cannot store artifact"


class ReadOnlyArtifactError(ArtifactError, AttributeError):
    """A parameter, a class-level constant or `name` was assigned inside a step."""

    headline = "Read-only artifact"


class CorruptBlobError(ArtifactError):
    """A blob read from the store does not hash to its key (the store was damaged)."""

    headline = "Corrupt blob"


class MergeArtifactsException(AioflowException):
    """`merge_artifacts()` was called where it cannot be, or with conflicting arguments."""

    headline = "Cannot merge artifacts"

    def __init__(self, msg: str, artifact_names: list[str] | None = None) -> None:
        super().__init__(msg, artifact_names=list(artifact_names or []))


class UnhandledInMergeArtifactsException(MergeArtifactsException):
    """Incoming branches disagree on the value of some artifacts; none was merged."""

    headline = "Unhandled artifacts in merge"


class MissingInMergeArtifactsException(MergeArtifactsException):
    """Some names given in `include` exist neither on `self` nor on any input."""

    headline = "Missing artifacts in merge"


class StoreError(AioflowException):
    """The store (blobs and metadata) cannot be opened, written or read."""

    headline = "Store error"


class ClientError(AioflowException):
    """Base class of errors raised by the client API."""


class InvalidPathspec(ClientError, ValueError):
    """A pathspec string is not of the form the object expects."""

    headline = "Invalid pathspec"


class MetaflowNotFound(ClientError, KeyError):
    """The object named by a pathspec does not exist in the store."""

    headline = "Object not found"

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class MetaflowNamespaceMismatch(ClientError):
    """The object exists but lies outside the current namespace."""

    headline = "Object not in the current namespace"


class TaggingError(ClientError):
    """A tag is invalid, or a tag mutation breaks the rules (Metaflow's MetaflowTaggingError)."""

    headline = "Tagging error"


MetaflowTaggingError = TaggingError


class TimeoutException(AioflowException):
    """A task attempt ran longer than its step's @timeout."""

    headline = "@timeout"


class WorkerDied(AioflowException):
    """The worker process running a task ended without returning (crash, kill, exit)."""

    headline = "Worker process died"


class WorkerSetupError(AioflowException):
    """A worker process could not load the flow (e.g. its module cannot be imported there).

    The step never ran, and every attempt in such a worker would fail the same way: the task
    fails without retries, and @catch does not catch it.
    """

    headline = "Worker process setup failed"


class RemoteTaskError(AioflowException):
    """Stands in for a step's exception that could not be pickled back from its worker."""

    headline = "Task failed in a worker process"


class ExceptionWrapper(Exception):
    """A picklable record of an exception: what @catch stores and `Task.exception` returns.

    `type` is `module.Class` (e.g. `builtins.ValueError`), `exception` the message, and
    `stacktrace` the formatted traceback; `str()` gives the stacktrace, as Metaflow's wrapper.
    """

    def __init__(self, type: str = "", exception: str = "", stacktrace: str | None = None):
        super().__init__(type, exception)
        self.type = type
        self.exception = exception
        self.stacktrace = stacktrace

    @property
    def message(self) -> str:
        """The exception's message (same as `.exception`)."""
        return self.exception

    @property
    def traceback(self) -> str | None:
        """The formatted traceback (same as `.stacktrace`)."""
        return self.stacktrace

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExceptionWrapper, (self.type, self.exception, self.stacktrace))

    def __str__(self) -> str:
        if self.stacktrace:
            return self.stacktrace
        return f"[no stacktrace]\n{self.type}: {self.exception}"

    def __repr__(self) -> str:
        return str(self)


MetaflowExceptionWrapper = ExceptionWrapper


class TaskFailed(AioflowException):
    """A step's body raised; `__cause__` is the original exception."""

    headline = "Task failed"


class FlowFailed(AioflowException):
    """A run did not finish successfully.

    `run` is the client `Run` (or None when nothing was stored), `pathspec` the failed task's
    pathspec, and `__cause__` the exception the step raised.
    """

    headline = "Flow failed"
