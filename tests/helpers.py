"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
import time
from pathlib import Path

import anyio


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


class Gate:
    """An event set from any thread, awaited on the loop or waited for in a worker thread.

    Made on the loop (it remembers the loop to wake); `timeout` bounds every wait, so a test
    whose other side never comes fails instead of hanging.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._async = anyio.Event()
        self._sync = threading.Event()
        self._timeout = timeout

    def set(self) -> None:
        self._sync.set()
        if threading.get_ident() == self._loop_thread:
            self._async.set()
        else:
            self._loop.call_soon_threadsafe(self._async.set)

    def is_set(self) -> bool:
        return self._sync.is_set()

    async def wait(self) -> None:
        with anyio.fail_after(self._timeout):
            await self._async.wait()

    def wait_sync(self) -> None:
        if not self._sync.wait(self._timeout):
            raise TimeoutError("gate never opened")


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the `aioflow` command in this process: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from aioflow.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def wait_for_marker(folder: str, name: str, timeout: float = 30.0) -> str:
    """Wait until marker file `name` (another process or thread writes it) exists in `folder`
    and return its text; TimeoutError at the deadline."""
    path = Path(folder) / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"marker {name!r} never appeared in {folder}")
        time.sleep(0.005)  # polling interval of the file, not a synchronisation delay
    return path.read_text()
