"""`from aioflow.cards import Markdown, Table, ..., get_cards`: Metaflow's `metaflow.cards`.

The components (`aioflow.card_components`) build what a step adds to its cards with
`current.card.append(...)`; `get_cards` (`aioflow.client.cards`) reads stored cards back. The
client is imported on first use of `get_cards`, so a step importing components loads no more
than it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from .card_components import (
    Artifact,
    Error,
    Image,
    JSONViewer,
    Markdown,
    MetaflowCardComponent,
    ProgressBar,
    PythonCode,
    Table,
    ValueBox,
    VegaChart,
)

if TYPE_CHECKING:
    from .client.cards import Card, CardContainer, get_cards, run_cards

_LAZY = dict.fromkeys(("Card", "CardContainer", "get_cards", "run_cards"), ".client.cards")


#: `get_cards` and the classes it returns, imported on first use.
__getattr__ = lazy_exports(__name__, _LAZY, "aioflow")


__all__ = [
    "Artifact",
    "Card",
    "CardContainer",
    "Error",
    "Image",
    "JSONViewer",
    "Markdown",
    "MetaflowCardComponent",
    "ProgressBar",
    "PythonCode",
    "Table",
    "ValueBox",
    "VegaChart",
    "get_cards",
    "run_cards",
]
