"""The `cards` table of a SQLite store: one row per card of a task attempt.

A card's HTML is a blob in the BlobStore (content-addressed like any other); the row says whose
card it is (run, task, attempt, its place among the step's @card decorators), its id and type,
and the blob's key. The table is made when a store first stores a card, so stores written
before cards existed need no migration, and a reader of such a store finds no cards. A trigger
deletes a run's cards with the run, whoever deletes it.
"""

from __future__ import annotations

import sqlite3

from .protocols import CardRecord

_TABLE = """
CREATE TABLE IF NOT EXISTS cards (
    run_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    position INTEGER NOT NULL,
    card_id TEXT,
    card_type TEXT NOT NULL,
    key TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, position)
) WITHOUT ROWID
"""
_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS cards_of_deleted_runs AFTER DELETE ON runs
BEGIN DELETE FROM cards WHERE run_id = OLD.run_id; END
"""

_COLUMNS = "run_id, task_id, attempt, position, card_id, card_type, key, updated_at"


def has_table(conn: sqlite3.Connection) -> bool:
    """True when the store has stored a card (the table exists)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cards'")
    return row.fetchone() is not None


def put_card(conn: sqlite3.Connection, card: CardRecord) -> None:
    """Store (or replace) one card's row, making the table first when needed; one transaction."""
    with conn:
        if not has_table(conn):
            conn.execute(_TABLE)
            conn.execute(_TRIGGER)
        conn.execute(f"INSERT OR REPLACE INTO cards ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", card)


def read_cards(conn: sqlite3.Connection, run_id: int, task_id: int | None) -> list[CardRecord]:
    """The cards of a run (of one of its tasks), by task, attempt and position."""
    if not has_table(conn):
        return []
    where, args = (
        ("run_id = ?", (run_id,))
        if task_id is None
        else (
            "run_id = ? AND task_id = ?",
            (run_id, task_id),
        )
    )
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cards WHERE {where} ORDER BY task_id, attempt, position", args
    ).fetchall()
    return [CardRecord(*row) for row in rows]
