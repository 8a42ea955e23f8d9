"""The PostgreSQL schema of the metadata store: its tables, its versioned migrations, and how a
database is told to be aioflow's before anything is written to it.

Everything lives in the schema `aioflow` of the database the URL names: `schema_version` (one
row per migration applied), `meta` (what the store is: its mark, the class of its run locks),
`runs`, `tasks` and `blobs`, the same ideas as the SQLite store (`sqlite_schema.py`). Run ids
come from an identity column, so they are unique and never reused across every process and
machine writing the database.

`ensure_schema` identifies the database first, reading only: a database holding tables that are
not an aioflow store's is refused untouched, and so is a store written by a newer aioflow
(whose schema version this one does not know). Migrations then run in one transaction under a
transaction-scoped advisory lock, so openers racing on a new database (several schedulers
started at once) apply each migration exactly once, and a failed migration leaves nothing.
"""

from __future__ import annotations

import time
from typing import Any

from ...exceptions import MetadataError, StoreError
from .connection import naming, redact

#: The schema holding aioflow's tables.
SCHEMA = "aioflow"

#: The mark in `meta` that makes a database an aioflow store's.
APPLICATION = "aioflow"

#: The advisory lock (a pair of int4 keys) taken while migrating; "aiof" and "migr" in ASCII.
MIGRATION_LOCK = (0x61696F66, 0x6D696772)

#: The migrations, in order: version -> statements. Never edit a released one: add the next.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        f"CREATE TABLE {SCHEMA}.meta (key text PRIMARY KEY, value text NOT NULL)",
        f"""CREATE TABLE {SCHEMA}.runs (
            run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            flow text NOT NULL,
            status text NOT NULL,
            "user" text,
            created_at double precision NOT NULL,
            finished_at double precision,
            origin_run_id text,
            tags bytea,
            system_tags bytea,
            params bytea,
            graph bytea,
            pid integer,
            host text,
            error bytea,
            run_lock integer
        )""",
        f"CREATE INDEX runs_by_flow ON {SCHEMA}.runs (flow, run_id)",
        f"""CREATE TABLE {SCHEMA}.tasks (
            run_id bigint NOT NULL,
            task_id bigint NOT NULL,
            attempt integer NOT NULL,
            step text NOT NULL,
            status text NOT NULL,
            started_at double precision,
            finished_at double precision,
            frames bytea,
            parents bytea,
            manifest bytea,
            stdout text,
            stderr text,
            exception bytea,
            origin text,
            transition bytea,
            PRIMARY KEY (run_id, task_id, attempt)
        )""",
        f"CREATE INDEX tasks_by_step ON {SCHEMA}.tasks (run_id, step)",
        f"CREATE TABLE {SCHEMA}.blobs (key text PRIMARY KEY, data bytea NOT NULL)",
        # Blobs are pickles and compressed payloads: TOAST's compression would spend CPU on
        # every large row for little. Out of line, uncompressed.
        f"ALTER TABLE {SCHEMA}.blobs ALTER COLUMN data SET STORAGE EXTERNAL",
        f"INSERT INTO {SCHEMA}.meta VALUES ('application', '{APPLICATION}')",
        # The first key of every run lock of this store (see `store.py`): random, so other
        # programs' advisory locks in the same database do not collide with aioflow's.
        f"INSERT INTO {SCHEMA}.meta SELECT 'lock_class', "
        "(1 + floor(random() * 2147483646))::bigint::text",
    ),
    # @card: one row per card of a task attempt; its HTML is a blob (postgres/cards.py).
    2: (
        f"""CREATE TABLE {SCHEMA}.cards (
            run_id bigint NOT NULL,
            task_id bigint NOT NULL,
            attempt integer NOT NULL,
            position integer NOT NULL,
            card_id text,
            card_type text NOT NULL,
            key text NOT NULL,
            updated_at double precision NOT NULL,
            PRIMARY KEY (run_id, task_id, attempt, position)
        )""",
    ),
    # Identity keys: a value of a few bytes is kept in its key (store/keys.py) and never in
    # `blobs`, where an aioflow from before would look for it and fail mid-run. The new version
    # makes that aioflow refuse the store at once, saying a newer aioflow wrote it.
    3: (f"INSERT INTO {SCHEMA}.meta VALUES ('identity_keys', 'yes')",),
}

#: The schema version this aioflow writes and reads.
SCHEMA_VERSION = max(MIGRATIONS)


def _identify(cur: Any, url: str) -> int | None:
    """The store's schema version, None for an empty database; MetadataError for a database
    that is not an aioflow store's. Only reads."""
    # One statement, one snapshot: an opener that is migrating commits the schema and its
    # tables together, and two separate reads could fall on either side of that commit.
    cur.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%' "
        "UNION ALL SELECT '' FROM pg_namespace WHERE nspname = %s "
        "ORDER BY 1",
        (SCHEMA,),
    )
    found = [row[0] for row in cur.fetchall()]
    tables = [name for name in found if name]
    if not tables:
        if found:  # an empty schema named aioflow: not made by aioflow
            raise foreign(url, [f"the empty schema {SCHEMA}"])
        return None
    if f"{SCHEMA}.schema_version" not in tables or f"{SCHEMA}.meta" not in tables:
        raise foreign(url, tables)
    cur.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'application'")
    mark = cur.fetchone()
    if mark is None or mark[0] != APPLICATION:
        raise foreign(url, tables)
    cur.execute(f"SELECT max(version) FROM {SCHEMA}.schema_version")
    version: int | None = cur.fetchone()[0]
    if version is None:
        raise foreign(url, tables)
    if version > SCHEMA_VERSION:
        raise MetadataError(
            f"The metadata database {redact(url)} was written by a newer aioflow (schema "
            f"version {version}; this aioflow knows up to {SCHEMA_VERSION}): upgrade aioflow "
            "to use it. It was left untouched."
        )
    return version


def foreign(url: str, tables: list[str]) -> MetadataError:
    """The error for a database that holds something other than an aioflow store."""
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    return MetadataError(
        f"{redact(url)} is not an aioflow store's database (it holds {shown}); aioflow leaves "
        "it untouched. Give aioflow a database of its own (createdb aioflow)."
    )


def ensure_schema(conn: Any, url: str, *, create: bool) -> None:
    """Check that the database behind `conn` is an aioflow store (or empty, when `create`) and
    bring its schema up to `SCHEMA_VERSION`.

    Raises MetadataError, the database untouched, for another program's database or a newer
    aioflow's; StoreError when there is no store and `create` is False.
    """
    with naming(url, "opening the store"), conn.cursor() as cur:
        version = _identify(cur, url)
        if version == SCHEMA_VERSION:
            return  # the common case: one read, no lock
        if version is None and not create:
            raise StoreError(
                f"No aioflow store in {redact(url)}: the database is empty. Run a flow with "
                "this metadata database first."
            )
        with conn.transaction():
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
            version = _identify(cur, url)  # another opener may have migrated meanwhile
            if version is None:
                cur.execute(f"CREATE SCHEMA {SCHEMA}")
                cur.execute(
                    f"CREATE TABLE {SCHEMA}.schema_version (version integer PRIMARY KEY, "
                    "applied_at double precision NOT NULL)"
                )
                version = 0
            for number in sorted(MIGRATIONS):
                if number <= version:
                    continue
                for statement in MIGRATIONS[number]:
                    cur.execute(statement)
                cur.execute(
                    f"INSERT INTO {SCHEMA}.schema_version VALUES (%s, %s)", (number, time.time())
                )


def lock_class(conn: Any, url: str) -> int:
    """The first key of this store's run locks (random per store, in `meta`)."""
    with naming(url, "reading the store's lock class"), conn.cursor() as cur:
        cur.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'lock_class'")
        row = cur.fetchone()
    if row is None:
        raise MetadataError(f"The metadata database {redact(url)} has no lock class: damaged.")
    return int(row[0])


__all__ = ["MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "ensure_schema", "foreign", "lock_class"]
