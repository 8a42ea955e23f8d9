"""examples/notebook.ipynb, executed through a real Jupyter kernel (nbclient + ipykernel).

The notebook defines flows in cells and awaits them at the top level of cells, on the kernel's
own running event loop; one step runs in a worker process, so its class must travel by value.
The test checks each cell's outputs, then reads the runs back from the store with the client.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from aioflow import Flow

pytestmark = pytest.mark.timeout(120)

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"


def text_of(cell: nbformat.NotebookNode) -> str:
    """Everything a cell printed, and its result's text."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "execute_result":
            parts.append(output.data["text/plain"] + "\n")
        elif output.output_type == "error":
            raise AssertionError(f"{output.ename}: {output.evalue}")
    return "".join(parts)


def test_the_notebook_runs_through_a_real_kernel(tmp_path: Path, aioflow_root: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    client.execute()  # raises CellExecutionError if a cell fails
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    define, run, read, process, events = code

    assert text_of(define) == ""

    # The run shows one output, updated in place as it goes (a plain display, no widget) and
    # ending as the run's summary, and under it the lines its steps print: no task lines.
    (shown,) = [output for output in run.outputs if output.output_type == "display_data"]
    summary = shown.data["text/plain"].splitlines()
    assert re.fullmatch(r"Run NotebookFlow/1 succeeded in \d+\.\d s\.", summary[0]), summary
    assert summary[1:] == [
        "    Tasks: 7 succeeded.",
        summary[2],
        "    Read it: Run('NotebookFlow/1'), or aioflow runs NotebookFlow",
    ]
    assert re.fullmatch(r"    Slowest step: \w+, \d+\.\d s for \d tasks?\.", summary[2]), summary
    assert text_of(run) == "[1/end/7] total of squares: 30\n"
    for other in (define, read, process, events):
        assert "Task is starting" not in text_of(other)

    assert text_of(read) == "NotebookFlow/1 True\n30\n"
    assert text_of(process) == "[1135, 2568] True\n"  # crunched in worker processes
    assert text_of(events) == "RunStarted RunFinished 6 14\n"

    # What the kernel stored, read back from this process.
    runs = {run.id: run for run in Flow("NotebookFlow")}
    assert sorted(runs) == ["1", "3"]
    assert runs["1"].successful and runs["1"].data.total == 30
    assert runs["3"].data.total == 14
    crunched = next(iter(Flow("ProcessFlow")))
    assert crunched.successful
    assert sorted(t.data.digits for t in crunched["crunch"]) == [1135, 2568]
    assert not (tmp_path / ".aioflow").exists()  # AIOFLOW_ROOT reached the kernel
    assert (aioflow_root / "metadata.db").exists()
