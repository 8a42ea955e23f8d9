"""`run_flow(..., report=...)` and `--report` write the report when the run ends, a failed
run's too; a report path that cannot be written is refused before the run starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioflow import run_flow
from aioflow.exceptions import FlowFailed, ParameterError
from tests.helpers import invoke
from tests.report.flows import FailingFlow, ReportFlow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "foreach.py"


async def test_run_flow_writes_the_report_at_the_end(tmp_path: Path) -> None:
    target = tmp_path / "run.html"
    run = await run_flow(ReportFlow, root=tmp_path / "store", quiet=True, report=target)
    text = target.read_text()
    assert f"<title>{run.pathspec} · aioflow report</title>" in text
    assert '<g class="dag-node caught" data-step="small"' in text


async def test_a_failed_run_has_its_report_too(tmp_path: Path) -> None:
    target = tmp_path / "failed.html"
    with pytest.raises(FlowFailed) as failed:
        await run_flow(FailingFlow, root=tmp_path / "store", quiet=True, report=target)
    text = target.read_text()
    assert failed.value.run is not None and failed.value.run.pathspec in text
    assert '<g class="dag-node failed" data-step="start"' in text
    assert "RuntimeError: no luck" in text


async def test_a_report_path_that_cannot_be_written_is_refused_first(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as refused:
        await run_flow(
            ReportFlow, root=tmp_path / "store", quiet=True, report=tmp_path / "no" / "r.html"
        )
    assert str(refused.value) == (
        "Invalid value for keyword argument 'report': the folder "
        f"{tmp_path / 'no'} of r.html does not exist."
    )
    assert not (tmp_path / "store").exists()


def test_the_report_option_of_run(tmp_path: Path) -> None:
    target = tmp_path / "run.html"
    root = str(tmp_path / "store")
    code, _, err = invoke("run", str(EXAMPLE), "--root", root, "--quiet", "--report", str(target))
    assert code == 0, err
    assert f"Wrote the report of ForeachFlow/1 to {target}" in err
    assert 'data-step="join"' in target.read_text()
    code, _, err = invoke("run", str(EXAMPLE), "--root", root, "--report", str(tmp_path))
    assert code == 2
    assert f"Invalid value for '--report': {tmp_path} is a folder" in err
