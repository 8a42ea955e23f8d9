"""Opening a store from URLs: a small registry of backends keyed by URL scheme.

Metadata URLs:

- none: SQLite in the store folder (`<root>/metadata.db`), the embedded default;
- `sqlite:///path/to/metadata.db`: SQLite in that file;
- `memory://`: in this process's memory (tests, throwaway runs);
- `postgresql://...` (or `postgres://`): PostgreSQL, opened by `aioflow.store.postgres`'s
  `open_postgres_metadata(url)`, imported only when such a URL is used.

Blob URLs:

- none: files in the store folder (`<root>/blobs`);
- a plain path (`/mnt/team/blobs`): files there, in the same layout;
- `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, `file:///path`,
  `memory://`: an object store through obstore (`objects.py`, imported only for such a URL).

A backend that cannot be opened (an unknown scheme, a missing optional dependency, a bad URL)
is a StoreError naming the URL.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..exceptions import StoreError
from .blobs import FileBlobStore
from .metadata import SqliteMetadataStore
from .protocols import BlobStore, MetadataStore
from .settings import StoreSettings, redact, store_settings

#: The module and function that open PostgreSQL metadata (written beside this one).
POSTGRES_MODULE = "aioflow.store.postgres"
POSTGRES_OPENER = "open_postgres_metadata"

if TYPE_CHECKING:
    from . import Store


def _scheme(url: str) -> str:
    """The URL's scheme, lowercased; "" for a plain path (a Windows drive letter included)."""
    scheme = urlsplit(url).scheme.lower()
    return "" if len(scheme) <= 1 else scheme


def _sqlite(url: str, create: bool) -> MetadataStore:
    path = urlsplit(url).path
    if not path:
        raise StoreError(f"The metadata URL {url} names no file: sqlite:///path/to/metadata.db.")
    return SqliteMetadataStore(Path(path), create=create)


def _memory(url: str, create: bool) -> MetadataStore:
    from .memory import MemoryMetadataStore

    return MemoryMetadataStore()


def _postgres(url: str, create: bool) -> MetadataStore:
    try:
        module = importlib.import_module(POSTGRES_MODULE)
    except ImportError as exc:
        if exc.name not in (POSTGRES_MODULE, "aioflow.store.postgres"):
            raise StoreError(
                f"PostgreSQL metadata ({redact(url)}) needs {exc.name}, which is not "
                "installed: pip install 'aioflow[postgres]'."
            ) from None
        raise StoreError(
            f"PostgreSQL metadata ({redact(url)}) is not available in this aioflow: "
            f"{POSTGRES_MODULE} is missing."
        ) from None
    opener: Callable[..., MetadataStore] = getattr(module, POSTGRES_OPENER)
    return opener(url, create=create)


#: How each metadata URL scheme opens: (url, create) -> MetadataStore.
METADATA_SCHEMES: dict[str, Callable[[str, bool], MetadataStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def open_metadata(url: str, *, create: bool = True) -> MetadataStore:
    """The MetadataStore a URL names (see the module's doc); StoreError for an unknown scheme."""
    opener = METADATA_SCHEMES.get(_scheme(url))
    if opener is None:
        known = ", ".join(f"{s}://" for s in METADATA_SCHEMES)
        raise StoreError(f"Unknown metadata URL {redact(url)}: use one of {known}.")
    return opener(url, create)


def open_blobs(url: str) -> BlobStore:
    """The BlobStore a URL (or a plain folder path) names; StoreError for an unknown scheme."""
    scheme = _scheme(url)
    if not scheme:
        return FileBlobStore(Path(url).expanduser().absolute())
    from .objects import SCHEMES, ObjectBlobStore  # object storage only: not for a folder

    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in ("s3", "gs", "az", "file", "memory"))
        raise StoreError(f"Unknown blob store URL {redact(url)}: use a folder or one of {known}.")
    return ObjectBlobStore(url)


def backends(
    folder: Path, settings: StoreSettings, *, create: bool
) -> tuple[MetadataStore, BlobStore]:
    """The metadata and blob stores `settings` name, defaulting to SQLite and files in `folder`.

    Raises StoreError when the store folder is needed and there is no store there (`create`
    False), or when a backend cannot be opened.
    """
    if settings.metadata is not None:
        metadata = open_metadata(settings.metadata, create=create)
    else:
        metadata = SqliteMetadataStore(folder / "metadata.db", create=create)
    try:
        blobs = open_blobs(settings.blobs) if settings.blobs is not None else None
    except BaseException:
        metadata.close()
        raise
    return metadata, blobs if blobs is not None else FileBlobStore(folder / "blobs")


def open_store(
    metadata_url: str | None = None,
    blobs_url: str | None = None,
    root: str | os.PathLike[str] | None = None,
    *,
    create: bool = True,
) -> Store:
    """A Store from URLs: the arguments, else `$AIOFLOW_METADATA`/`$AIOFLOW_BLOBS`, else the
    configuration file (`settings.py`), else SQLite and files in the store folder `root`."""
    from . import Store

    settings = store_settings(metadata=metadata_url, blobs=blobs_url)
    return Store(root, create=create, settings=settings)


__all__ = [
    "METADATA_SCHEMES",
    "POSTGRES_MODULE",
    "POSTGRES_OPENER",
    "backends",
    "open_blobs",
    "open_metadata",
    "open_store",
]
