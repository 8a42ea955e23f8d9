"""Content-addressed stores for large blobs: files on local disk, or memory for tests.

Small blobs live in the metadata database (see `metadata.py`), where a row costs a few
microseconds instead of a file's tens. Large ones are files named by their key, written once:
a temporary file renamed into place, so a killed writer never leaves a file under a valid name
with partial content, and every read is checked against the key.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from blake3 import blake3

from ..exceptions import BlobCorrupted, BlobNotFound
from .protocols import BlobStore
from .serde import LARGE, TAG_PICKLE_OOB, Buffer


def _verify(key: str, tag: int, payload: Buffer, where: str) -> None:
    """Raise BlobCorrupted unless (tag, payload) hashes to `key`; `where` names the blob's place."""
    hasher = blake3(max_threads=blake3.AUTO) if len(payload) >= LARGE else blake3()
    hasher.update(bytes((tag,)))
    hasher.update(payload)
    if hasher.hexdigest(length=len(key) // 2) != key:
        raise BlobCorrupted(key, location=where)


class FileBlobStore:
    """Blobs as files under `root`, fanned out by the first two hex digits of their key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self._made: set[str] = set()
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        """The file a blob with this key lives in."""
        return self.root / key[:2] / key[2:]

    def has(self, key: str) -> bool:
        """True when the blob's file exists."""
        return self.path(key).exists()

    def put(self, key: str, chunks: tuple[Buffer, ...]) -> None:
        """Write the blob atomically (temporary file, then rename) unless it exists."""
        target = self.path(key)
        if target.exists():
            return
        folder = key[:2]
        if folder not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made.add(folder)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get(self, key: str) -> tuple[int, Buffer]:
        """Read a blob, checking its content against its key."""
        path = self.path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:
            raise BlobNotFound(key, location=path) from None
        with f:
            head = f.read(1)
            if not head:
                raise BlobCorrupted(key, location=path, problem="is empty: the store was damaged")
            tag = head[0]
            size = os.fstat(f.fileno()).st_size - 1
            payload: Buffer
            if tag == TAG_PICKLE_OOB:
                # Out-of-band buffers become arrays that users may write to: read into
                # writable memory once instead of copying later.
                payload = bytearray(size)
                f.readinto(payload)
            else:
                # An exact-size read fills one bytes object; read() would grow and copy.
                payload = f.read(size)
        _verify(key, tag, payload, str(path))
        return tag, payload

    def size(self, key: str) -> int:
        """The blob file's size."""
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key, location=self.path(key)) from None


class MemoryBlobStore:
    """A BlobStore in a dict, for tests and throwaway runs."""

    location = "memory"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def has(self, key: str) -> bool:
        """True when the key is in the dict."""
        return key in self.blobs

    def put(self, key: str, chunks: tuple[Buffer, ...]) -> None:
        """Join the chunks and keep them."""
        self.blobs.setdefault(key, b"".join(chunks))

    def get(self, key: str) -> tuple[int, Buffer]:
        """Return the stored blob, verified."""
        blob = self.blobs.get(key)
        if blob is None:
            raise BlobNotFound(key, location=self.location)
        payload = blob[1:]
        _verify(key, blob[0], payload, "memory")
        return blob[0], payload

    def size(self, key: str) -> int:
        """The stored blob's length."""
        blob = self.blobs.get(key)
        if blob is None:
            raise BlobNotFound(key, location=self.location)
        return len(blob)


__all__ = ["BlobStore", "FileBlobStore", "MemoryBlobStore"]
