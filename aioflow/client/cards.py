"""Reading stored cards: `get_cards(task_or_pathspec, id=, type=)`, as Metaflow's.

    from aioflow.cards import get_cards
    cards = get_cards("MyFlow/3/train/2")        # or get_cards(Task(...))
    cards[0].html, cards[0].id, cards[0].type
    get_cards(task, id="report").get()           # the HTML of the first match

The cards are those of the task's latest attempt that stored any. A task of a running run
already shows what its `current.card.refresh()` stored; a task a resumed run cloned shows its
origin's cards. `run_cards` reads every task's cards of a run at once (for a run report).
Card HTML is plain text in the store: reading it runs no code, whatever the store holds.
"""

from __future__ import annotations

import html as html_module
import tempfile
import webbrowser
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, overload

from ..exceptions import InvalidPathspec, MetaflowNotFound
from ..store import Store
from ..store.protocols import CardRecord
from .base import StoreRoot, _id_number, _time, shared_store
from .tasks import Task


class Card:
    """One stored card: `id`, `type`, `html` (`get()`), `view()`, shown inline in a notebook."""

    def __init__(self, store: Store, record: CardRecord, pathspec: str) -> None:
        self._store = store
        self._record = record
        #: The task's pathspec.
        self.pathspec = pathspec
        self._html: str | None = None

    @property
    def id(self) -> str | None:
        """The card's id (`@card(id=...)`), None when it has none."""
        return self._record.card_id

    @property
    def type(self) -> str:
        """The card's type: default or blank."""
        return self._record.card_type

    @property
    def hash(self) -> str:
        """The blob key of the card's HTML (it changes with its content)."""
        return self._record.key

    @property
    def attempt(self) -> int:
        """The task attempt the card belongs to."""
        return self._record.attempt

    @property
    def updated_at(self) -> datetime | None:
        """When this version of the card was stored."""
        return _time(self._record.updated_at)

    @property
    def html(self) -> str:
        """The card's HTML page (read from the store once)."""
        if self._html is None:
            value = self._store.load_plain(self._record.key, pathspec=self.pathspec)
            self._html = value if isinstance(value, str) else str(value)
        return self._html

    def get(self) -> str:
        """The card's HTML page."""
        return self.html

    def write(self, path: str | Path) -> Path:
        """Write the card's HTML to `path`; returns it."""
        target = Path(path)
        target.write_text(self.html, encoding="utf-8")
        return target

    def view(self) -> Path:
        """Open the card in the web browser (written to a temporary file first); the file."""
        name = f"aioflow-card-{self.pathspec.replace('/', '-')}-{self.id or self.type}-"
        with tempfile.NamedTemporaryFile("w", suffix=".html", prefix=name, delete=False) as f:
            f.write(self.html)
        webbrowser.open(Path(f.name).as_uri())
        return Path(f.name)

    def _repr_html_(self) -> str:
        # An iframe keeps the card's own CSS from restyling the notebook around it.
        return (
            f'<iframe srcdoc="{html_module.escape(self.html, quote=True)}" '
            'style="width:100%;height:600px;border:1px solid #d0d7de"></iframe>'
        )

    def __repr__(self) -> str:
        return f"Card(pathspec='{self.pathspec}', type='{self.type}', id={self.id!r})"


class CardContainer(Sequence[Card]):
    """The cards `get_cards` found, in the order of their step's @card decorators."""

    def __init__(self, cards: list[Card]) -> None:
        self._cards = cards

    @overload
    def __getitem__(self, index: int) -> Card: ...

    @overload
    def __getitem__(self, index: slice) -> list[Card]: ...

    def __getitem__(self, index: Any) -> Any:
        return self._cards[index]

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[Card]:
        return iter(self._cards)

    def get(self) -> str | None:
        """The first card's HTML, or None when there is none."""
        return self._cards[0].html if self._cards else None

    def _repr_html_(self) -> str:
        return "".join(card._repr_html_() for card in self._cards)

    def __repr__(self) -> str:
        return f"CardContainer({self._cards!r})"


def _latest(records: list[CardRecord]) -> list[CardRecord]:
    """The records of the latest attempt among them."""
    if not records:
        return []
    attempt = max(r.attempt for r in records)
    return [r for r in records if r.attempt == attempt]


def _parse_task(pathspec: str) -> tuple[str, int, str, int]:
    parts = pathspec.split("/")
    numbers = [_id_number(parts[1]), _id_number(parts[3])] if len(parts) == 4 else []
    if len(parts) != 4 or not all(parts) or None in numbers:
        raise InvalidPathspec(
            f"get_cards takes a Task or a task pathspec Flow/run_id/step/task_id, not {pathspec!r}"
        )
    return parts[0], int(parts[1]), parts[2], int(parts[3])


def _select(cards: list[Card], card_id: str | None, card_type: str | None) -> CardContainer:
    return CardContainer(
        [
            c
            for c in cards
            if (card_id is None or c.id == card_id) and (card_type is None or c.type == card_type)
        ]
    )


def get_cards(
    task: Task | str,
    id: str | None = None,
    type: str | None = None,
    follow_resumed: bool = True,
    *,
    root: StoreRoot | None = None,
) -> CardContainer:
    """The stored cards of a task (a Task or its pathspec), of one id and/or type if given.

    A pathspec of a task that is still running is read without waiting for its row, so the
    cards its `current.card.refresh()` stored are seen. A run that does not exist raises
    MetaflowNotFound; a task without cards gives an empty container.
    """
    if isinstance(task, Task):
        store, pathspec = task._store, task.pathspec
        flow, run_id, _, task_id = _parse_task(pathspec)
    elif isinstance(task, str):
        pathspec = task
        flow, run_id, _, task_id = _parse_task(pathspec)
        store = shared_store(root)
        if store.metadata.run(flow, run_id) is None:
            raise MetaflowNotFound(f"Run('{flow}/{run_id}') does not exist")
    else:
        raise TypeError(f"get_cards takes a Task or a pathspec string, not {task!r}")
    records = _latest(store.metadata.cards(run_id, task_id))
    if not records and follow_resumed:
        origin = _origin(task if isinstance(task, Task) else None, pathspec, store)
        if origin is not None:
            return get_cards(origin, id, type, follow_resumed=False)
    return _select([Card(store, r, pathspec) for r in records], id, type)


def _origin(task: Task | None, pathspec: str, store: Store) -> Task | None:
    """The task a resumed run cloned this one from, or None."""
    try:
        found = task if task is not None else Task(pathspec, _store=store, _namespace_check=False)
        origin = found.origin_pathspec
    except MetaflowNotFound:  # its row is not stored yet (a running task)
        return None
    return None if origin is None else Task(origin, _store=store, _namespace_check=False)


def run_cards(run: Any, *, root: StoreRoot | None = None) -> dict[str, CardContainer]:
    """Every task's cards of a run (a Run or its pathspec `Flow/run_id`), by task pathspec,
    with one read of the store: what a run report links to."""
    if isinstance(run, str):
        flow, _, run_id_text = run.partition("/")
        number = _id_number(run_id_text)
        if not flow or number is None:
            raise InvalidPathspec(f"run_cards takes a Run or Flow/run_id, not {run!r}")
        store = shared_store(root)
        if store.metadata.run(flow, number) is None:
            raise MetaflowNotFound(f"Run('{flow}/{number}') does not exist")
    else:
        store, flow, number = run._store, run.path_components[0], int(run.id)
    steps = {r.task_id: r.step for r in store.metadata.task_attempts(number)}
    by_task: dict[int, list[CardRecord]] = {}
    for record in store.metadata.cards(number):
        by_task.setdefault(record.task_id, []).append(record)
    found = {}
    for task_id, records in by_task.items():
        step = steps.get(task_id)
        if step is None:  # a running task whose row is not stored yet
            continue
        pathspec = f"{flow}/{number}/{step}/{task_id}"
        found[pathspec] = CardContainer([Card(store, r, pathspec) for r in _latest(records)])
    return found
