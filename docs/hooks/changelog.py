"""The site's changelog page is CHANGELOG.md itself (an MkDocs hook).

`docs/changelog.md` holds a `<!-- changelog -->` marker, replaced at build time by the
repository's CHANGELOG.md without its title, so the changelog is kept in one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKER = "<!-- changelog -->"
CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: fill the changelog page's marker."""
    if MARKER not in markdown:
        return markdown
    body = CHANGELOG.read_text().split("\n", 1)[1]  # the page has its own title
    return markdown.replace(MARKER, body.strip())
