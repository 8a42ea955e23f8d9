"""`aioflow card list|get|view PATHSPEC`: the cards a run's tasks stored (`@card`).

    aioflow card list MyFlow/3                 # every card of the run's tasks
    aioflow card get MyFlow/3/train/4 > c.html # one card's HTML
    aioflow card view MyFlow/3/train           # open it in the browser (--output FILE: write)

A pathspec names a task (`Flow/run/step/task`), a step (`Flow/run/step`: `get` and `view` then
need it to have one task), a step of the flow's latest run (`Flow/step`, as Metaflow's
`python flow.py card view step`) or, for `list`, a run (`Flow/run`). `--id` and `--type`
choose among a task's cards; `get` and `view` need exactly one to match.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..exceptions import InvalidPathspec, MetaflowNotFound
from .client_commands import RootOption, _reading
from .output import _echo

if TYPE_CHECKING:
    from ..client.cards import Card, CardContainer
    from ..store import Store

card_app = typer.Typer(
    help="List, print and open the cards (@card) of a run's tasks.", no_args_is_help=True
)
PathspecArgument = Annotated[
    str,
    typer.Argument(
        help="A task (Flow/RunID/Step/TaskID), a step (Flow/RunID/Step) or a step of the "
        "latest run (Flow/Step)."
    ),
]
IdOption = Annotated[str | None, typer.Option("--id", help="Only the card with this id.")]
TypeOption = Annotated[
    str | None, typer.Option("--type", help="Only cards of this type (default, blank).")
]


def _task_cards(
    store: Store, pathspec: str, card_id: str | None, card_type: str | None
) -> dict[str, CardContainer]:
    """The cards of the task, or of every task of the step, a pathspec names."""
    from ..client import tasks_at
    from ..client.cards import get_cards

    parts = pathspec.split("/")
    if len(parts) == 2 and parts[1] and not parts[1].isdigit():
        # Metaflow's `python flow.py card view STEP`: the step of the flow's latest run.
        latest = store.metadata.latest_run_id(parts[0])
        if latest is None:
            raise MetaflowNotFound(f"Flow {parts[0]} has no run in {store.location}.")
        parts = [parts[0], str(latest), parts[1]]
        pathspec = "/".join(parts)
    if len(parts) == 4:
        # Read without the task's row: a running task's refreshed cards are there already.
        return {pathspec: get_cards(pathspec, card_id, card_type, root=store.root)}
    if len(parts) != 3:
        raise InvalidPathspec(
            "Expects a step or a task: 'FlowName/RunID/StepName' or "
            f"'FlowName/RunID/StepName/TaskID', not {pathspec!r}"
        )
    return {t.pathspec: get_cards(t, card_id, card_type) for t in tasks_at(pathspec, store=store)}


def _one_card(store: Store, pathspec: str, card_id: str | None, card_type: str | None) -> Card:
    found = _task_cards(store, pathspec, card_id, card_type)
    if len(found) > 1:
        raise InvalidPathspec(
            f"Step {pathspec} has {len(found)} tasks: name one, as {next(iter(found))}."
        )
    cards = next(iter(found.values()), None)
    wanted = "".join(
        f" {label} {value!r}"
        for label, value in (("with id", card_id), ("of type", card_type))
        if value is not None
    )
    if not cards:
        raise MetaflowNotFound(f"Task {next(iter(found), pathspec)} has no card{wanted}.")
    if len(cards) > 1:
        names = ", ".join(f"{c.type}:{c.id or '-'}" for c in cards)
        raise InvalidPathspec(
            f"Task {cards[0].pathspec} has {len(cards)} cards{wanted} ({names}): choose one "
            "with --id or --type."
        )
    return cards[0]


@card_app.command("list")
def card_list(
    pathspec: Annotated[
        str, typer.Argument(help="A run (Flow/RunID), a step (Flow/RunID/Step) or a task.")
    ],
    card_id: IdOption = None,
    card_type: TypeOption = None,
    root: RootOption = None,
) -> None:
    """List cards: task, type, id, attempt and content key, one card a line."""
    from ..client.cards import run_cards

    with _reading(root) as store:
        found: dict[str, list[Card]]
        if pathspec.count("/") == 1 and pathspec.rsplit("/", 1)[1].isdigit():
            found = {
                task: [
                    c
                    for c in cards
                    if (card_id is None or c.id == card_id)
                    and (card_type is None or c.type == card_type)
                ]
                for task, cards in run_cards(pathspec, root=store.root).items()
            }
        else:
            found = {
                k: list(v) for k, v in _task_cards(store, pathspec, card_id, card_type).items()
            }
        lines = [
            f"{task}\t{c.type}\t{c.id or '-'}\tattempt {c.attempt}\t{c.hash[:12]}"
            for task, cards in found.items()
            for c in cards
        ]
        if not lines:
            _echo(f"No cards in {pathspec}.")
        for line in lines:
            _echo(line)


@card_app.command("get")
def card_get(
    pathspec: PathspecArgument,
    file: Annotated[
        Path | None, typer.Argument(help="Write the HTML here (default: print it).")
    ] = None,
    card_id: IdOption = None,
    card_type: TypeOption = None,
    root: RootOption = None,
) -> None:
    """Print a card's HTML, or write it to FILE."""
    with _reading(root) as store:
        card = _one_card(store, pathspec, card_id, card_type)
        if file is None:
            typer.echo(card.html, nl=False)
        else:
            card.write(file)


@card_app.command("view")
def card_view(
    pathspec: PathspecArgument,
    card_id: IdOption = None,
    card_type: TypeOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the card to this file instead of opening it."),
    ] = None,
    root: RootOption = None,
) -> None:
    """Open a card in the web browser (or write it to --output)."""
    with _reading(root) as store:
        card = _one_card(store, pathspec, card_id, card_type)
        if output is not None:
            _echo(f"Card written to {card.write(output)}")
            return
        _echo(f"Card opened from {card.view()}")
