"""What a plain `import aioflow` loads, checked in a fresh interpreter.

The CLI's libraries (click, typer, rich) must not be needed to import aioflow: typer 0.26+ no
longer installs click. The runtime (asyncio, the process pool, cloudpickle) and the client's
store load on first use of the names that need them.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aioflow

NOT_LOADED_BY_IMPORT = (
    "click",
    "typer",
    "rich",
    "aioflow.cli",
    "asyncio",
    "anyio",
    "cloudpickle",
    "multiprocessing",
    "concurrent.futures.process",
    "sqlite3",
    "aioflow.runtime",
    "aioflow.store",
    "aioflow.client",
    "importlib.metadata",  # for @pypi/@conda's check only
)


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` are in sys.modules after running `code` in a fresh interpreter."""
    report = f"print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    probe = f"{code}\nimport json, sys\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_import_aioflow_loads_neither_the_cli_nor_the_runtime() -> None:
    assert loaded_after("import aioflow", NOT_LOADED_BY_IMPORT) == []


def test_defining_a_flow_loads_neither_the_cli_nor_the_runtime() -> None:
    flow = (
        "from aioflow import FlowSpec, IncludeFile, JSONType, Parameter, step\n"
        "class F(FlowSpec):\n"
        "    p = Parameter('p', type=JSONType, default={'a': 1})\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
    )
    assert loaded_after(flow, NOT_LOADED_BY_IMPORT) == []


def test_running_a_flow_loads_the_runtime_but_not_the_cli() -> None:
    loaded = loaded_after("from aioflow import run_flow", NOT_LOADED_BY_IMPORT)
    assert "asyncio" in loaded and "aioflow.runtime" in loaded
    assert not {"click", "typer", "rich", "aioflow.cli"} & set(loaded)


def test_a_run_without_process_or_dask_steps_or_a_report_loads_none_of_them(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from aioflow import FlowSpec, run_flow_sync, step\n"
        "from aioflow.store import Store\n"
        "class F(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
        "assert run_flow_sync(F, root=Store.memory(), quiet=True).successful\n"
    )
    process_and_dask = ("multiprocessing", "cloudpickle", "aioflow.runtime.process_worker",
                        "aioflow.runtime.executors.dask_executor",
                        "aioflow.report")  # nor the report's package, without report=  # fmt: skip
    loaded = loaded_after(f"import runpy; runpy.run_path({str(flow)!r})", process_and_dask)
    assert loaded == []


#: What `aioflow run flow.py --quiet` of a plain flow (no cards, no @transient, no report, no
#: --metaflow-imports, no object storage or metadata in memory, no configuration file, no
#: JSON parameter or config) must not load: typer and the client's commands serve the other
#: commands, the rest the features it does not use (a quiet run builds no event; getpass is
#: replaced by what it reads). Each costs the start of every run (issue 19).
NOT_LOADED_BY_A_PLAIN_RUN = (
    "aioflow.events",
    "json",
    "getpass",
    "typer",
    "rich",
    "aioflow.cli.typer_app",
    "aioflow.cli.client_commands",
    "aioflow.cli.card_commands",
    "aioflow.client",
    "aioflow.report",
    "aioflow.runtime.cards",
    "aioflow.card_components",
    "aioflow.card_html",
    "aioflow.metaflow_imports",
    "aioflow.store.objects",
    "aioflow.store.gc",
    "aioflow.store.memory",
    "tomllib",
    "tomli",
    "multiprocessing",
    "cloudpickle",
)


def test_the_console_scripts_module_loads_neither_click_nor_the_runtime() -> None:
    # `aioflow` runs `from aioflow.cli import main` before anything else.
    watched = ("click", "typer", "rich", "asyncio", "anyio", "aioflow.runtime", "aioflow.store")
    assert loaded_after("from aioflow.cli import main", watched) == []


def test_aioflow_run_of_a_plain_flow_loads_only_what_it_uses(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from aioflow import FlowSpec, step\n"
        "class PlainFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.x = 1\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
    )
    (tmp_path / ".git").mkdir()  # the search for aioflow.toml or pyproject.toml stops here
    # The console script's code, reporting what the process loaded when it exits.
    watched = (*NOT_LOADED_BY_A_PLAIN_RUN, "aioflow.runtime.runner", "anyio._backends._asyncio")
    script = (
        "import atexit, sys\n"  # (not json: the run must not need it)
        "from aioflow.cli import main\n"
        f"report = lambda: print(repr([m for m in {watched!r} if m in sys.modules]))\n"
        "atexit.register(report)\n"
        "sys.argv[0] = 'aioflow'\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "run", str(flow), "--quiet"],
        cwd=tmp_path,
        env={**os.environ, "AIOFLOW_ROOT": str(tmp_path / "store")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    loaded = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    # The run did run (the runtime and anyio's event loop were loaded), and nothing else.
    assert loaded == ["aioflow.runtime.runner", "anyio._backends._asyncio"]


@pytest.mark.parametrize("name", aioflow.__all__)
def test_every_public_name_can_be_imported_from_aioflow(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from aioflow import {name}", namespace)
    assert namespace[name] is getattr(aioflow, name)
    assert name in dir(aioflow)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'aioflow' has no attribute 'nope'"):
        aioflow.nope  # noqa: B018
