"""The exception tree of aioflow: every error the package raises on purpose.

::

    AioflowException                      (alias: MetaflowException)
    ├── InternalError                     aioflow broke its own invariant: a bug to report
    ├── FlowDefinitionError               the flow file or class cannot be used
    │   └── LintError                     the graph breaks a rule; .step, .file, .line
    ├── ParameterError                    a parameter is declared or given wrongly (usage)
    ├── TransitionError                   self.next() misused (alias: InvalidNextException)
    ├── ArtifactError
    │   ├── ArtifactEncodingError         a value cannot be stored; .artifact, .step
    │   └── ReadOnlyArtifactError         a parameter or constant was assigned
    │                                     (also an AttributeError)
    ├── MergeArtifactsException           merge_artifacts() misused; .artifact_names (.names)
    │   ├── UnhandledInMergeArtifactsException   conflicting values
    │   └── MissingInMergeArtifactsException     an `include` name is nowhere
    ├── StoreError                        the store cannot be opened, written or read
    │   ├── MetadataError                 metadata.db is damaged, foreign or unreadable; .path
    │   │   └── MetadataConnectionError   a metadata server cannot be reached; .url
    │   ├── BlobError                     a blob cannot be read; .key, .artifact, .pathspec,
    │   │   │                             .location
    │   │   ├── BlobNotFound              the blob is missing (also a KeyError)
    │   │   └── BlobCorrupted             the blob does not match its key
    │   │                                 (alias: CorruptBlobError)
    │   ├── StoreFull                     no space left to store something; .what, .artifact,
    │   │                                 .step, .location
    │   └── RunInProgress                 a run to delete is being run (or resumed) now
    ├── ClientError                       the client API cannot give what it was asked for
    │   ├── InvalidPathspec               malformed pathspec (also a ValueError)
    │   ├── MetaflowNotFound              no such object (also a KeyError)
    │   ├── MetaflowNamespaceMismatch     the object is outside the current namespace
    │   └── TaggingError                  a tag is invalid or a tag change breaks the rules
    │                                     (alias: MetaflowTaggingError)
    ├── TimeoutException                  a task attempt ran past its @timeout
    ├── WorkerDied                        a worker process ended while running a task
    ├── WorkerSetupError                  a worker process could not load the flow
    ├── RemoteTaskError                   stands in for a step error that could not be pickled
    ├── ClusterError                      a Dask cluster cannot run the flow (unreachable,
    │                                     mismatched versions, store out of reach, resources)
    ├── ParallelStepFailed                another task of the @parallel gang failed; .node
    └── FlowFailed                        a run did not succeed; .run, .pathspec, __cause__

    ValueError
    └── InvalidValue                      a value cannot be converted to a parameter's type
                                          (what JSONType.convert raises, as click types do)

    ExceptionWrapper                      a record of a step's exception, never raised:
                                          Task.exception (alias: MetaflowExceptionWrapper)

    WorkerGone                            internal: a worker process's pipe closed; .received
                                          (the process executor turns it into WorkerDied)

A class drawn at the left edge derives from Exception. Every exception class of the package is
defined here, and the drawing shows each under its base (tests/test_exceptions.py checks both).
Messages say what is wrong, where, and how to fix it. Besides these, aioflow raises Python's own
exceptions where Python code expects them: TypeError for wrong arguments, RuntimeError for an
object used in the wrong state (a handle entered twice, run_flow_sync() in an event loop).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # for the type of FlowFailed.run only: the core never imports the client
    from .client import Run

_Blob = TypeVar("_Blob", bound="BlobError")


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Unpickle an aioflow exception without calling its `__init__` (see `__reduce__`)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class AioflowException(Exception):
    """Base class of every exception aioflow raises on purpose.

    `message` is the text (`str()` of the exception), `headline` a short title of the kind of
    error, as the command line prints above the message.
    """

    headline = "Aioflow error"

    def __init__(self, msg: str = "") -> None:
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses build their message from typed arguments, so Exception's way (calling the
        # class again with `args`) would garble them; a step's exception crosses processes.
        return (_rebuild, (type(self), self.args, self.__dict__))


MetaflowException = AioflowException


class InternalError(AioflowException):
    """aioflow broke one of its own invariants: a bug in aioflow, not in the user's flow.

    The message says what broke, then that it is a bug and how to report it.
    """

    headline = "Internal error (a bug in aioflow)"

    def __init__(self, msg: str) -> None:
        super().__init__(
            f"{msg}\nThis is a bug in aioflow, not in your flow. Please report it: open an issue "
            "on aioflow's tracker with this traceback, the output of `aioflow version` and, if "
            "you can, the flow."
        )
        #: What broke, without the advice on reporting it.
        self.detail = msg


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
    """A value assigned to `self` cannot be encoded as an artifact.

    `artifact` and `step` name the artifact and the step that set it, once known.
    """

    headline = "Cannot store artifact"

    def __init__(self, msg: str, *, artifact: str | None = None, step: str | None = None) -> None:
        super().__init__(msg)
        self.artifact = artifact
        self.step = step


class ReadOnlyArtifactError(ArtifactError, AttributeError):
    """A parameter, a class-level constant or `name` was assigned inside a step."""

    headline = "Read-only artifact"


class MergeArtifactsException(AioflowException):
    """`merge_artifacts()` was called where it cannot be, or with conflicting arguments."""

    headline = "Cannot merge artifacts"

    def __init__(self, msg: str, artifact_names: list[str] | None = None) -> None:
        super().__init__(msg)
        #: The artifacts in question (Metaflow's attribute name).
        self.artifact_names: list[str] = list(artifact_names or [])

    @property
    def names(self) -> list[str]:
        """The artifacts in question (same as `artifact_names`)."""
        return self.artifact_names


class UnhandledInMergeArtifactsException(MergeArtifactsException):
    """Incoming branches disagree on the value of some artifacts; none was merged."""

    headline = "Unhandled artifacts in merge"


class MissingInMergeArtifactsException(MergeArtifactsException):
    """Some names given in `include` exist neither on `self` nor on any input."""

    headline = "Missing artifacts in merge"


class StoreError(AioflowException):
    """The store (blobs and metadata) cannot be opened, written or read."""

    headline = "Store error"


class MetadataError(StoreError):
    """The metadata database is damaged, is not an aioflow store's, was written by a newer
    aioflow, or cannot be opened.

    `path` is the database file.
    """

    headline = "Metadata database error"

    def __init__(self, msg: str, path: str | Path | None = None) -> None:
        super().__init__(msg)
        self.path: Path | None = Path(path) if path is not None else None


class MetadataConnectionError(MetadataError):
    """A metadata database server (PostgreSQL) cannot be reached: refused, timed out, the
    user or password refused, no such database, or the connection was lost.

    `url` is the database's URL without its password.
    """

    headline = "Metadata database unreachable"

    def __init__(self, msg: str, url: str | None = None) -> None:
        super().__init__(msg)
        self.url = url


class BlobError(StoreError):
    """A blob of the store cannot be read.

    `key` is the blob's key; `artifact` and `pathspec` name the artifact and the task it was read
    for, when the reader knows them; `location` is where it was looked for (a file, or the
    database's blobs table).
    """

    headline = "Blob error"
    #: What is wrong with the blob, completing "Blob <key> at <location> ..."; a constructor
    #: argument may say it more precisely.
    problem = "cannot be read"
    #: What the user can do about it.
    advice = ""

    def __init__(
        self,
        key: str,
        *,
        location: str | Path | None = None,
        artifact: str | None = None,
        pathspec: str | None = None,
        problem: str | None = None,
    ) -> None:
        self.key = key
        self.location = str(location) if location is not None else None
        self.artifact = artifact
        self.pathspec = pathspec
        if problem is not None:
            self.problem = problem
        blob = f"Blob {key}"
        if artifact is not None:
            blob += f" (artifact '{artifact}'" + (f" of task {pathspec})" if pathspec else ")")
        elif pathspec is not None:
            blob += f" (of task {pathspec})"
        where = f" at {self.location}" if self.location is not None else ""
        super().__init__(f"{blob}{where} {self.problem}. {self.advice}".rstrip())

    def in_context(
        self: _Blob, *, artifact: str | None = None, pathspec: str | None = None
    ) -> _Blob:
        """The same error, naming the artifact and task it was read for (raise it `from` self)."""
        return type(self)(
            self.key,
            location=self.location,
            artifact=artifact if artifact is not None else self.artifact,
            pathspec=pathspec if pathspec is not None else self.pathspec,
            problem=self.problem,
        )


class BlobNotFound(BlobError, KeyError):
    """A blob named by the metadata is in neither the database nor the blob files.

    Also a KeyError, which is what reading an absent blob raised before it had a name.
    """

    headline = "Blob not found"
    problem = "is missing: the store was damaged or partly deleted"
    advice = "Runs that stored it must be re-run or resumed."

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class BlobCorrupted(BlobError):
    """A blob read from the store does not hash to its key, or is empty (the store was damaged)."""

    headline = "Corrupt blob"
    problem = "does not match its key: the store was damaged"
    advice = (
        "It cannot be read until the step that stored it runs again (re-run the flow, or resume "
        "it from that step): storing the same value again repairs the blob."
    )


CorruptBlobError = BlobCorrupted


class RunInProgress(StoreError):
    """A run asked to be deleted (`aioflow runs delete`) is being run, or resumed, by a
    process now."""

    headline = "Run in progress"


class StoreFull(StoreError):
    """The disk (or the quota) holding the store is full: something could not be stored.

    `what` says what could not be stored (an artifact, a task's rows), `artifact` and `step` name
    them when known, `location` is the file or folder that could not grow (or the database
    server, by its URL without the password), `hint` how to make room there. Raised as the
    task's failure, so @retry and @catch apply to it.
    """

    headline = "Store full"

    #: How to make room, when the store is a folder on a disk of this machine.
    LOCAL_HINT = "Free some space (or point AIOFLOW_ROOT at a larger disk)"

    def __init__(
        self,
        what: str,
        *,
        location: str | Path | None = None,
        artifact: str | None = None,
        step: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.location = str(location) if location is not None else None
        self.artifact = artifact
        self.step = step
        self.key = key
        self.hint = hint
        where = f" at {self.location}" if self.location is not None else ""
        super().__init__(
            f"Cannot store {what}{where}: no space left on the device. "
            f"{hint or self.LOCAL_HINT} and run or resume the flow again."
        )

    def naming(self, *, artifact: str, step: str) -> StoreFull:
        """The same error, naming the artifact and the step that set it."""
        return StoreFull(
            f"artifact '{artifact}' set in step *{step}*",
            location=self.location,
            artifact=artifact,
            step=step,
            key=self.key,
            hint=self.hint,
        )

    def storing(self, what: str) -> StoreFull:
        """The same error (same place, same hint), saying `what` could not be stored."""
        return StoreFull(what, location=self.location, key=self.key, hint=self.hint)


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


class ClusterError(AioflowException):
    """The Dask cluster a run was pointed at cannot run its flow: the scheduler cannot be
    reached, no worker joins, the workers' versions differ from this process's, they cannot
    reach the run's store, or no worker offers what a step's @resources ask for.

    Raised before any task of the run starts.
    """

    headline = "Dask cluster unusable"


class ParallelStepFailed(AioflowException):
    """Another task of this task's @parallel step failed, and the N tasks of a `num_parallel`
    split succeed or fail together (a gang, as Metaflow runs them): this task's attempt fails
    with it. `node` is the index of the task that failed."""

    headline = "@parallel step failed"

    def __init__(self, msg: str, node: int = 0) -> None:
        super().__init__(msg)
        self.node = node


class RemoteTaskError(AioflowException):
    """Stands in for a step's exception that could not be pickled back from its worker."""

    headline = "Task failed in a worker process"


class InvalidValue(ValueError):
    """A value cannot be converted to a parameter's type.

    The message says what is wrong with the value ("'x' is not a valid integer.") but not which
    parameter it was given to: `ParameterError`s built from it name the parameter, and the CLI
    lets click name the option.
    """


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


class FlowFailed(AioflowException):
    """A run did not finish successfully.

    `run` is the client `Run` (or None when nothing was stored), `pathspec` the failed task's
    pathspec, and `__cause__` the exception the step raised.
    """

    headline = "Flow failed"

    def __init__(self, msg: str, run: Run | None = None, pathspec: str | None = None) -> None:
        super().__init__(msg)
        self.run = run
        self.pathspec = pathspec


class WorkerGone(Exception):
    """Internal: the worker's end of its pipe closed, so its process ended (or is ending).

    `received` is False when the message cannot have reached the worker (it had ended before
    the message was written): whatever the message asked was not done. The process executor
    turns it into WorkerDied, saying how the process ended; users never see it.
    """

    def __init__(self, received: bool = True) -> None:
        super().__init__()
        self.received = received
