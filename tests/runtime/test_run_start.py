"""A run as it starts: what is stored before its first task, and resuming a run that never got
further (issue 13, item 1)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from aioflow import FlowSpec, Parameter, step
from aioflow.exceptions import ParameterError
from aioflow.runtime.config import RunConfig, run_config
from aioflow.runtime.runner import open_run, prepare, prepare_resume
from aioflow.store import Store
from aioflow.store.serde import unpack
from tests.helpers import aioflow_command


class ParamFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    # Longer than an identity key holds (store/keys.py): its blob is stored, so it can go missing.
    label = Parameter("label", default="a label of more than twenty-nine bytes")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


async def test_the_run_row_is_stored_with_its_parameters(aioflow_root: Path) -> None:
    config = RunConfig(root=aioflow_root)
    opened = await open_run(prepare(ParamFlow, {"alpha": 2.5}, config), config)
    try:
        # Another process looking now (or after a SIGKILL now) reads every parameter.
        store = Store(aioflow_root, create=False)
        try:
            packed = store.metadata.run_params(int(opened.run_id))
            assert packed is not None
            params = unpack(packed)
            assert store.load(params["alpha"]) == 2.5
            assert store.load(params["label"]) == "a label of more than twenty-nine bytes"
            assert store.load(params["name"]) == "ParamFlow"
        finally:
            store.close()
    finally:
        await opened.abandon()


def _delete_parameter_blob(root: Path, run_id: str, name: str) -> None:
    """What a run killed before its parameters were stored left behind (before the fix)."""
    store = Store(root, create=False)
    try:
        packed = store.metadata.run_params(int(run_id))
        assert packed is not None
        key = unpack(packed)[name]
    finally:
        store.close()
    with sqlite3.connect(root / "metadata.db") as conn:
        assert conn.execute("DELETE FROM blobs WHERE key = ?", (key,)).rowcount == 1
    conn.close()


@pytest.mark.parametrize("given", [None, "id"])
async def test_resuming_a_run_without_its_parameters_says_so(
    aioflow_root: Path, given: str | None
) -> None:
    config = RunConfig(root=aioflow_root)
    opened = await open_run(prepare(ParamFlow, {}, config), config)
    await opened.abandon()
    _delete_parameter_blob(aioflow_root, opened.run_id, "label")
    origin = opened.run_id if given == "id" else None
    with pytest.raises(ParameterError) as info:
        prepare_resume(ParamFlow, config, origin_run_id=origin, step=None)
    message = str(info.value)
    assert "\n" not in message
    assert f"ParamFlow/{opened.run_id}" in message and "'label'" in message
    assert ("--origin-run-id" in message) == (given is None)  # the default names a way out


def test_a_run_id_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="keyword argument 'run_id_file'"):
        run_config(run_id_file=str(tmp_path / "missing" / "run.txt"))
    assert run_config(run_id_file=str(tmp_path / "run.txt")).run_id_file


def test_the_cli_refuses_a_run_id_file_in_a_missing_folder_before_storing(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from aioflow import FlowSpec, step\n\n\n"
        "class TinyFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
    )
    root = tmp_path / "store"
    done = subprocess.run(
        [*aioflow_command(), "run", str(flow), "--run-id-file", "nowhere/run.txt"],
        cwd=tmp_path,
        env={"AIOFLOW_ROOT": str(root), "PATH": "/usr/bin:/bin", "USER": "tester"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--run-id-file" in done.stderr and "Traceback" not in done.stderr
    assert not (root / "metadata.db").exists()  # nothing stored
