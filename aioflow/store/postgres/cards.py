"""The `cards` table of a PostgreSQL store: one row per card of a task attempt (`@card`).

As in SQLite (`store/sqlite_cards.py`): the card's HTML is a blob, the row says whose card it
is and the blob's key. The table comes with schema version 2 (`schema.MIGRATIONS`); deleting
a run deletes its cards (`PostgresMetadataStore.delete_runs`).
"""

from __future__ import annotations

from typing import Any

from ..protocols import CardRecord
from .schema import SCHEMA

_COLUMNS = "run_id, task_id, attempt, position, card_id, card_type, key, updated_at"


def put_card(conn: Any, card: CardRecord) -> None:
    """Store (or replace) one card's row, in one transaction."""
    with conn.transaction():
        conn.execute(
            f"INSERT INTO {SCHEMA}.cards ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id, task_id, attempt, position) DO UPDATE SET "
            "card_id = EXCLUDED.card_id, card_type = EXCLUDED.card_type, key = EXCLUDED.key, "
            "updated_at = EXCLUDED.updated_at",
            tuple(card),
        )


def cards_query(task_id: int | None) -> str:
    """The query of a run's cards (of one task), by task, attempt and position."""
    where = "run_id = %s" if task_id is None else "run_id = %s AND task_id = %s"
    return (
        f"SELECT {_COLUMNS} FROM {SCHEMA}.cards WHERE {where} ORDER BY task_id, attempt, position"
    )


__all__ = ["cards_query", "put_card"]
