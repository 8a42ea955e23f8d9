"""Connecting to PostgreSQL for the metadata store: the URL shown without its password, the
connection options aioflow adds, and psycopg's errors as one-line StoreErrors.

psycopg is imported here and in the other modules of this package only, so `import aioflow`
and SQLite stores never load it (it is the optional extra `aioflow[postgres]`).

Every message names the database by `redact(url)`: the URL with no password, neither in its
user part nor in its query (`?password=...`), so an error pasted into a bug report or a log
never leaks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...exceptions import MetadataConnectionError, MetadataError, StoreError, StoreFull

#: The URL schemes of PostgreSQL (libpq takes both).
SCHEMES = ("postgresql", "postgres")

#: Seconds a connection attempt may take before it is reported as failed (libpq waits forever
#: by default: a host that drops packets would hang a run's start).
CONNECT_TIMEOUT = 10

#: The server drops the session of a machine that vanished (power cut, network gone) after
#: about IDLE + INTERVAL * COUNT seconds, which lets go of its runs' locks (see `store.py`).
#: Set per session: the server's own default is the operating system's two hours.
KEEPALIVE_IDLE = 30
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3


def _psycopg() -> Any:
    """The psycopg module, or StoreError saying which extra to install."""
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "PostgreSQL metadata needs psycopg: pip install 'aioflow[postgres]' "
            "(or 'psycopg[binary]')."
        ) from None
    return psycopg


def redact(url: str) -> str:
    """`url` without its password (in the user part or in the query), for messages."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}@{host}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not even a URL: show only what kind of thing it was
        return "<a PostgreSQL URL that cannot be parsed>"


def check_url(url: str) -> None:
    """StoreError unless `url` is a postgresql:// URL naming a database."""
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise StoreError(
            f"{redact(url)} is not a PostgreSQL URL: it starts postgresql://user@host/database."
        )
    if not urlsplit(url).path.strip("/"):
        raise StoreError(
            f"{redact(url)} names no database: give one after the host "
            "(postgresql://user@host/aioflow), created for aioflow (createdb aioflow)."
        )


def _first_line(exc: BaseException) -> str:
    """What went wrong, in one line: libpq's messages run over several lines and repeat
    "connection failed: connection to server at ... failed:" before the reason."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = text.rpartition(" failed: ")[2] if " failed: " in text else text
    for prefix in ("FATAL:", "ERROR:"):
        reason = reason.removeprefix(prefix).strip()
    return reason.rstrip(".")


def connect(url: str) -> Any:
    """A new autocommit connection to `url`, with aioflow's defaults for what the URL leaves
    out (a connect timeout, the application's name, client keepalives).

    Raises MetadataConnectionError naming the URL (without its password): refused, timed out,
    authentication failed, no such database.
    """
    psycopg = _psycopg()
    given = {key for key, _ in parse_qsl(urlsplit(url).query)}
    defaults = {
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": "aioflow",
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
    }
    options = {key: value for key, value in defaults.items() if key not in given}
    try:
        return psycopg.connect(url, autocommit=True, **options)
    except psycopg.Error as exc:
        raise MetadataConnectionError(
            f"Cannot connect to the metadata database {redact(url)}: {_first_line(exc)}. Is "
            "PostgreSQL running there, and are the user, password and database right?",
            url=redact(url),
        ) from None


#: SQLSTATE disk_full: PostgreSQL reports running out of space on any file it writes (a table
#: that cannot grow, a temporary file) with it.
DISK_FULL = "53100"
#: What a full disk or quota says in a message that carries another SQLSTATE (a quota:
#: EDQUOT has no SQLSTATE of its own, and comes as an internal error).
_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
#: How to make room when the database server's disk is full.
FULL_HINT = "Free space on the database server's disk (or its tablespace)"


def disk_full(exc: BaseException) -> bool:
    """True when a psycopg error says the server's disk (or quota) is full.

    Only that: out of memory (53200) or too many connections (53300), the other errors of
    class 53 (insufficient resources), are not the store running out of room, and stay
    MetadataErrors with the server's reason.
    """
    if getattr(exc, "sqlstate", None) == DISK_FULL:
        return True
    return any(text in str(exc) for text in _FULL_TEXT)


def _storing(doing: str) -> str:
    """What could not be stored, from what was being done ("storing a card of task 3")."""
    for verb in ("storing ", "writing "):
        if doing.startswith(verb):
            return doing.removeprefix(verb)
    return f"data ({doing})"


def lost(exc: BaseException) -> bool:
    """True when a psycopg error says the connection is gone (nothing the server refused):
    errors raised by libpq itself carry no SQLSTATE, and class 08 and 57P0x (the server
    shutting down) are the server's way of saying so."""
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P0"))


@contextmanager
def naming(url: str, doing: str) -> Iterator[None]:
    """Turn psycopg's errors inside the block into one-line errors naming the URL: a full
    disk into StoreFull (nothing of the refused transaction is stored, and what was stored
    before stays), a connection lost into MetadataConnectionError, any other into
    MetadataError."""
    psycopg = _psycopg()
    try:
        yield
    except psycopg.Error as exc:
        if disk_full(exc):
            raise StoreFull(_storing(doing), location=redact(url), hint=FULL_HINT) from exc
        if not lost(exc):
            raise MetadataError(
                f"The metadata database {redact(url)} refused {doing}: {_first_line(exc)}."
            ) from exc
        raise MetadataConnectionError(
            f"Lost the metadata database {redact(url)} while {doing}: {_first_line(exc)}.",
            url=redact(url),
        ) from exc


__all__ = ["DISK_FULL", "SCHEMES", "check_url", "connect", "disk_full", "lost", "naming", "redact"]
