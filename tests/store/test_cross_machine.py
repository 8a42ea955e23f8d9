"""Two machines, one store: a process in one folder runs a flow with its metadata in PostgreSQL
and its blobs in S3; another process, in another folder with nothing shared on disk, reads every
artifact back through the client. Both servers are real and on 127.0.0.1 (PostgreSQL from
initdb, moto's S3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import aioflow_command
from tests.s3_server import S3Server

FLOW = """
    from aioflow import FlowSpec, step


    class TeamFlow(FlowSpec):
        @step
        def start(self):
            self.big = bytes(range(256)) * 4096  # 1 MB: goes to S3
            self.names = ["ada", "bob"]
            self.next(self.greet, foreach="names")

        @step
        def greet(self):
            self.greeting = f"hello {self.input}"
            self.next(self.join)

        @step
        def join(self, inputs):
            self.greetings = sorted(i.greeting for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
"""

READER = """
    import json
    from aioflow.client import Flow

    run = Flow("TeamFlow").latest_run
    seen = {}
    for step in run:
        for task in step:
            for artifact in task:
                value = artifact.data
                seen[f"{step.id}/{task.id}/{artifact.id}"] = (
                    len(value) if isinstance(value, bytes) else value
                )
    print(json.dumps({"successful": run.successful, "seen": seen}))
"""


def test_one_machine_runs_another_reads_every_artifact(
    tmp_path: Path, postgres_url: str, s3_server: S3Server
) -> None:
    laptop, notebook = tmp_path / "laptop", tmp_path / "notebook"
    for folder in (laptop, notebook):
        folder.mkdir()
        (folder / ".git").mkdir()  # each its own project: no configuration is shared
    (laptop / "team_flow.py").write_text(textwrap.dedent(FLOW))
    (notebook / "read.py").write_text(textwrap.dedent(READER))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOFLOW_")}
    env.update(s3_server.env())
    env.update(
        AIOFLOW_METADATA=postgres_url,
        AIOFLOW_BLOBS=f"s3://{s3_server.bucket()}/team",
        AIOFLOW_USER="ada",
    )

    ran = subprocess.run(
        [*aioflow_command(), "run", "team_flow.py"],
        cwd=laptop, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    read = subprocess.run(
        [sys.executable, "read.py"],
        cwd=notebook, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    result = json.loads(read.stdout)
    assert result["successful"]
    seen = result["seen"]
    by_name = {key.split("/", 2)[2] + "@" + key.split("/")[0]: v for key, v in seen.items()}
    assert by_name["big@start"] == 256 * 4096
    assert by_name["greetings@join"] == ["hello ada", "hello bob"]
    assert sorted(v for k, v in seen.items() if k.startswith("greet/") and "greeting" in k) == [
        "hello ada",
        "hello bob",
    ]
    # nothing of the store is in either folder: it is the two servers (the flow file's bytecode
    # cache is Python's, written where PYTHONDONTWRITEBYTECODE is not set)
    assert sorted(p.name for p in laptop.iterdir() if p.name != "__pycache__") == [
        ".git",
        "team_flow.py",
    ]
    assert sorted(p.name for p in notebook.iterdir()) == [".git", "read.py"]
