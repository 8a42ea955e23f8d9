"""The performance page shows the latest benchmark results (an MkDocs hook).

`benchmarks/README.md` holds the table `python -m benchmarks --peers --save` wrote last,
between `<!-- results:start -->` and `<!-- results:end -->`, and `benchmarks/results/scaling.png`
its plot. `docs/performance.md` names them with a `<!-- benchmark-results -->` marker and
`img/scaling.png`: the table is read from the README at build time and the plot is added to
the site's files, so the page can never show figures older than the README's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKER = "<!-- benchmark-results -->"
REPO = Path(__file__).resolve().parents[2]
README = REPO / "benchmarks" / "README.md"
PLOT = REPO / "benchmarks" / "results" / "scaling.png"
PLOT_URI = "img/scaling.png"


def results_block() -> str:
    """The fenced results block of benchmarks/README.md, as it is there."""
    text = README.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{README}: no {start} ... {end} block")
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: put the saved plot among the site's files, at `img/scaling.png`."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PLOT_URI, abs_src_path=str(PLOT)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: fill the performance page's marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, results_block())
