"""`aioflow report` and `aioflow ui`'s usage errors, run in this process."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from aioflow import run_flow_sync
from tests.helpers import invoke
from tests.report.flows import ReportFlow


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "store"
    run_flow_sync(ReportFlow, root=folder, quiet=True)
    return folder


def test_report_writes_one_self_contained_file(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "run.html"
    code, out, err = invoke("report", "ReportFlow/1", "-o", str(target), "--root", str(root))
    assert (code, out) == (0, "")
    assert err == f"Wrote the report of ReportFlow/1 to {target}\n"
    text = target.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'id="dag"' in text
    # Nothing is fetched: no address but the SVG namespace's (in the cards' JSON too).
    assert "https://" not in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ReportFlow"], 2, "names a run as Flow/RunID, not 'ReportFlow'."),
        (["ReportFlow/x"], 1, "Run('ReportFlow/x') does not exist"),
        (["ReportFlow/9"], 1, "Run('ReportFlow/9') does not exist"),
        (["ReportFlow/1", "-o", "/nonexistent-folder/run.html"], 2, "does not exist."),
    ],
)
def test_report_errors_are_one_line_each(
    root: Path, args: list[str], code: int, message: str
) -> None:
    found, _, err = invoke("report", *args, "--root", str(root))
    assert found == code, err
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_ui_without_its_extra_is_a_usage_error_naming_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "uvicorn" else real(name, *a),
    )
    code, _, err = invoke("ui", "--root", str(root))
    assert code == 2
    assert "aioflow ui needs uvicorn: pip install 'aioflow[ui]'" in err


def test_ui_on_a_port_that_is_taken_says_so(root: Path) -> None:
    from aioflow.ui.server import bind

    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        code, _, err = invoke("ui", "--root", str(root), "--port", str(port))
    finally:
        taken.close()
    assert code == 1
    assert f"Error: Cannot serve on 127.0.0.1:{port}: Address already in use" in err
