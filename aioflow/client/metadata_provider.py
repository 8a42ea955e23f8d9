"""Which store the client reads, in Metaflow's words: `metadata`, `get_metadata`,
`default_metadata`.

Metaflow names where run metadata lives a "metadata provider" (`local@/path`, `service@url`).
aioflow's only provider is its local store, so these three functions choose the store folder,
through the same context variable as `set_root` (`base.py`): `metadata("local@/path")` is
`set_root` spelled Metaflow's way.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import StoreError
from ..store import DEFAULT_ROOT, resolve_root
from .base import _root, set_root

_LOCAL = "local"


def get_metadata() -> str:
    """The store the client reads, as `local@<store folder>` (Metaflow's `get_metadata`)."""
    return f"{_LOCAL}@{resolve_root(_root.get())}"


def default_metadata() -> str:
    """Read the default store again ($AIOFLOW_ROOT, else the nearest `.aioflow`); return
    `get_metadata()`."""
    set_root(None)
    return get_metadata()


def _store_folder(path: str) -> Path:
    """The store a path names: the folder itself when it is a store, else its `.aioflow`.

    As Metaflow's `local@<path>` names the folder holding `.metaflow`, a path holding a
    `.aioflow` store reads that store; a store folder itself (holding `metadata.db`) is read
    as it is.
    """
    folder = Path(path).expanduser().absolute()
    if (folder / "metadata.db").is_file():
        return folder
    if (folder / DEFAULT_ROOT).is_dir():
        return folder / DEFAULT_ROOT
    raise StoreError(
        f"metadata({path!r}): {folder} is not an aioflow store and holds no {DEFAULT_ROOT} "
        "folder. Give a store folder, or the folder holding one."
    )


def metadata(ms: str | os.PathLike[str]) -> str:
    """Switch the store the client reads (in this context), as Metaflow's `metadata(ms)`.

    `ms` is `local@<path>` or a plain path: a store folder, or a folder holding `.aioflow`
    (Metaflow's `local@<path>` names the folder holding `.metaflow`). `"local"` alone goes back
    to the default store. Returns `get_metadata()`. Metaflow's other providers (`service@url`,
    an http URL) are refused: aioflow reads only its own local store.
    """
    spec = os.fspath(ms)
    if not isinstance(spec, str) or not spec:
        raise StoreError(f"metadata() takes 'local@<path>' or a path, not {ms!r}.")
    provider, at, info = spec.partition("@")
    if at and provider == _LOCAL:
        spec = info
    elif spec == _LOCAL:
        return default_metadata()
    elif (at and "/" not in provider) or spec.startswith(("http://", "https://")):
        raise StoreError(
            f"metadata({spec!r}): aioflow reads only its own local store; give "
            "'local@<path>' or a path."
        )
    if not spec:
        raise StoreError(f"metadata({ms!r}) names no folder; give 'local@<path>' or a path.")
    set_root(_store_folder(spec))
    return get_metadata()


__all__ = ["default_metadata", "get_metadata", "metadata"]
