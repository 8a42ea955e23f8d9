"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def aioflow_command() -> list[str]:
    """The argv prefix that runs the `aioflow` console script of this interpreter's environment.

    The script beside `sys.executable` comes first, so the suite works in a virtualenv that was
    not activated; without a script (an install that skipped it), `python -m aioflow`.
    """
    beside = Path(sys.executable).with_name("aioflow")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("aioflow")
    return [found] if found else [sys.executable, "-m", "aioflow"]
