"""Metadata in PostgreSQL (`postgresql://` URLs): the MetadataStore several schedulers on
different machines share.

`open_postgres_metadata(url)` opens (creating or migrating the `aioflow` schema) the database
at `url`; `Store(metadata=open_postgres_metadata(url), blobs=...)` joins it with a blob store.
`connection.py` connects and names errors, `schema.py` holds the versioned migrations,
`store.py` the queries and the runs' liveness (advisory locks). Needs psycopg 3
(`pip install 'aioflow[postgres]'`), imported only when this package is.
"""

from __future__ import annotations

from .connection import redact
from .schema import SCHEMA, SCHEMA_VERSION
from .store import PostgresMetadataStore, open_postgres_metadata

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "PostgresMetadataStore",
    "open_postgres_metadata",
    "redact",
]
