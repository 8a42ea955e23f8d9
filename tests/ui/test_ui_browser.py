"""The live UI in a real browser: the page of a run in progress, run by another process,
updates by itself when the run's waiting task finishes.

The run waits in a step reading a FIFO (its gate); the test's opening the FIFO for writing
returns once that step is reading it, so the run is known to be in progress without polling;
writing and closing it lets the step finish. The UI is `aioflow ui --port 0` in its own
process; the page is waited on with bounded Playwright waits, never sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tests.browser import artifacts_folder, browser_page
from tests.helpers import aioflow_command

GATED_FLOW = Path(__file__).with_name("gated_flow.py")


@contextmanager
def _process(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate()


def _ui_address(proc: subprocess.Popen[str]) -> str:
    """The address `aioflow ui` announced on its first line (its stderr)."""
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert " at http://127.0.0.1:" in line, line
    return line.split(" at ", 1)[1].split()[0]


def test_the_page_of_a_running_run_updates_when_its_task_finishes(tmp_path: Path) -> None:
    root, gate = tmp_path / "store", tmp_path / "gate"
    os.mkfifo(gate)
    env = {**os.environ, "AIOFLOW_TEST_GATE": str(gate)}
    run_argv = [sys.executable, str(GATED_FLOW), "run", "--root", str(root), "--quiet"]
    with _process(run_argv, tmp_path, env) as run, ThreadPoolExecutor(1) as pool:
        # Returns when the `wait` step has opened the gate to read it: the run is under way.
        writer = pool.submit(os.open, gate, os.O_WRONLY)
        try:
            fd = writer.result(timeout=60)
        except BaseException:
            os.close(os.open(gate, os.O_RDONLY | os.O_NONBLOCK))  # frees the pending open
            raise
        ui_argv = [*aioflow_command(), "ui", "--root", str(root), "--port", "0"]
        with (
            _process(ui_argv, tmp_path, env) as ui,
            browser_page(tmp_path / "profile") as (
                page,
                errors,
            ),
        ):
            address = _ui_address(ui)
            page.goto(address, wait_until="load")
            page.locator('#runs tr.run-row[data-run="GatedFlow/1"] a').click()
            page.wait_for_selector("#run-status.running", timeout=30_000)
            assert page.locator('.dag-node.succeeded[data-step="end"]').count() == 0
            page.screenshot(path=str(artifacts_folder(tmp_path) / "ui-running.png"))
            # Let the step finish: the page follows without being reloaded.
            with os.fdopen(fd, "w") as release:
                release.write("go")
            page.wait_for_selector("#run-status.succeeded", timeout=60_000)
            page.wait_for_selector('.dag-node.succeeded[data-step="wait"]', timeout=10_000)
            assert page.locator('.dag-node.succeeded[data-step="end"]').count() == 1
            page.screenshot(path=str(artifacts_folder(tmp_path) / "ui-finished.png"))
            assert errors == []
        assert run.wait(timeout=60) == 0
