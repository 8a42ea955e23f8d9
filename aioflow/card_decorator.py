"""`@card` and `current.card`: what a step's cards hold while the step runs.

    @card                                  # the default card: metadata, artifacts, DAG, code
    @card(type="blank", id="report")       # an empty card for components
    @step
    def train(self):
        current.card.append(Markdown("# Default"))      # the default editable card
        current.card["report"].append(Table([[1, 2]]))  # a card by its id
        current.card.refresh()                          # store what the cards show now

A step may carry several `@card`s with different ids. As in Metaflow, `current.card.append`
goes to the step's one editable card: the only card of the step, or among several the one
with `customize=True`; without one it warns and does nothing. An unknown id warns and gives a
list that goes nowhere. Warnings go to the task's stderr, never raise: a card never fails its
task. The runtime renders the cards when the body ends (`aioflow.runtime.cards`).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from .decorators import StepDecorator, _number, is_step, register, step_decorator
from .exceptions import FlowDefinitionError

#: The card types aioflow renders; another type gives an error card (Metaflow's plugins' types
#: are not installed here), never a failed task.
CARD_TYPES = ("default", "blank")
_ID = re.compile(r"[A-Za-z0-9_]+")


class CardDecorator(StepDecorator):
    """Render an HTML card of the task when its step ends (several with different ids)."""

    name = "card"
    defaults: ClassVar[dict[str, Any]] = {
        "type": "default",
        "id": None,
        "options": {},
        "timeout": 45,
        "customize": False,
        "refresh_interval": 5,
    }

    def validate(self) -> None:
        """`id` is letters, digits and underscores; `timeout` a positive number of seconds;
        `options` a dict (or its JSON, from --with)."""
        attrs = self.attributes
        card_id = attrs["id"]
        if card_id is not None and (not isinstance(card_id, str) or not _ID.fullmatch(card_id)):
            raise FlowDefinitionError(
                f"@card(id={card_id!r}): an id is made of letters, digits and underscores."
            )
        attrs["timeout"] = _number("card", "timeout", attrs["timeout"])
        if attrs["timeout"] <= 0:
            raise FlowDefinitionError(f"@card(timeout={attrs['timeout']!r}) must be positive.")
        attrs["refresh_interval"] = _number("card", "refresh_interval", attrs["refresh_interval"])
        options = attrs["options"]
        if isinstance(options, str):
            try:
                options = json.loads(options)
            except ValueError:
                options = None
        if not isinstance(options, dict):
            raise FlowDefinitionError(f"@card(options={attrs['options']!r}) takes a dict.")
        attrs["options"] = options
        customize = attrs["customize"]
        if isinstance(customize, str):
            attrs["customize"] = customize.lower() in ("true", "1", "yes")

    def __call__(self, func: Any) -> Any:
        """Attach the card to the step; another @card on it must have another id."""
        if not is_step(func):
            return super().__call__(func)  # the base class's message
        decos: list[StepDecorator] = func.decorators
        for other in decos:
            if other.name == "card" and other.attributes["id"] == self.attributes["id"]:
                which = f"id {self.attributes['id']!r}" if self.attributes["id"] else "no id"
                raise FlowDefinitionError(
                    f"Step *{func.__name__}* has two @card decorators with {which}: give each "
                    "card its own id."
                )
        if self.attributes["customize"] and any(
            d.name == "card" and d.attributes["customize"] for d in decos
        ):
            raise FlowDefinitionError(
                f"Step *{func.__name__}* has two @card(customize=True): only one card can take "
                "current.card.append."
            )
        decos.append(self)
        return func


register(CardDecorator)
card = step_decorator(CardDecorator)


def _warn(message: str) -> None:
    # Printed, as Metaflow does: a warning must not fail the step (warnings can be errors).
    print(f"@card: {message}", file=sys.stderr)


class CardSlot:
    """One card of the running task: its decorator's settings and the components added."""

    def __init__(self, deco: StepDecorator, index: int) -> None:
        attrs = deco.attributes
        self.index = index
        self.card_id: str | None = attrs["id"]
        self.card_type: str = str(attrs["type"])
        self.options: dict[str, Any] = attrs["options"]
        self.timeout: float = attrs["timeout"]
        self.customize: bool = bool(attrs["customize"])
        self.components: list[Any] = []

    @property
    def editable(self) -> bool:
        """True for the types that take components (default and blank)."""
        return self.card_type in CARD_TYPES


class _Nowhere(list[Any]):
    """What `current.card[unknown_id]` gives: appends go nowhere."""


class CardCollector:
    """`current.card`: the running task's cards (see the module's docstring for the rules)."""

    def __init__(
        self,
        slots: Iterable[CardSlot] = (),
        on_refresh: Callable[[CardCollector], None] | None = None,
        min_refresh_seconds: float = 1.0,
    ) -> None:
        self.slots = list(slots)
        self._on_refresh = on_refresh
        self._min_refresh = min_refresh_seconds
        self._last_refresh = 0.0
        editable = [s for s in self.slots if s.editable]
        customized = [s for s in editable if s.customize]
        self._default: CardSlot | None = (
            editable[0] if len(editable) == 1 else customized[0] if customized else None
        )
        self._warned = False

    @property
    def default(self) -> CardSlot | None:
        """The card `append` adds to, or None."""
        return self._default

    def _target(self) -> list[Any]:
        if self._default is not None:
            return self._default.components
        if not self._warned:
            self._warned = True
            if not self.slots:
                _warn("current.card.append: the step has no @card; nothing is added.")
            else:
                _warn(
                    "current.card.append: the step has several @card decorators and none is "
                    "@card(customize=True); use current.card['<id>'] to choose one."
                )
        return _Nowhere()

    def append(self, component: Any) -> None:
        """Add a component to the default editable card."""
        self._target().append(component)

    def extend(self, components: Iterable[Any]) -> None:
        """Add components to the default editable card."""
        self._target().extend(components)

    def clear(self) -> None:
        """Remove the components of the default editable card."""
        if self._default is not None:
            self._default.components.clear()

    def __getitem__(self, card_id: str) -> list[Any]:
        """The components of the card with this id (an unknown id warns, never raises)."""
        for slot in self.slots:
            if slot.card_id == card_id and slot.editable:
                return slot.components
        _warn(f"no editable card with id {card_id!r} in this step; what is added is dropped.")
        return _Nowhere()

    def __setitem__(self, card_id: str, components: Iterable[Any]) -> None:
        """Replace the components of the card with this id."""
        target = self[card_id]
        target[:] = list(components)

    def refresh(self, *args: Any, **kwargs: Any) -> None:
        """Render the cards as they are now and store them, so a reader sees the progress.

        At most one refresh a second (more would only slow the step); the cards are always
        rendered again when the step ends.
        """
        now = time.monotonic()
        if self._on_refresh is None or now - self._last_refresh < self._min_refresh:
            return
        self._last_refresh = now
        try:
            self._on_refresh(self)
        except Exception as exc:  # storing a live card must not fail the step
            _warn(f"refresh failed: {type(exc).__name__}: {exc}")

    def components(self, card_id: str | None = None) -> list[Any]:
        """The components of a card (by id; None: the default editable card's)."""
        if card_id is None:
            return list(self._default.components) if self._default else []
        return next(s for s in self.slots if s.card_id == card_id).components

    def __repr__(self) -> str:
        ids = ", ".join(f"{s.card_type}:{s.card_id or '-'}" for s in self.slots)
        return f"<current.card [{ids}]>"
