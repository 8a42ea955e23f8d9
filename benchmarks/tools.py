"""How each tool runs a workload: its command line, its environment, and where it keeps things.

Every tool gets a home folder of its own for the whole benchmark session, used as the child's
working directory and `$HOME`: aioflow's store (`$AIOFLOW_ROOT`), Metaflow's local datastore
(`.metaflow`, found from the working directory) and Prefect's database (`$PREFECT_HOME`, ephemeral
server mode, no API URL) all live there, so nothing leaks into the user's folders and the store's
growth can be measured. Settings of the outer environment that could redirect a tool are removed,
`PYTHON*` ones included (`PYTHONDONTWRITEBYTECODE` would make every run recompile its imports).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .cases import Case

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = HERE / "workloads"

TOOLS = ("aioflow", "metaflow", "prefect")
PEERS = ("metaflow", "prefect")
LABELS = {"aioflow": "aioflow", "metaflow": "Metaflow", "prefect": "Prefect"}

_CLEARED_PREFIXES = ("AIOFLOW_", "METAFLOW_", "PREFECT_", "BENCH_", "VIRTUAL_ENV", "PYTHON")


@dataclass(frozen=True)
class Tool:
    """One tool: its name, the interpreter it runs under, and its home for the session."""

    name: str
    python: str
    home: Path

    @property
    def label(self) -> str:
        """The tool's name as the table prints it."""
        return LABELS[self.name]

    def script(self, case: Case) -> Path:
        """The workload file for this tool."""
        return WORKLOADS / f"{case.workload}_{self.name}.py"

    def command(self, case: Case) -> list[str]:
        """The command line that runs `case` with this tool."""
        params = [f"--{name}={value}" for name, value in case.params.items()]
        script = str(self.script(case))
        if self.name == "prefect":
            return [self.python, script, *params]
        splits = ["--max-num-splits", str(max(100, case.tasks))]
        quiet = ["run", "--quiet"] if self.name == "aioflow" else ["--quiet", "run"]
        workers: list[str] = []
        if self.name == "aioflow" and case.workload == "async":
            workers = ["--max-workers", str(case.tasks)]  # every wait at once, on the loop
        return [self.python, script, *quiet, *splits, *workers, *params]

    def environment(self, notes: Path) -> dict[str, str]:
        """The child's environment: the outer one minus tool settings, plus this tool's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED_PREFIXES)}
        env.update(HOME=str(self.home), USER="bench", USERNAME="bench", BENCH_NOTES=str(notes))
        if self.name == "aioflow":
            env["AIOFLOW_ROOT"] = str(self.home / ".aioflow")
            env["PYTHONPATH"] = str(ROOT)  # the checkout's aioflow, installed or not
        elif self.name == "metaflow":
            env["METAFLOW_DEFAULT_DATASTORE"] = "local"
            env["METAFLOW_DEFAULT_METADATA"] = "local"
        else:
            env["PREFECT_HOME"] = str(self.home / ".prefect")
            env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        return env


def make_tools(names: list[str], peer_python: str | None, session: Path) -> list[Tool]:
    """The tools to run, aioflow on the project's interpreter and peers on the venv's."""
    tools = []
    for name in names:
        python = sys.executable if name == "aioflow" else peer_python
        if python is None:
            raise ValueError(f"{name} needs the peers' venv (--peers)")
        home = session / name
        home.mkdir(parents=True, exist_ok=True)
        tools.append(Tool(name, python, home))
    return tools
