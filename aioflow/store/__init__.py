"""The store: where runs, tasks and artifacts live (`.aioflow/` by default).

A store is two backends behind the protocols of `protocols.py`: a `MetadataStore` (runs, task
attempts, small blobs) and a `BlobStore` (large blobs). `Store(root)` is SQLite and files in a
folder; `Store.memory()` keeps everything in this process, for tests. `Store` joins the two
behind one read path, so the runtime and the client find a blob by key without caring where it
lives, and a missing or damaged blob is a BlobError naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import BlobError, StoreError
from .blobs import FileBlobStore, MemoryBlobStore, _verify
from .keys import check_key, identity_blob, read_identity
from .metadata import SMALL, MetadataDB, SqliteMetadataStore
from .open import backends
from .protocols import BlobStore, MetadataStore, RunRecord, TaskRecord
from .serde import Buffer, decode, decode_plain
from .settings import StoreSettings, store_settings

if TYPE_CHECKING:
    from .memory import MemoryMetadataStore

__all__ = [
    "SMALL",
    "BlobStore",
    "FileBlobStore",
    "MemoryBlobStore",
    "MemoryMetadataStore",
    "MetadataDB",
    "MetadataStore",
    "RunRecord",
    "SqliteMetadataStore",
    "Store",
    "TaskRecord",
]


def __getattr__(name: str) -> Any:
    # The metadata in memory (tests, `memory://`) is imported on first use: a run in a store
    # folder never needs it.
    if name == "MemoryMetadataStore":
        from .memory import MemoryMetadataStore

        return MemoryMetadataStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ROOT_ENV = "AIOFLOW_ROOT"
DEFAULT_ROOT = ".aioflow"


def find_store_above(start: Path) -> Path | None:
    """The nearest `.aioflow` folder in `start` or its parents, as Metaflow finds `.metaflow`.

    The search stops at a repository root (a folder holding `.git`) or the filesystem root, so
    a store of an unrelated project higher up is never picked up.
    """
    for folder in (start, *start.parents):
        candidate = folder / DEFAULT_ROOT
        if candidate.is_dir():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: `root` if given, else $AIOFLOW_ROOT, else the nearest `.aioflow`.

    The nearest is found walking up from the working folder (`find_store_above`); when there
    is none, `./.aioflow`, where the first run creates it.
    """
    if root is not None:
        return Path(root).expanduser().absolute()
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().absolute()
    cwd = Path.cwd()
    return find_store_above(cwd) or cwd / DEFAULT_ROOT


def refuse_empty_root(root: str | os.PathLike[str] | None) -> str | os.PathLike[str] | None:
    """`root` unchanged, unless it is empty: StoreError then.

    `Path("")` is the working folder, so an empty root (a variable that was meant to be set)
    would silently put a store's files there instead of in a store folder.
    """
    if root is not None and not os.fspath(root):
        raise StoreError(
            "The store folder is given as '' (empty). Give a folder (--root DIR or "
            "AIOFLOW_ROOT=DIR), or leave it out for ./.aioflow."
        )
    return root


class Store:
    """A store: its `metadata` (a MetadataStore) and its `blobs` (a BlobStore).

    `Store(root)` opens (or creates, unless `create=False`) the store folder `root`:
    `metadata.db` and `blobs/`, unless the configuration (`settings`, else `--metadata`/
    `--blobs`, `$AIOFLOW_METADATA`/`$AIOFLOW_BLOBS` or `aioflow.toml`, see `settings.py`) puts
    metadata or blobs elsewhere. `Store(metadata=..., blobs=...)` joins any two backends;
    `root` is then None unless given.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        metadata: MetadataStore | None = None,
        blobs: BlobStore | None = None,
        settings: StoreSettings | None = None,
    ) -> None:
        if (metadata is None) != (blobs is None):
            raise TypeError("Store() takes both metadata= and blobs=, or neither.")
        #: The configuration the store was opened with (None: built from backends), so that
        #: worker processes open the same store, not the one their environment names.
        self.settings: StoreSettings | None = None
        if metadata is not None and blobs is not None:
            self.root: Path | None = None if root is None else Path(root)
            self.metadata = metadata
            self.blobs = blobs
            return
        folder = resolve_root(refuse_empty_root(root))
        if folder.exists() and not folder.is_dir():
            raise StoreError(
                f"The store folder {folder} is a file, not a folder. Point --root (or "
                "AIOFLOW_ROOT) at a folder, or remove the file."
            )
        self.root = folder
        if settings is None:
            settings = store_settings()
        self.settings = settings
        self.metadata, self.blobs = backends(folder, settings, create=create)

    @classmethod
    def memory(cls) -> Store:
        """A new empty store in this process's memory (for tests); gone with the object."""
        from .memory import MemoryMetadataStore

        return cls(metadata=MemoryMetadataStore(), blobs=MemoryBlobStore())

    @property
    def db(self) -> MetadataStore:
        """The metadata store (its older name)."""
        return self.metadata

    @property
    def location(self) -> str:
        """Where the store is, for messages: its folder, or where its metadata lives."""
        return str(self.root) if self.root is not None else self.metadata.location

    def read_blob(self, key: str) -> tuple[int, Buffer]:
        """(tag, payload) of a blob, from the metadata store or the blob store, verified.

        Raises BlobNotFound (a KeyError) when it is in neither, BlobCorrupted when it does not
        match its key. An identity key is read from the key itself (`keys.py`).
        """
        found = read_identity(key)
        if found is not None:
            return found
        data = self.metadata.get_blob(check_key(key))
        if data is not None:
            payload = memoryview(data)[1:]
            _verify(key, data[0], payload, f"{self.metadata.location} (blobs table)")
            return data[0], payload
        return self.blobs.get(key)

    def load(self, key: str, *, artifact: str | None = None, pathspec: str | None = None) -> Any:
        """Decode the value stored under `key`.

        `artifact` and `pathspec` name what the blob is, for the BlobError raised when it is
        missing or damaged.
        """
        try:
            tag, payload = self.read_blob(key)
        except BlobError as exc:
            if artifact is None and pathspec is None:
                raise
            raise exc.in_context(artifact=artifact, pathspec=pathspec) from exc
        return decode(tag, payload)

    def load_plain(self, key: str, *, pathspec: str | None = None) -> Any:
        """Decode a blob that must hold plain data (a log), running no code whatever it holds.

        Logs are read where a store may not be trusted (`aioflow logs` in any folder); a blob
        that is not plain data there raises BlobError instead of being unpickled.
        """
        try:
            tag, payload = self.read_blob(key)
            try:
                return decode_plain(tag, payload)
            except ValueError as exc:
                raise BlobError(
                    key,
                    problem=f"was refused: {exc}; logs hold only text, so the store was damaged "
                    "or tampered with",
                ) from None
        except BlobError as exc:
            raise exc.in_context(pathspec=pathspec) from None

    def blob_size(self, key: str) -> int:
        """Stored size of a blob in bytes; BlobNotFound when it is nowhere. An identity key's
        blob is its key's: its size is the blob's, stored nowhere."""
        blob = identity_blob(key)
        if blob is not None:
            return len(blob)
        size = self.metadata.blob_size(key)
        return size if size is not None else self.blobs.size(key)

    def close(self) -> None:
        """Let go of the metadata store's connections; the runs opened through it read ended."""
        self.metadata.close()
