"""Rendering a task's cards (`@card`) and storing them.

A `TaskCards` is made for each attempt of a step with cards; its `collector` is the task's
`current.card`. When the body ends (`TaskRun.finish`), every card is rendered, its HTML put in
the BlobStore under its content key and its record stored (`MetadataStore.put_card`).
`current.card.refresh()` does the same while the body runs, with the values the task holds
at that moment, so a reader (`aioflow ui`, `get_cards`) sees the progress.

A card never fails its task: rendering runs in a thread bounded by the card's `timeout`, and a
card that raises or runs out of time is stored as an error card saying why, and one the store
refuses is a warning naming it. A thread past its timeout cannot be stopped; it is left to
finish on its own and what it makes is dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..card_components import Error
from ..card_decorator import CARD_TYPES, CardCollector, CardSlot
from ..card_default import Unshown, default_card_body, step_source
from ..card_html import escape, page, row
from ..store.protocols import CardRecord
from ..store.serde import decode, encode

if TYPE_CHECKING:
    from .task import RunEnv, TaskSpec

#: An inherited artifact whose stored blob is larger is listed, not loaded, in a default card.
PREVIEW_MAX_BYTES = 1 << 20


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


class TaskCards:
    """The cards of one task attempt: what the step added, rendering and storing them."""

    def __init__(self, env: RunEnv, spec: TaskSpec, decorators: tuple[Any, ...]) -> None:
        self.env = env
        self.spec = spec
        self.slots = [CardSlot(deco, i) for i, deco in enumerate(decorators)]
        self.collector = CardCollector(self.slots, on_refresh=self._refresh)
        #: (attributes, manifest) the running task holds, for a refresh; set by TaskRun.
        self.live: tuple[Mapping[str, Any], Mapping[str, str]] | None = None

    # -- what a default card shows ---------------------------------------------------------------

    def _value(self, name: str, attributes: Mapping[str, Any], key: str | None) -> Any:
        if name in attributes:
            return attributes[name]
        if key is None:
            return Unshown('<span class="af-muted">(not stored)</span>')
        try:
            tag, payload = self.env.reader.read_blob(key)
            if len(payload) > PREVIEW_MAX_BYTES:
                return Unshown(f'<span class="af-muted">({len(payload):,} bytes, not shown)</span>')
            return decode(tag, payload)
        except Exception as exc:  # an unreadable artifact is named, not fatal
            return Unshown(f'<span class="af-muted">(unreadable: {escape(exc)})</span>')

    def _default_body(
        self,
        attributes: Mapping[str, Any],
        manifest: Mapping[str, str],
        status: str,
        error: str | None,
        finished_at: float | None,
        components: str,
    ) -> str:
        env, spec = self.env, self.spec
        metadata = [
            ("Pathspec", env.pathspec(spec)),
            ("Flow", env.flow_name),
            ("Run", env.run_id),
            ("Step", spec.step),
            ("Task", str(spec.task_id)),
            ("Attempt", str(spec.attempt)),
            ("Status", status),
            ("User", env.username),
            ("Tags", ", ".join(sorted(env.tags)) or "-"),
            ("Started", _when(spec.started_at)),
            ("Finished", _when(finished_at)),
        ]
        names = {*manifest, *(n for n in attributes if not n.startswith("_"))}
        params = {
            n: self._value(n, attributes, manifest.get(n))
            for n in env.parameter_names
            if n in names
        }
        artifacts = {
            n: self._value(n, attributes, manifest.get(n))
            for n in sorted(names)
            if not n.startswith("_") and n not in params and n != "name"
        }
        node = env.graph[spec.step]
        return default_card_body(
            metadata=metadata,
            parameters=params,
            artifacts=artifacts,
            graph=env.graph,
            step=spec.step,
            code=step_source(node.func),
            components=components,
            error=error,
        )

    # -- rendering --------------------------------------------------------------------------------

    def render(
        self,
        slot: CardSlot,
        attributes: Mapping[str, Any],
        manifest: Mapping[str, str],
        status: str,
        error: str | None = None,
        finished_at: float | None = None,
    ) -> str:
        """One card's whole HTML page (raises when it cannot be made)."""
        if slot.card_type not in CARD_TYPES:
            raise ValueError(
                f"unknown card type {slot.card_type!r}: aioflow renders {', '.join(CARD_TYPES)}"
            )
        components = "".join(row(c.render_safely()) for c in list(slot.components))
        if slot.card_type == "blank":
            body = components
        else:
            body = self._default_body(attributes, manifest, status, error, finished_at, components)
        title = f"{self.env.pathspec(self.spec)} {slot.card_id or slot.card_type}"
        return page(title, body, card_type=slot.card_type, card_id=slot.card_id)

    def _error_page(self, slot: CardSlot, exc: BaseException | None, why: str) -> str:
        body = row(f"<h1>Card {escape(slot.card_id or slot.card_type)}</h1><p>{escape(why)}</p>")
        if exc is not None:
            body += row(Error(exc, title=f"{type(exc).__name__}: {exc}").render())
        title = f"{self.env.pathspec(self.spec)} card error"
        return page(title, body, card_type=slot.card_type, card_id=slot.card_id)

    def render_bounded(self, slot: CardSlot, *args: Any, **kwargs: Any) -> str:
        """`render`, in a thread given `slot.timeout` seconds; an error card when it raises or
        runs out of time."""
        result: list[str] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                result.append(self.render(slot, *args, **kwargs))
            except Exception as exc:
                failure.append(exc)

        worker = threading.Thread(target=work, name="aioflow-card", daemon=True)
        worker.start()
        worker.join(slot.timeout)
        if result:
            return result[0]
        if failure:
            return self._error_page(slot, failure[0], "The card could not be rendered.")
        return self._error_page(
            slot, None, f"Rendering the card took longer than its timeout ({slot.timeout:g} s)."
        )

    def store(self, slot: CardSlot, html: str) -> None:
        """Put the page in the BlobStore and its record in the metadata store."""
        encoded = encode(html)
        self.env.blobs.put(encoded.key, encoded.chunks)
        index = self.env.card_index
        if index is not None:
            spec = self.spec
            record = CardRecord(
                int(self.env.run_id),
                spec.task_id,
                spec.attempt,
                slot.index,
                slot.card_id,
                slot.card_type,
                encoded.key,
                time.time(),
            )
            index.put_card(record)

    def _render_and_store(self, slot: CardSlot, *args: Any) -> None:
        """`render_bounded` then `store`; when the store fails, a warning naming the card and
        why, pointing at the step's line: the task's outcome must still be recorded (a card
        never fails its task)."""
        try:
            self.store(slot, self.render_bounded(slot, *args))
        except Exception as exc:
            self.env.graph[self.spec.step].warn(
                f"{self.env.pathspec(self.spec)}: card {slot.card_id or slot.card_type!r} was "
                f"not stored ({type(exc).__name__}: {exc}); the task goes on without it."
            )

    def _refresh(self, collector: CardCollector) -> None:
        attributes, manifest = self.live or ({}, {})
        for slot in self.slots:
            self._render_and_store(slot, dict(attributes), manifest, "running")

    def finish(
        self, attributes: Mapping[str, Any], manifest: Mapping[str, str], error: Any
    ) -> None:
        """Render and store every card once the body has ended (`error`: its ErrorInfo)."""
        status = "succeeded" if error is None else "failed"
        text = None if error is None else error.traceback
        now = time.time()
        for slot in self.slots:
            self._render_and_store(slot, attributes, manifest, status, text, now)
