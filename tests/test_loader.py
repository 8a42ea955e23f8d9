"""Tests of aioflow.loader: importing a flow file the way `aioflow run flow.py` needs it."""

from __future__ import annotations

import inspect
import pickle
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioflow.exceptions import FlowDefinitionError
from aioflow.flowspec import FlowSpec
from aioflow.loader import load_flow

pytestmark = pytest.mark.timeout(30)

FLOW = """
from aioflow import FlowSpec, step


class {name}(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture(autouse=True)
def _restore_import_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading flows adds folders to sys.path and modules to sys.modules: undo both."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write(folder: Path, filename: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(textwrap.dedent(source))
    return path


def flow_source(name: str) -> str:
    return FLOW.format(name=name)


# -- module naming ------------------------------------------------------------------------------


def test_module_is_named_after_the_file_and_registered(tmp_path: Path) -> None:
    stem = unique("myflow")
    path = write(tmp_path, f"{stem}.py", flow_source("NamedFlow"))

    cls = load_flow(path)

    assert cls.__name__ == "NamedFlow"
    assert issubclass(cls, FlowSpec)
    assert cls.__module__ == stem
    module = sys.modules[stem]
    assert module.NamedFlow is cls
    assert Path(module.__file__) == path.resolve()
    assert Path(inspect.getfile(cls)) == path.resolve()


def test_loaded_class_can_be_pickled_by_reference(tmp_path: Path) -> None:
    # Process executors and resume find the class again by module and name.
    path = write(tmp_path, f"{unique('pick')}.py", flow_source("PickledFlow"))
    cls = load_flow(path)
    assert pickle.loads(pickle.dumps(cls)) is cls


def test_file_name_that_is_not_an_identifier(tmp_path: Path) -> None:
    path = write(tmp_path, "my-flow.v2.py", flow_source("DashedFlow"))

    cls = load_flow(path)

    assert cls.__name__ == "DashedFlow"
    assert cls.__module__.isidentifier()
    assert sys.modules[cls.__module__].DashedFlow is cls
    assert pickle.loads(pickle.dumps(cls)) is cls


def test_two_files_with_the_same_name_in_different_folders(tmp_path: Path) -> None:
    stem = unique("twin")
    first = write(tmp_path / "one", f"{stem}.py", flow_source("FirstFlow"))
    second = write(tmp_path / "two", f"{stem}.py", flow_source("SecondFlow"))

    cls1 = load_flow(first)
    cls2 = load_flow(second)

    assert cls1.__name__ == "FirstFlow"
    assert cls2.__name__ == "SecondFlow"
    assert cls1.__module__ != cls2.__module__
    # The first module is still registered: its classes keep working.
    assert sys.modules[cls1.__module__].FirstFlow is cls1
    assert sys.modules[cls2.__module__].SecondFlow is cls2


def test_file_named_like_an_imported_module_does_not_replace_it(tmp_path: Path) -> None:
    import json

    path = write(tmp_path, "json.py", flow_source("ShadowFlow"))

    cls = load_flow(path)

    assert cls.__name__ == "ShadowFlow"
    assert sys.modules["json"] is json
    assert json.dumps([1]) == "[1]"


def test_loading_the_same_file_twice(tmp_path: Path) -> None:
    path = write(tmp_path, f"{unique('again')}.py", flow_source("AgainFlow"))
    first = load_flow(path)
    second = load_flow(path)
    assert first.__name__ == second.__name__ == "AgainFlow"
    assert first.__module__ == second.__module__
    assert sys.modules[second.__module__].AgainFlow is second


def test_relative_path_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stem = unique("rel")
    write(tmp_path / "sub", f"{stem}.py", flow_source("RelativeFlow"))
    monkeypatch.chdir(tmp_path)

    cls = load_flow(f"sub/{stem}.py")

    assert cls.__name__ == "RelativeFlow"
    assert Path(inspect.getfile(cls)) == (tmp_path / "sub" / f"{stem}.py").resolve()


# -- the flow file's folder is importable ----------------------------------------------------------


def test_flow_imports_a_sibling_module(tmp_path: Path) -> None:
    helper = unique("helpers")
    write(tmp_path, f"{helper}.py", "GREETING = 'hi from the sibling'\n")
    path = write(
        tmp_path,
        f"{unique('sib')}.py",
        f"""
        from aioflow import FlowSpec, step
        from {helper} import GREETING


        class SiblingFlow(FlowSpec):
            greeting = GREETING

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    assert str(tmp_path) not in sys.path

    cls = load_flow(path)

    assert cls.greeting == "hi from the sibling"
    assert sys.path[0] == str(tmp_path.resolve())


def test_flow_subclassing_a_flow_from_a_sibling_is_the_one_flow(tmp_path: Path) -> None:
    base = unique("baseflow")
    write(tmp_path, f"{base}.py", flow_source("BaseFlow"))
    path = write(
        tmp_path,
        f"{unique('child')}.py",
        f"""
        from {base} import BaseFlow


        class ChildFlow(BaseFlow):
            extra = 1
        """,
    )

    cls = load_flow(path)

    assert cls.__name__ == "ChildFlow"
    assert cls.__bases__[0].__name__ == "BaseFlow"


def test_file_that_only_imports_a_flow_defines_none(tmp_path: Path) -> None:
    base = unique("onlybase")
    write(tmp_path, f"{base}.py", flow_source("ImportedFlow"))
    path = write(tmp_path, f"{unique('importer')}.py", f"from {base} import ImportedFlow\n")

    with pytest.raises(FlowDefinitionError, match="defines no flow"):
        load_flow(path)


# -- the main guard ------------------------------------------------------------------------------


def test_main_guard_does_not_fire_on_load(tmp_path: Path) -> None:
    marker = tmp_path / "main-ran"
    path = write(
        tmp_path,
        f"{unique('guarded')}.py",
        f"""
        from pathlib import Path

        from aioflow import FlowSpec, step


        class GuardedFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            Path({str(marker)!r}).write_text("ran")
            GuardedFlow()
        """,
    )

    cls = load_flow(path)  # GuardedFlow() would parse pytest's argv and exit

    assert cls.__name__ == "GuardedFlow"
    assert not marker.exists()


# -- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FlowDefinitionError, match=r"nope\.py.*does not exist"):
        load_flow(tmp_path / "nope.py")


def test_folder_is_not_a_flow_file(tmp_path: Path) -> None:
    with pytest.raises(FlowDefinitionError, match="does not exist"):
        load_flow(tmp_path)


def test_file_without_a_flow(tmp_path: Path) -> None:
    path = write(tmp_path, f"{unique('empty')}.py", "from aioflow import FlowSpec\nx = 1\n")
    with pytest.raises(FlowDefinitionError, match="defines no flow") as info:
        load_flow(path)
    assert str(path.resolve()) in str(info.value)


def test_two_flows_in_one_file(tmp_path: Path) -> None:
    source = flow_source("AlphaFlow") + "\n\nclass BetaFlow(AlphaFlow):\n    pass\n"
    path = write(tmp_path, f"{unique('two')}.py", source)

    with pytest.raises(FlowDefinitionError, match="several flows") as info:
        load_flow(path)
    assert "AlphaFlow" in str(info.value) and "BetaFlow" in str(info.value)


def test_an_alias_of_the_flow_class_is_not_a_second_flow(tmp_path: Path) -> None:
    source = flow_source("OnlyFlow") + "\n\nAlias = OnlyFlow\n"
    path = write(tmp_path, f"{unique('alias')}.py", source)

    assert load_flow(path).__name__ == "OnlyFlow"


def test_flow_name_picks_one_of_several(tmp_path: Path) -> None:
    source = flow_source("AlphaFlow") + "\n\nclass BetaFlow(AlphaFlow):\n    pass\n"
    path = write(tmp_path, f"{unique('pick')}.py", source)

    assert load_flow(path, "BetaFlow").__name__ == "BetaFlow"
    with pytest.raises(FlowDefinitionError, match="no flow named 'GammaFlow'"):
        load_flow(path, "GammaFlow")


def test_import_error_is_reported_and_module_unregistered(tmp_path: Path) -> None:
    stem = unique("broken")
    path = write(tmp_path, f"{stem}.py", "import aioflow_no_such_module_xyz\n")

    with pytest.raises(FlowDefinitionError) as info:
        load_flow(path)

    message = str(info.value)
    assert str(path.resolve()) in message
    assert "ModuleNotFoundError" in message and "aioflow_no_such_module_xyz" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert stem not in sys.modules


def test_exception_raised_at_import_time(tmp_path: Path) -> None:
    path = write(tmp_path, f"{unique('raises')}.py", "raise RuntimeError('bad config')\n")
    with pytest.raises(FlowDefinitionError, match="RuntimeError: bad config"):
        load_flow(path)


def test_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"{unique('syntax')}.py", "def broken(:\n    pass\n")
    with pytest.raises(FlowDefinitionError, match="SyntaxError"):
        load_flow(path)


def test_not_a_python_file(tmp_path: Path) -> None:
    path = write(tmp_path, "flow.txt", flow_source("TextFlow"))
    with pytest.raises(FlowDefinitionError, match="not a Python file"):
        load_flow(path)


# -- import errors ------------------------------------------------------------------------------


def test_error_in_an_imported_module_shows_the_users_traceback(tmp_path: Path) -> None:
    helper = unique("helper")
    write(tmp_path, f"{helper}.py", 'settings = {}\nvalue = settings["missing"]\n')
    path = write(tmp_path, "broken_import.py", f"import {helper}\n")

    with pytest.raises(FlowDefinitionError) as info:
        load_flow(path)

    message = str(info.value)
    assert f'File "{path.resolve()}", line 1, in <module>' in message
    assert f'File "{tmp_path.resolve() / helper}.py", line 2, in <module>' in message
    assert 'value = settings["missing"]' in message
    assert message.rstrip().endswith("KeyError: 'missing'")
    # The import machinery and the loader are no part of the user's story.
    assert "importlib" not in message
    assert "loader.py" not in message


def test_syntax_error_shows_the_source_line_and_a_caret(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_syntax.py", "from aioflow import FlowSpec\nclass A(FlowSpec)\n")

    with pytest.raises(FlowDefinitionError) as info:
        load_flow(path)

    lines = str(info.value).splitlines()
    assert f'  File "{path.resolve()}", line 2' in lines
    source_at = lines.index("    class A(FlowSpec)")
    assert lines[source_at + 1].strip() == "^"
    assert lines[-1].startswith("SyntaxError:")
