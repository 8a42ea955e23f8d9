"""The peers' virtualenv: Metaflow and Prefect, pinned, in a cache folder of their own.

`python -m benchmarks --peers` calls `ensure_venv()`, which creates `benchmarks/.cache/peers-venv`
with the project's Python and installs `peer-requirements.txt` into it. The project's own
environment is never touched: peers run as subprocesses of that venv's interpreter. A stamp file
holding the requirements' hash makes later calls free, and a changed pin reinstalls.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
VENV = CACHE / "peers-venv"
REQUIREMENTS = HERE / "peer-requirements.txt"
STAMP = VENV / "aioflow-bench-stamp"

#: The distribution that provides each peer tool.
DISTRIBUTIONS = {"metaflow": "metaflow", "prefect": "prefect"}


def venv_python(root: Path | None = None) -> Path:
    """The interpreter inside a virtualenv folder (the peers' by default)."""
    root = VENV if root is None else root
    if os.name == "nt":
        return root / "Scripts" / "python.exe"
    return root / "bin" / "python"


def _wanted_stamp() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    return f"{digest} {sys.version_info.major}.{sys.version_info.minor}"


def installed_python() -> Path | None:
    """The peers' interpreter if the venv is installed and up to date, else None."""
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == _wanted_stamp():
        return python
    return None


def ensure_venv(say: Callable[[str], None] = print) -> Path:
    """Create or update the peers' venv (pip needs the network once) and return its python."""
    python = installed_python()
    if python is not None:
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    say(f"Installing the peers ({REQUIREMENTS.name}) into {VENV} (once; a few minutes)...")
    venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    python = venv_python()
    log = CACHE / "peers-install.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"Installing the peers failed; see {log}")
    STAMP.write_text(_wanted_stamp() + "\n")
    return python


def versions(python: Path | str, tools: list[str]) -> dict[str, str]:
    """Installed version of each tool's distribution, as seen by `python`."""
    names = [DISTRIBUTIONS[t] for t in tools]
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\nfor n in sys.argv[1:]:\n"
        "    try:\n        out[n] = version(n)\n"
        "    except PackageNotFoundError:\n        out[n] = ''\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    return {tool: found[DISTRIBUTIONS[tool]] for tool in tools if found[DISTRIBUTIONS[tool]]}
