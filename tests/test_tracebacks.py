"""Tests of aioflow.tracebacks: an error is formatted even where Python's formatting fails.

Python 3.15 raises formatting a ModuleNotFoundError whose module's parent cannot be imported
(python/cpython#151631): the tests cause that error for real, which fails there without
aioflow's fallback, and also stand in for 3.15's failure on every Python, so that the fallback
is exercised wherever the suite runs.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from aioflow import FlowFailed, FlowSpec, Parameter, run_flow, step, tracebacks
from aioflow.exceptions import FlowDefinitionError
from aioflow.loader import load_flow
from aioflow.store import Store
from aioflow.tracebacks import format_exception, format_exception_only


class Python315(traceback.TracebackException):
    """`traceback.TracebackException` failing as Python 3.15's does, on any Python: a
    ModuleNotFoundError naming a module (whose parent is hidden) cannot be formatted
    (python/cpython#151631). Set it as `traceback.TracebackException`: chained exceptions are
    formatted through that name too."""

    def __init__(self, exc_type: Any, exc_value: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(exc_value, ModuleNotFoundError) and exc_value.name:
            raise ModuleNotFoundError("No module named 'blocked_pkg'", name="blocked_pkg")
        super().__init__(exc_type, exc_value, *args, **kwargs)


def blocked_import() -> ModuleNotFoundError:
    """The error of `import blocked_pkg.sub` with `blocked_pkg` hidden (None in sys.modules)."""
    try:
        import blocked_pkg.sub  # type: ignore[import-not-found]  # noqa: F401
    except ModuleNotFoundError as exc:
        return exc
    raise AssertionError("the import did not fail")


@pytest.fixture
def hidden_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "blocked_pkg", None)


@pytest.fixture
def python_315(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chained exceptions are formatted by the same global name, so they fail the same way.
    monkeypatch.setattr(traceback, "TracebackException", Python315)


@pytest.mark.usefixtures("hidden_package")
def test_a_module_error_whose_parent_is_hidden_is_formatted() -> None:
    exc = blocked_import()
    text = format_exception(exc)
    assert text.startswith("Traceback (most recent call last):\n")
    assert "import blocked_pkg.sub" in text
    assert text.rstrip().endswith(f"ModuleNotFoundError: {exc}")
    assert exc.name == "blocked_pkg.sub"  # as it was


@pytest.mark.usefixtures("hidden_package", "python_315")
def test_where_formatting_fails_the_module_names_are_hidden_while_it_is_made() -> None:
    exc = blocked_import()
    with pytest.raises(ModuleNotFoundError):
        traceback.format_exception(exc)  # what the stand-in does, as 3.15 does
    assert format_exception_only(exc) == f"ModuleNotFoundError: {exc}\n"
    report = tracebacks.report(exc, exc.__traceback__)
    assert "import blocked_pkg.sub" in "".join(report.format())
    assert exc.name == "blocked_pkg.sub"  # put back


@pytest.mark.usefixtures("hidden_package", "python_315")
def test_a_module_error_behind_another_is_formatted_with_it() -> None:
    try:
        try:
            import blocked_pkg.sub  # type: ignore[import-not-found]  # noqa: F401
        except ModuleNotFoundError as exc:
            raise RuntimeError("the plugin is missing") from exc
    except RuntimeError as outer:
        text = format_exception(outer)
        cause = outer.__cause__
    assert isinstance(cause, ModuleNotFoundError) and cause.name == "blocked_pkg.sub"
    assert f"ModuleNotFoundError: {cause}\n\nThe above exception was the direct cause" in text
    assert text.rstrip().endswith("RuntimeError: the plugin is missing")


def test_a_failure_to_format_anything_else_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(traceback.TracebackException):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise LookupError("formatting broke")

    monkeypatch.setattr(traceback, "TracebackException", Broken)
    with pytest.raises(LookupError, match="formatting broke"):
        format_exception_only(ValueError("plain"))


class HiddenPackageFlow(FlowSpec):
    """A step that imports a module of a package hidden as tests hide one."""

    is_async = Parameter("is_async", default=False, type=bool)

    @step
    def start(self):
        self.next(self.sync_import, self.async_import)

    @step
    def sync_import(self):
        if not self.is_async:
            import blocked_pkg.sub  # noqa: F401
        self.next(self.join)

    @step
    async def async_import(self):
        if self.is_async:
            import blocked_pkg.sub  # noqa: F401
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.mark.usefixtures("hidden_package")
@pytest.mark.parametrize("stand_in", [False, True], ids=["this-python", "python-3.15"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_step_failing_so_is_reported_as_its_own_failure(
    is_async: bool, stand_in: bool, request: pytest.FixtureRequest
) -> None:
    if stand_in:
        request.getfixturevalue("python_315")
    with pytest.raises(FlowFailed) as info:
        await run_flow(HiddenPackageFlow, root=Store.memory(), quiet=True, is_async=is_async)
    failed = info.value.run["async_import" if is_async else "sync_import"].task
    assert failed.exception.type == "builtins.ModuleNotFoundError"
    trace = failed.exception.stacktrace
    assert "import blocked_pkg.sub" in trace
    assert trace.rstrip().endswith(f"ModuleNotFoundError: {failed.exception.message}")


@pytest.mark.usefixtures("hidden_package")
@pytest.mark.parametrize("stand_in", [False, True], ids=["this-python", "python-3.15"])
def test_a_flow_file_failing_so_is_a_flow_definition_error(
    stand_in: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if stand_in:
        request.getfixturevalue("python_315")
    path = tmp_path / "hidden_flow.py"
    path.write_text("import blocked_pkg.sub\n")
    with pytest.raises(FlowDefinitionError) as info:
        load_flow(path)
    expected = "line 1, in <module>\n    import blocked_pkg.sub\nModuleNotFoundError: "
    assert expected in str(info.value)
