"""A run report: one self-contained HTML file showing what a run did.

    aioflow report MyFlow/3 -o run.html
    run_flow(MyFlow, report="run.html")

    from aioflow.report import write_report
    write_report("MyFlow/3", "run.html")

The page shows the DAG (`dag_svg.py`), a timeline of every task (`timeline_svg.py`), per-step
statistics, the parameters, artifact previews, the failed tasks' logs and the run's cards
(`page.py`), from what `collect.py` reads through the client. It needs no network to open: its
style, script and charts are inline. This package is a front end: it reads the store through
the client only, and the live UI (`aioflow.ui`) renders its pages with it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..client import Run
from ..client.base import StoreRoot
from ..client.cards import run_cards
from ..exceptions import ParameterError
from .collect import RunView, collect
from .page import report_body, report_page

__all__ = [
    "RunView",
    "collect",
    "render_report",
    "report_body",
    "report_page",
    "report_target",
    "write_report",
]


def report_target(path: str | os.PathLike[str], given_as: str) -> Path:
    """`path` as the file a run's report goes to, checked before the run starts: its folder
    must exist and it must not be a folder (ParameterError naming `given_as` otherwise)."""
    target = Path(path)
    if target.is_dir():
        why = f"{target} is a folder; give the report's file name"
    elif not target.parent.is_dir():
        why = f"the folder {target.parent} of {target.name} does not exist"
    else:
        return target
    raise ParameterError(f"Invalid value for {given_as}: {why}.")


def _run(run: Run | str, root: StoreRoot | None) -> Run:
    return run if isinstance(run, Run) else Run(run, root=root, _namespace_check=False)


def render_report(run: Run | str, *, root: StoreRoot | None = None) -> str:
    """The report of `run` (a Run or its pathspec `Flow/run_id`) as one HTML page."""
    found = _run(run, root)
    view = collect(found)
    containers = run_cards(found) if view.cards else {}
    return report_page(view, card_html=lambda pathspec, n: containers[pathspec][n].html)


def write_report(
    run: Run | str, path: str | os.PathLike[str], *, root: StoreRoot | None = None
) -> Path:
    """Write the report of `run` to `path` (its folder must exist); returns the path."""
    target = Path(path)
    text = render_report(run, root=root)
    # Written whole, then renamed: a browser reloading the file never sees half a page.
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return target
