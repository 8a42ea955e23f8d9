"""The exception tree: one module defines every class, its docstring draws the tree as it is,
attributes are typed for users' type checkers, and messages say what to do."""

from __future__ import annotations

import ast
import builtins
import pickle
import re
import textwrap
from pathlib import Path

import pytest

import aioflow
from aioflow import exceptions
from aioflow.exceptions import (
    AioflowException,
    BlobCorrupted,
    BlobError,
    BlobNotFound,
    FlowFailed,
    InternalError,
    LintError,
    MetadataError,
    MissingInMergeArtifactsException,
    StoreError,
    UnhandledInMergeArtifactsException,
)
from aioflow.store.blobs import FileBlobStore
from aioflow.store.serde import encode

PACKAGE = Path(aioflow.__file__).parent

# -- the tree ------------------------------------------------------------------------------------


def _drawn_tree() -> dict[str, str | None]:
    """Each class drawn in exceptions.py's docstring, mapped to the class drawn as its parent."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []  # the chain of classes above the current line, by depth
    for line in (exceptions.__doc__ or "").splitlines():
        drawn = re.match(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?([A-Z]\w+)(?=\s|$)", line)
        if drawn is None:
            continue
        prefix, name = drawn.groups()
        depth = len(prefix) // 4 + (1 if line[4 + len(prefix)] in "├└" else 0)
        del stack[depth:]
        parents[name] = stack[-1] if stack else None
        stack.append(name)
    return parents


def test_the_docstring_draws_every_class_under_its_real_base() -> None:
    drawn = _drawn_tree()
    defined = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == exceptions.__name__
        and value.__name__ == name  # not an alias
        and not name.startswith("_")
    }
    assert defined <= set(drawn), f"not drawn: {sorted(defined - set(drawn))}"
    for name in defined:
        parent = drawn[name] or "Exception"  # the left edge
        assert getattr(exceptions, name).__bases__[0] is _class(parent), name


def _class(name: str) -> type:
    value = getattr(exceptions, name, None) or getattr(builtins, name)
    assert isinstance(value, type)
    return value


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (exceptions.InternalError, AioflowException),
        (exceptions.WorkerDied, AioflowException),
        (exceptions.WorkerSetupError, AioflowException),
        (exceptions.RemoteTaskError, AioflowException),
        (exceptions.TaggingError, exceptions.ClientError),
        (exceptions.MetadataError, StoreError),
        (exceptions.BlobError, StoreError),
        (exceptions.BlobNotFound, BlobError),
        (exceptions.BlobNotFound, KeyError),
        (exceptions.BlobCorrupted, BlobError),
        (exceptions.InvalidValue, ValueError),
    ],
)
def test_moved_and_new_classes_sit_where_the_tree_says(cls: type, base: type) -> None:
    assert issubclass(cls, base)


def test_metaflow_names_are_aliases_of_aioflow_classes() -> None:
    assert exceptions.MetaflowException is AioflowException
    assert exceptions.MetaflowTaggingError is exceptions.TaggingError
    assert exceptions.InvalidNextException is exceptions.TransitionError
    assert exceptions.MetaflowExceptionWrapper is exceptions.ExceptionWrapper
    assert exceptions.CorruptBlobError is BlobCorrupted


def test_the_unraised_task_failed_exception_is_gone() -> None:
    # events.TaskFailed is the one TaskFailed: the event of a failed task attempt.
    assert not hasattr(exceptions, "TaskFailed")


def test_the_root_exports_the_same_classes() -> None:
    for name in (
        "InternalError",
        "BlobError",
        "BlobNotFound",
        "BlobCorrupted",
        "MetadataError",
        "WorkerDied",
        "TaggingError",
        "MetaflowTaggingError",
        "StoreError",
        "FlowFailed",
    ):
        assert getattr(aioflow, name) is getattr(exceptions, name)


# -- one module defines them all ------------------------------------------------------------------


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def test_every_exception_class_of_the_package_is_defined_in_exceptions_py() -> None:
    known = {
        name
        for name, value in {**vars(builtins), **vars(exceptions)}.items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    classes = [
        (path, node)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "exceptions.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    ]
    assert len(classes) > 20  # the walk did find the package's classes
    elsewhere: list[str] = []
    grew = True
    while grew:  # a subclass of a class defined elsewhere is an exception class too
        grew = False
        for path, node in classes:
            if node.name not in known and _base_names(node) & known:
                known.add(node.name)
                elsewhere.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
                grew = True
    assert elsewhere == [], "define these in aioflow/exceptions.py"


# -- typed attributes ------------------------------------------------------------------------------

USER_SCRIPT = """
    from __future__ import annotations

    import aioflow
    from aioflow import BlobNotFound, FlowFailed, UnhandledInMergeArtifactsException
    from aioflow.exceptions import LintError

    def report(
        failed: FlowFailed, merge: UnhandledInMergeArtifactsException, blob: BlobNotFound,
        lint: LintError,
    ) -> None:
        run: aioflow.Run | None = failed.run
        pathspec: str | None = failed.pathspec
        names: list[str] = merge.names
        artifact_names: list[str] = merge.artifact_names
        key: str = blob.key
        artifact: str | None = blob.artifact
        task: str | None = blob.pathspec
        location: str | None = blob.location
        line: int | None = lint.line
        print(run, pathspec, names, artifact_names, key, artifact, task, location, line)
"""


def _mypy(script: str, tmp_path: Path) -> tuple[str, int]:
    api = pytest.importorskip("mypy.api")
    path = tmp_path / "user_script.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--python-version",
            "3.10",
            str(path),
        ]
    )
    return stdout + stderr, status


def test_a_users_type_checker_sees_the_typed_attributes(tmp_path: Path) -> None:
    output, status = _mypy(USER_SCRIPT, tmp_path)
    assert (output, status) == ("", 0)


def test_a_users_type_checker_still_reports_an_attribute_that_does_not_exist(
    tmp_path: Path,
) -> None:
    output, status = _mypy(
        USER_SCRIPT + "\n    def oops(f: FlowFailed) -> object:\n        return f.runn\n", tmp_path
    )
    assert status == 1
    assert '"FlowFailed" has no attribute "runn"' in output


def test_flow_failed_keeps_its_keyword_constructor() -> None:
    exc = FlowFailed("Run F/1 failed", run=None, pathspec="F/1/start/1")
    assert (exc.run, exc.pathspec, str(exc)) == (None, "F/1/start/1", "Run F/1 failed")
    assert FlowFailed("Run F/1 was cancelled.").pathspec is None


def test_merge_errors_name_the_artifacts() -> None:
    exc = UnhandledInMergeArtifactsException("conflict", ["x", "y"])
    assert exc.names == exc.artifact_names == ["x", "y"]
    assert MissingInMergeArtifactsException("missing").names == []


# -- messages --------------------------------------------------------------------------------------


def test_internal_error_says_it_is_a_bug_and_how_to_report_it() -> None:
    exc = InternalError("Step *a* leads to join *j* outside of any split.")
    first, advice = str(exc).split("\n")
    assert first == "Step *a* leads to join *j* outside of any split."
    assert exc.detail == first
    assert "bug in aioflow" in advice
    assert "open an issue" in advice and "traceback" in advice


def test_a_missing_blob_names_the_artifact_task_and_file() -> None:
    exc = BlobNotFound("e186" * 10, location="/s/blobs/e1/86", artifact="x", pathspec="F/1/a/2")
    assert isinstance(exc, KeyError)
    assert str(exc) == (
        f"Blob {'e186' * 10} (artifact 'x' of task F/1/a/2) at /s/blobs/e1/86 is missing: the "
        "store was damaged or partly deleted. Runs that stored it must be re-run or resumed."
    )


def test_a_blob_error_gains_its_artifact_and_task_at_the_seam() -> None:
    low = BlobCorrupted("ab" * 20, location="/s/blobs/ab/x", problem="is empty: it was cut")
    named = low.in_context(artifact="df", pathspec="F/3/train/9")
    assert type(named) is BlobCorrupted
    assert (named.key, named.location, named.artifact, named.pathspec) == (
        "ab" * 20,
        "/s/blobs/ab/x",
        "df",
        "F/3/train/9",
    )
    assert f"Blob {'ab' * 20} (artifact 'df' of task F/3/train/9) at /s/blobs/ab/x is empty" in str(
        named
    )


def test_a_corrupt_blob_file_raises_blob_corrupted_with_its_attributes(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    encoded = encode(list(range(40)))  # a stored blob (over an identity key's 29 bytes)
    store.put(encoded.key, encoded.chunks)
    path = store.path(encoded.key)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(BlobCorrupted) as info:
        store.get(encoded.key)
    assert isinstance(info.value, StoreError)
    assert (info.value.key, info.value.location) == (encoded.key, str(path))


def test_metadata_error_carries_the_database_path() -> None:
    exc = MetadataError("metadata.db is not a database", path="/s/metadata.db")
    assert exc.path == Path("/s/metadata.db")


@pytest.mark.parametrize(
    "exc",
    [
        LintError("no start step", step="start", file="flow.py", line=3),
        BlobNotFound("cd" * 20, location="memory", artifact="x"),
        BlobCorrupted("cd" * 20, location="memory", problem="is empty: the store was damaged"),
        UnhandledInMergeArtifactsException("conflict", ["x"]),
        FlowFailed("Run F/1 failed", pathspec="F/1/a/1"),
        InternalError("broken"),
        MetadataError("damaged", path="/s/metadata.db"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_exceptions_cross_processes_unchanged(exc: AioflowException) -> None:
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert str(copy) == str(exc)
    assert copy.args == exc.args
    assert vars(copy) == vars(exc)
