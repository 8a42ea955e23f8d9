"""The store: where runs, tasks and artifacts live (`.aioflow/` by default).

`Store` joins the metadata database (with the small blobs) and the file blob store behind one
read path, so the runtime and the client find a blob by key without caring where it lives.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..exceptions import StoreError
from .blobs import BlobStore, FileBlobStore, MemoryBlobStore, _verify
from .metadata import SMALL, MetadataDB
from .serde import Buffer, decode

__all__ = ["SMALL", "BlobStore", "FileBlobStore", "MemoryBlobStore", "MetadataDB", "Store"]

ROOT_ENV = "AIOFLOW_ROOT"
DEFAULT_ROOT = ".aioflow"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: `root` if given, else $AIOFLOW_ROOT, else `./.aioflow`."""
    if root is not None:
        return Path(root).expanduser().absolute()
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return Path.cwd() / DEFAULT_ROOT


class Store:
    """One store folder: `metadata.db` plus `blobs/`."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        self.root = resolve_root(root)
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(
                f"The store folder {self.root} is a file, not a folder. Point --root (or "
                "AIOFLOW_ROOT) at a folder, or remove the file."
            )
        self.db = MetadataDB(self.root / "metadata.db", create=create)
        self.blobs: BlobStore = FileBlobStore(self.root / "blobs")

    def read_blob(self, key: str) -> tuple[int, Buffer]:
        """(tag, payload) of a blob, from the database or from its file; KeyError if absent."""
        data = self.db.get_blob(key)
        if data is not None:
            payload = memoryview(data)[1:]
            _verify(key, data[0], payload, f"{self.db.path} (blobs table)")
            return data[0], payload
        return self.blobs.get(key)

    def load(self, key: str) -> Any:
        """Decode the value stored under `key`."""
        tag, payload = self.read_blob(key)
        return decode(tag, payload)

    def blob_size(self, key: str) -> int:
        """Stored size of a blob in bytes."""
        size = self.db.blob_size(key)
        return size if size is not None else self.blobs.size(key)

    def close(self) -> None:
        """Close database connections."""
        self.db.close()
