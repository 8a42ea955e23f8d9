"""Where a store's metadata and blobs live, as the user configured it.

Each of `metadata` and `blobs` is taken from the first place that gives it:

1. what the caller passes (the CLI's `--metadata URL` and `--blobs URL`);
2. the environment: `$AIOFLOW_METADATA`, `$AIOFLOW_BLOBS`;
3. a configuration file found by walking up from the working folder: `aioflow.toml` (keys at
   its top level), or a `[tool.aioflow]` table in `pyproject.toml`, so a team commits it once.
   The walk stops at a repository root (a folder holding `.git`), like the search for
   `.aioflow`.

Nothing given means the embedded default: SQLite metadata and blob files in the store folder
(`.aioflow/`, found as before: `--root`, `$AIOFLOW_ROOT`, or the nearest one).

A configuration file holds no credentials: a URL with a password in it is refused there, with a
message saying to put it in the environment. Credentials come from the environment and the
backends' usual chains only, and never reach the store itself.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import StoreError

METADATA_ENV = "AIOFLOW_METADATA"
BLOBS_ENV = "AIOFLOW_BLOBS"
CONFIG_FILE = "aioflow.toml"
KEYS = ("metadata", "blobs")


class StoreSettings(NamedTuple):
    """The configured URLs (None: the default in the store folder), and where each came from."""

    metadata: str | None = None
    blobs: str | None = None
    #: For each key given: "--metadata", "$AIOFLOW_METADATA", or the configuration file's path.
    sources: Mapping[str, str] = {}  # (read-only: the default is shared)

    @property
    def is_default(self) -> bool:
        """True when neither metadata nor blobs were configured (SQLite and files)."""
        return self.metadata is None and self.blobs is None


def find_config_file(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The nearest configuration file at or above `start` (the working folder) and its table.

    A `pyproject.toml` without a `[tool.aioflow]` table is passed over; `aioflow.toml` wins over
    `pyproject.toml` in the same folder. StoreError names a file that is not valid TOML.
    """
    start = Path.cwd() if start is None else start
    for folder in (start, *start.parents):
        for name in (CONFIG_FILE, "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            table = _read_table(path)
            if table is not None:
                return path, table
        if (folder / ".git").exists():
            return None
    return None


#: What a pyproject.toml holding a `[tool.aioflow]` table must contain outside its comment
#: lines: the table's header or a dotted key (`[tool.aioflow]`, `tool."aioflow".blobs = ...`),
#: a `[tool]` table whose keys could name it, an inline `tool = {aioflow = ...}`, or an escape
#: (`\u0061ioflow`) in a quoted key. A file with none of them has no such table; one with any
#: of them is parsed (the words in a string or after code on a line cost only that).
_MAY_HOLD_TOOL_AIOFLOW = re.compile(
    rb"""tool["']?[ \t]*\.[ \t]*["']?aioflow"""
    rb"""|^[ \t]*\[[ \t]*["']?tool["']?[ \t]*\]"""
    rb"""|tool["']?[ \t]*=[ \t]*\{"""
    rb"""|\\[uU]""",
    re.MULTILINE,
)
#: A line that is a comment (or, inside a multi-line string, text): it cannot define a table.
_COMMENT_LINE = re.compile(rb"^[ \t]*#.*$", re.MULTILINE)


def _read_table(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise StoreError(f"Cannot read the aioflow configuration in {path}: {exc}") from None
    code = _COMMENT_LINE.sub(b"", text)
    if path.name != CONFIG_FILE and not _MAY_HOLD_TOOL_AIOFLOW.search(code):
        # A project's pyproject.toml without a [tool.aioflow] table in sight (the common
        # case): passed over unparsed, which spares importing a TOML parser and parsing a file
        # of other tools' settings (3-5 ms) in every run started in the project.
        return None
    # Imported here: a run with no configuration file in sight never needs a TOML parser.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover (3.10)
        import tomli as tomllib
    try:
        data = tomllib.loads(text.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StoreError(f"Cannot read the aioflow configuration in {path}: {exc}") from None
    if path.name == CONFIG_FILE:
        return data
    table = data.get("tool", {}).get("aioflow")
    return table if isinstance(table, dict) else None


def store_settings(
    *,
    metadata: str | None = None,
    blobs: str | None = None,
    cwd: Path | None = None,
) -> StoreSettings:
    """The settings in force: the arguments, else the environment, else the configuration file.

    Raises StoreError naming the file for an unknown key, a value that is not a string, or a
    password written in a URL there.
    """
    given = {"metadata": metadata, "blobs": blobs}
    flags = {"metadata": "--metadata", "blobs": "--blobs"}
    envs = {"metadata": METADATA_ENV, "blobs": BLOBS_ENV}
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        if given[key]:
            values[key], sources[key] = given[key], flags[key]
        elif os.environ.get(envs[key]):
            values[key], sources[key] = os.environ[envs[key]], f"${envs[key]}"
    if any(key not in values for key in KEYS):
        found = find_config_file(cwd)
        if found is not None:
            path, table = found
            for key, value in _checked(path, table).items():
                if key not in values:
                    values[key], sources[key] = value, str(path)
    return StoreSettings(
        metadata=values.get("metadata"),
        blobs=values.get("blobs"),
        sources=sources,
    )


def _checked(path: Path, table: dict[str, Any]) -> dict[str, str]:
    where = f"[tool.aioflow] in {path}" if path.name == "pyproject.toml" else str(path)
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise StoreError(f"Unknown key {unknown[0]!r} in {where}: the keys are {', '.join(KEYS)}.")
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise StoreError(f"{key} in {where} must be a non-empty string, not {value!r}.")
        if urlsplit(value).password:
            raise StoreError(
                f"{key} in {where} holds a password: configuration files are committed, so "
                "credentials go in the environment (e.g. PGPASSWORD, AWS_SECRET_ACCESS_KEY) "
                "or the backend's credential files."
            )
    return dict(table)


def redact(url: str) -> str:
    """`url` with any password replaced by `***`, for messages and `aioflow store info`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


__all__ = [
    "BLOBS_ENV",
    "CONFIG_FILE",
    "METADATA_ENV",
    "StoreSettings",
    "find_config_file",
    "redact",
    "store_settings",
]
