"""`aioflow runs [FLOW]` (alias `aioflow list`): the newest runs as a table with status, start
time, duration, user, origin and tags.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import anyio
import pytest

from aioflow import FlowFailed, FlowSpec, Parameter, resume_flow, step
from aioflow.cli.runs_table import HEADERS, format_duration
from aioflow.client.namespaces import _namespace
from aioflow.testing import run_in_temp_store
from tests.helpers import invoke

GATE: dict[str, anyio.Event] = {}


class ListedFlow(FlowSpec):
    fail = Parameter("fail", default=False)
    wait = Parameter("wait", default=False)

    @step
    async def start(self):
        if self.wait:
            GATE["entered"].set()
            await GATE["release"].wait()
        if self.fail:
            raise RuntimeError("asked to fail")
        self.next(self.end)

    @step
    def end(self):
        pass


class OtherFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture(autouse=True)
def _user(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    token = _namespace.set(None)
    yield
    _namespace.reset(token)


def table(out: str) -> list[dict[str, str]]:
    """The rows of the printed table, by header (cells are separated by 2+ spaces)."""
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == list(HEADERS)
    starts = [lines[0].index(h) for h in HEADERS]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(HEADERS, cells, strict=True)))
    return rows


async def test_runs_lists_the_newest_runs_with_their_state(
    aioflow_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = await run_in_temp_store(ListedFlow, aioflow_root, tags=["blue", "green"])
    with pytest.raises(FlowFailed):
        await run_in_temp_store(ListedFlow, aioflow_root, fail=True)
    monkeypatch.setenv("AIOFLOW_USER", "alice")
    await run_in_temp_store(OtherFlow, aioflow_root)
    monkeypatch.setenv("AIOFLOW_USER", "tester")
    resumed = await resume_flow(ListedFlow, root=aioflow_root, origin_run_id=ok.id, quiet=True)
    GATE.update(entered=anyio.Event(), release=anyio.Event())
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_in_temp_store(ListedFlow, aioflow_root, wait=True))
        with anyio.fail_after(10):
            await GATE["entered"].wait()
        code, out, err = await anyio.to_thread.run_sync(invoke, "runs")
        GATE["release"].set()
    assert code == 0, err
    rows = table(out)
    assert [r["RUN"] for r in rows] == [
        "ListedFlow/5", "ListedFlow/4", "OtherFlow/3", "ListedFlow/2", "ListedFlow/1",
    ]  # fmt: skip
    running, resumed_row, other, failed, first = rows
    assert running["STATUS"] == "running" and running["DURATION"].endswith("s+")
    assert resumed_row["STATUS"] == "succeeded" and resumed_row["ORIGIN"] == ok.id
    assert resumed.id == "4"
    assert other["USER"] == "alice" and first["USER"] == "tester"
    assert failed["STATUS"] == "failed" and failed["TAGS"] == "-"
    assert first["TAGS"] == "blue, green" and first["ORIGIN"] == "-"
    assert re.fullmatch(r"\d+\.\d\ds", first["DURATION"])
    started = datetime.strptime(first["STARTED"], "%Y-%m-%d %H:%M:%S")
    assert abs(started.timestamp() - ok.created_at.timestamp()) < 1.5

    code, out, _ = invoke("runs", "ListedFlow", "--limit", "2")
    assert [r["RUN"] for r in table(out)] == ["ListedFlow/5", "ListedFlow/4"]
    assert table(out)[0]["STATUS"] == "succeeded"  # it has finished since
    code, out, _ = invoke("list", "-n", "1")
    assert [r["RUN"] for r in table(out)] == ["ListedFlow/5"]
    code, out, _ = invoke("runs", "--namespace", "user:alice")
    assert [r["RUN"] for r in table(out)] == ["OtherFlow/3"]
    code, out, _ = invoke("runs", "ListedFlow", "--namespace", "blue")
    assert [r["RUN"] for r in table(out)] == ["ListedFlow/1"]


async def test_runs_when_there_are_none(aioflow_root: Path, tmp_path: Path) -> None:
    await run_in_temp_store(OtherFlow, aioflow_root)
    code, out, _ = invoke("runs", "--namespace", "no-such-tag")
    assert code == 0 and out == f"No runs in {aioflow_root}.\n"
    code, out, _ = invoke("runs", "OtherFlow", "--namespace", "user:nobody")
    assert code == 1  # the flow has no run in that namespace
    code, _, err = invoke("runs", "NoFlow")
    assert code == 1 and "Flow('NoFlow') does not exist" in err
    code, _, err = invoke("runs", "--root", str(tmp_path / "nowhere"))
    assert code == 1 and f"No aioflow store at {tmp_path / 'nowhere'}" in " ".join(err.split())
    code, _, err = invoke("runs", "--limit", "0")
    assert code == 2


def test_durations_are_short_and_readable() -> None:
    assert format_duration(0.4123) == "0.41s"
    assert format_duration(12.04) == "12.0s"
    assert format_duration(245) == "4m05s"
    assert format_duration(7380) == "2h03m"
