"""Whether the reference orchestrator persisted what aioflow persisted: two stores, compared.

`benchmarks.floor` compares the stores its last aioflow run and its last reference run of each
case left behind, and prints the result under its table, so a reference that persists less (or
an aioflow that starts persisting more) shows up beside the figures it would distort:

- the schema (every table's and index's SQL) and the `meta` rows;
- the number of rows of each table;
- the small blobs: the same keys (a key is the hash of the bytes, so the same bytes) and so the
  same total size;
- the large blobs: the same files under `blobs/`, of the same sizes; the same folders beside
  them (`running/`, `faults/`, emptied when the run ended);
- every task row, column by column, except the clock's (`started_at` and `finished_at` must be
  set in both) and the run id;
- the run's row: every column set in one is set in the other, and the flow, status, parameters
  and tags are equal (the graph's description names each tool's own source file and lines).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

#: The task columns compared as they are (run_id, started_at and finished_at are not).
_TASK_COLUMNS = ("task_id", "attempt", "step", "status", "frames", "parents", "manifest",
                 "stdout", "stderr", "exception", "origin", "transition")  # fmt: skip
_RUN_EQUAL = ("flow", "status", "user", "origin_run_id", "tags", "system_tags", "params",
              "host", "error", "run_lock")  # fmt: skip
_RUN_COLUMNS = ("run_id", "flow", "status", "user", "created_at", "finished_at",
                "origin_run_id", "tags", "system_tags", "params", "graph", "pid", "host", "error",
                "run_lock")  # fmt: skip


def _query(conn: sqlite3.Connection, sql: str) -> list[Any]:
    return conn.execute(sql).fetchall()


def summary(root: Path) -> dict[str, Any]:
    """What a store holds, in figures: rows per table, blob bytes, blob files and their bytes."""
    conn = sqlite3.connect(f"{(root / 'metadata.db').resolve().as_uri()}?mode=ro", uri=True)
    try:
        counts = {t: _query(conn, f"SELECT count(*) FROM {t}")[0][0]
                  for t in ("runs", "tasks", "blobs")}  # fmt: skip
        blob_bytes = _query(conn, "SELECT coalesce(sum(length(data)), 0) FROM blobs")[0][0]
    finally:
        conn.close()
    files = _files(root)
    return {**counts, "blob_bytes": blob_bytes, "files": len(files),
            "file_bytes": sum(files.values())}  # fmt: skip


def _files(root: Path) -> dict[str, int]:
    folder = root / "blobs"
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and p.parent.name != "tmp"
    }


def _layout(root: Path) -> list[str]:
    """Everything in the store folder but the database's files and the blob files (which are
    compared by content): the lock and fault folders, left empty by a run that ended."""
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        database = path.name.startswith("metadata.db")
        if path.is_dir() or not (database or relative.parts[0] == "blobs"):
            found.append(str(relative))
    return sorted(found)


def differences(aioflow_root: Path, reference_root: Path) -> list[str]:
    """How the reference's store differs from aioflow's (empty when it persisted the same)."""
    a = sqlite3.connect(f"{(aioflow_root / 'metadata.db').resolve().as_uri()}?mode=ro", uri=True)
    r = sqlite3.connect(f"{(reference_root / 'metadata.db').resolve().as_uri()}?mode=ro", uri=True)
    found: list[str] = []
    try:
        schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        if _query(a, schema) != _query(r, schema):
            found.append("the schema differs")
        if _query(a, "SELECT * FROM meta") != _query(r, "SELECT * FROM meta"):
            found.append("the meta rows differ")
        for table in ("runs", "tasks", "blobs"):
            count = f"SELECT count(*) FROM {table}"
            if _query(a, count) != _query(r, count):
                found.append(f"{table}: {_query(a, count)[0][0]} rows against "
                             f"{_query(r, count)[0][0]}")  # fmt: skip
        keys = "SELECT key, length(data) FROM blobs"
        a_keys, r_keys = dict(_query(a, keys)), dict(_query(r, keys))
        if a_keys != r_keys:
            found.append(f"blobs: {len(set(a_keys) - set(r_keys))} only in aioflow's store, "
                         f"{len(set(r_keys) - set(a_keys))} only in the reference's")  # fmt: skip
        found += _tasks_differ(a, r)
        found += _runs_differ(a, r)
    finally:
        a.close()
        r.close()
    if _layout(aioflow_root) != _layout(reference_root):
        found.append(f"folders and files beside the database: {_layout(aioflow_root)} against "
                     f"{_layout(reference_root)}")  # fmt: skip
    if _files(aioflow_root) != _files(reference_root):
        found.append(f"blob files: {sorted(_files(aioflow_root))} against "
                     f"{sorted(_files(reference_root))}")  # fmt: skip
    return found


def _tasks_differ(a: sqlite3.Connection, r: sqlite3.Connection) -> list[str]:
    columns = ", ".join(_TASK_COLUMNS)
    sql = f"SELECT {columns}, started_at IS NOT NULL AND finished_at IS NOT NULL FROM tasks "
    sql += "ORDER BY task_id, attempt"
    a_rows, r_rows = _query(a, sql), _query(r, sql)
    for a_row, r_row in zip(a_rows, r_rows, strict=False):
        if a_row != r_row:
            which = [
                c for c, x, y in zip((*_TASK_COLUMNS, "times"), a_row, r_row, strict=True) if x != y
            ]
            return [f"task {a_row[0]} ({a_row[2]}) differs in {', '.join(which)}"]
    return []


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_RUN_COLUMNS, values, strict=True))


def _runs_differ(a: sqlite3.Connection, r: sqlite3.Connection) -> list[str]:
    sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY run_id"
    found = []
    for a_row, r_row in zip(_query(a, sql), _query(r, sql), strict=False):
        a_run, r_run = _row(a_row), _row(r_row)
        unequal = [c for c in _RUN_EQUAL if a_run[c] != r_run[c]]
        unset = [c for c in _RUN_COLUMNS if (a_run[c] is None) != (r_run[c] is None)]
        if unequal or unset:
            found.append(f"run row: {', '.join(unequal + unset)} differ")
    return found
