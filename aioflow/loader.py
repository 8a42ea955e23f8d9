"""Loading a flow class from a flow file, as `aioflow run flow.py` needs it.

The file is imported under its own stem (not as `__main__`, so its `MyFlow()` line does not
fire), with its folder on `sys.path` like a script's, and registered in `sys.modules` so the
classes it defines can be found by module and name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import TracebackType

from .exceptions import FlowDefinitionError
from .flowspec import FlowSpec
from .tracebacks import report, without_aioflow


def flow_classes(module: object, module_name: str) -> list[type[FlowSpec]]:
    """FlowSpec subclasses defined in a module (not imported into it), each once."""
    found = {
        obj: None  # a dict keeps definition order and counts an alias (`F = MyFlow`) once
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, FlowSpec)
        and obj is not FlowSpec
        and obj.__module__ == module_name
    }
    return list(found)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame that is not the import machinery's or this module's."""
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__
        or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")
    ):
        tb = tb.tb_next
    return tb


def user_traceback(exc: BaseException) -> str:
    """The traceback of an error raised importing a flow file, as `python flow.py` prints it.

    The frames of importlib and of aioflow (this loader, the import hook of `metaflow_imports`)
    are left out: they say nothing about the user's code. A SyntaxError keeps its file, line,
    source line and caret.
    """
    shown = without_aioflow(report(exc, _user_frames(exc.__traceback__)))
    return "".join(shown.format()).rstrip("\n")


def load_flow(
    path: str | Path, flow_name: str | None = None, *, metaflow_imports: bool = False
) -> type[FlowSpec]:
    """Import a flow file and return its flow class (the one named `flow_name`, if given).

    With `metaflow_imports`, a flow file written for Metaflow runs unmodified: its `metaflow`
    imports resolve to aioflow, for this file only (see `metaflow_imports.py`).
    """
    file = Path(path)
    if not file.is_file():
        raise FlowDefinitionError(f"Flow file {str(path)!r} does not exist.")
    file = file.resolve()
    module_name = file.stem if file.stem.isidentifier() else "aioflow_flow"
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) != str(
        file
    ):
        module_name = f"aioflow_flow_{abs(hash(str(file)))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise FlowDefinitionError(f"Cannot import {file}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    # Worker processes cannot import a flow file by name: its class travels by value.
    module.__aioflow_flow_file__ = True  # type: ignore[attr-defined]
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    aliases: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if metaflow_imports:  # imported then only: its import finder needs importlib.abc
        from .metaflow_imports import metaflow_aliases, metaflow_builtins

        aliases = metaflow_aliases()
        module.__builtins__ = metaflow_builtins()  # type: ignore[attr-defined]
    try:
        with aliases:
            spec.loader.exec_module(module)
    except SystemExit:
        raise
    except Exception as exc:
        del sys.modules[module_name]
        raise FlowDefinitionError(f"Importing {file} failed:\n{user_traceback(exc)}") from exc
    classes = flow_classes(module, module_name)
    if flow_name is not None:
        classes = [c for c in classes if c.__name__ == flow_name]
        if not classes:
            raise FlowDefinitionError(f"{file} defines no flow named {flow_name!r}.")
    if not classes:
        raise FlowDefinitionError(
            f"{file} defines no flow: add a class that subclasses aioflow.FlowSpec."
        )
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise FlowDefinitionError(
            f"{file} defines several flows ({names}): keep one flow per file."
        )
    return classes[0]
