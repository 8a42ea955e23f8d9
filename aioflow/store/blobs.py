"""Content-addressed stores for large blobs: files on local disk, or memory for tests.

Small blobs live in the metadata database (see `metadata.py`), where a row costs a few
microseconds instead of a file's tens. Large ones are files named by their key: a temporary file
renamed into place, so a killed writer never leaves a file under a valid name with partial
content, and every read is checked against the key.

A blob file that exists is trusted only once checked: writing a key again verifies the file there
(its size, then its hash) and rewrites it when it was damaged, so the next run that stores the
same value repairs it. Temporary files live in one folder, `tmp/`, which a writer sweeps of files
left by killed writers (see `STALE_TMP_AGE`) the first time it writes.

A large value whose key is not known yet (`put_encoded`) is hashed on one thread while another
writes it to a temporary file: its name is known only once the last byte is hashed, so the file
is renamed into place then, or dropped when a blob is already under the key.

An identity key (`keys.py`) names no file: every store reads its blob from the key itself, and
`put_encoded` stores nothing for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from contextlib import suppress
from io import BufferedReader
from pathlib import Path

from blake3 import blake3

from ..exceptions import BlobCorrupted, BlobError, BlobNotFound
from .keys import (
    HEX_KEY,
    IDENTITY_MAX,
    check_file_key,
    identity_blob,
    is_identity,
    read_identity,
)
from .protocols import BlobStore
from .serde import LARGE, TAG_PICKLE_OOB, Buffer, Encoded, key_of, new_hasher

#: The pieces blobs are read in when streamed (`read_stream`): a blob of any size is checked
#: or copied holding this much of it at a time.
STREAM_CHUNK = 8 * 1024 * 1024

#: Seconds after its last write a temporary blob file counts as left by a killed writer: a live
#: writer writes its file without pause, so an hour of silence means the write is dead.
STALE_TMP_AGE = 3600.0

#: Values at least this large whose key is not known yet are hashed while they are written
#: (`put_encoded`); below it a thread's start and the pieces' hand-offs cost about what
#: overlapping saves.
OVERLAP = 8 * 1024 * 1024

#: The largest piece a blob file is written in (and an overlapped write hashes in): ten `write`s
#: of a 2 GB buffer on a busy 2-core machine took 0.4 to 1.7 s (median 1.0 s), the same bytes in
#: 16 MB pieces 0.44 s (median). An overlapped writer also checks between two pieces whether the
#: key is known and a blob is already under it.
PIECE = 16 * 1024 * 1024


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
        self.tmp = self.root / "tmp"
        self._made: set[str] = set()
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        """The file a blob with this key lives in (BlobError for anything but a content key)."""
        check_file_key(key)
        return self.root / key[:2] / key[2:]

    def has(self, key: str) -> bool:
        """True when the blob's file exists, or its key holds it."""
        if identity_blob(key) is not None:
            return True
        return self.path(key).exists()

    def put(self, key: str, chunks: tuple[Buffer, ...]) -> None:
        """Write the blob atomically (temporary file, then rename) unless it is there intact.

        A file already under the key is kept when its size and then its hash match; a damaged
        one (a flipped byte, a truncation) is replaced. Checking costs a read of the file, less
        than writing it again, and only values stored before pay it.
        """
        size = sum(c.nbytes if isinstance(c, memoryview) else len(c) for c in chunks)
        self.write_stream(key, size, chunks)

    def _prepare(self, key: str) -> None:
        """Make the temporary folder (once) and the blob's folder before a write."""
        if not self._made:
            self._first_write()
        folder = key[:2]
        if folder not in self._made:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made.add(folder)

    def _write(self, key: str, target: Path, chunks: Iterable[Buffer]) -> None:
        """Write the chunks to a temporary file and rename it to `target` once all are
        written; the temporary file is removed when anything fails."""
        tmp = self.tmp / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as f:
                for piece in _pieces(chunks):
                    f.write(piece)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_encoded(self, encoded: Encoded) -> None:
        """Store an encoded value under its key, as `put` does; a large one whose key is not
        computed yet (`OVERLAP`) is hashed on another thread while this one writes it, and the
        key is then known (`encoded.key`).

        The bytes go to a temporary file in `tmp/` whose name is no key, renamed to the key's
        path only once every byte is written and hashed, so a failure or a kill never leaves a
        partial blob under a key (a killed writer's file is swept as any other, `_first_write`).
        When a blob is already under the key it is kept as `put` keeps it (checked, touched)
        and the temporary file is dropped: once the key is known mid-write, writing stops.
        """
        if encoded.hashed or encoded.size < OVERLAP:
            self.put(encoded.key, encoded.chunks)
            return
        if "tmp" not in self._made:
            self._first_write()
        tmp = self.tmp / f"new.{os.getpid()}.{threading.get_ident()}.tmp"
        hashing = _Hashing(list(_pieces(encoded.chunks)), encoded.size)
        try:
            finished = self._write_while_hashing(tmp, hashing)
            key = hashing.key()
        except BaseException:
            hashing.stop()
            tmp.unlink(missing_ok=True)
            raise
        encoded.learn_key(key)
        target = self.path(key)
        if not finished:  # a blob was there by the time the key was known: as `put` does
            tmp.unlink(missing_ok=True)
            self.write_stream(key, encoded.size, encoded.chunks)
            return
        if self._intact(key, target, encoded.size):
            try:
                os.utime(target)  # marked as put now, as `write_stream` marks it
            except FileNotFoundError:
                pass  # gc took it just now: ours goes in its place
            else:
                tmp.unlink()
                return
        try:
            self._prepare(key)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _write_while_hashing(self, tmp: Path, hashing: _Hashing) -> bool:
        """Write the pieces to `tmp` while `hashing` hashes them; False when the write stopped
        early because a blob was already under the key, known before the last piece."""
        checked = False
        with open(tmp, "wb") as f:
            for piece in hashing.pieces:
                if not checked and hashing.done.is_set():
                    checked = True
                    if self.path(hashing.key()).exists():
                        return False
                f.write(piece)
        return True

    def write_stream(self, key: str, size: int, chunks: Iterable[Buffer]) -> None:
        """Store a blob of `size` bytes given piece by piece, as `put` stores it: the pieces go
        to a temporary file as they come, which becomes the blob only once the last has come
        (an iterable that raises leaves nothing)."""
        target = self.path(key)
        if self._intact(key, target, size):
            # Marked as put now, so gc keeps it until the row naming it commits (gc.py); a
            # file gc took just now is written again.
            with suppress(FileNotFoundError):
                os.utime(target)
                return
        self._prepare(key)
        self._write(key, target, chunks)

    def read_stream(self, key: str, chunk_size: int) -> Generator[Buffer, None, None]:
        """The blob's bytes (its tag byte first) in pieces of at most `chunk_size`, read as
        they are asked for and checked against the key: BlobCorrupted after the last piece
        when they do not match, so a reader must keep nothing before the end."""
        blob = identity_blob(key)
        if blob is not None:
            yield blob
            return
        path = self.path(key)
        f, size = _open_blob(key, path)
        with f:
            hasher = blake3(max_threads=blake3.AUTO) if size >= LARGE else blake3()
            while chunk := f.read(chunk_size):
                hasher.update(chunk)
                yield chunk
        if hasher.hexdigest(length=len(key) // 2) != key:
            raise BlobCorrupted(key, location=path)

    def _intact(self, key: str, target: Path, size: int) -> bool:
        """True when the file under `key` holds the blob: `size` bytes that hash to the key."""
        try:
            if target.stat().st_size != size:
                return False
            for _ in self.read_stream(key, STREAM_CHUNK):  # hashed piece by piece
                pass
        except (OSError, BlobError):
            return False
        return True

    def _first_write(self) -> None:
        """Make the temporary folder, and remove what killed writers left there.

        Done once per object, before its first write: a folder holding only writes in flight is
        small, so sweeping it costs one listing, where a sweep of every blob folder would cost
        a listing of the whole store.
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        stale = time.time() - STALE_TMP_AGE
        with os.scandir(self.tmp) as entries:
            for entry in entries:
                try:
                    if entry.name.endswith(".tmp") and entry.stat().st_mtime < stale:
                        os.unlink(entry.path)
                except OSError:  # gone already (another sweeper), or not ours to remove
                    continue
        with self._lock:
            self._made.add("tmp")

    def get(self, key: str) -> tuple[int, Buffer]:
        """Read a blob, checking its content against its key."""
        found = read_identity(key)
        if found is not None:
            return found
        path = self.path(key)
        f, size = _open_blob(key, path)
        with f:
            tag = f.read(1)[0]
            size -= 1
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
        """The blob file's size (the blob's, for an identity key)."""
        blob = identity_blob(key)
        if blob is not None:
            return len(blob)
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key, location=self.path(key)) from None

    def keys(self) -> Iterator[str]:
        """The key of every blob file (temporary files and anything not named by a key are
        skipped)."""
        try:
            folders = [e for e in os.scandir(self.root) if len(e.name) == 2 and e.is_dir()]
        except FileNotFoundError:
            return
        for folder in folders:
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    key = folder.name + entry.name
                    if HEX_KEY.fullmatch(key):
                        yield key

    def delete(self, key: str, *, untouched_since: float) -> int:
        """Remove the blob file unless it was put (or `put` again) at or after
        `untouched_since`; the bytes freed.

        The file is first renamed into `tmp/`, then its time is read again: a writer's `put`
        that touched it before the rename shows there (and the file is put back), one after
        the rename finds no file and writes it anew. Checking and removing in place would
        leave a moment in which a touch is lost.
        """
        path = self.path(key)
        try:
            if path.stat().st_mtime >= untouched_since:
                return 0
            if "tmp" not in self._made:
                self._first_write()
            grave = self.tmp / f"{key}.{os.getpid()}.{threading.get_ident()}.gc.tmp"
            os.rename(path, grave)
        except FileNotFoundError:
            return 0
        stat = grave.stat()
        if stat.st_mtime >= untouched_since:
            with suppress(FileExistsError):  # a writer wrote it again meanwhile: same bytes
                os.link(grave, path)
            grave.unlink()
            return 0
        grave.unlink()
        return stat.st_size


def _pieces(chunks: Iterable[Buffer]) -> Iterator[Buffer]:
    """The chunks cut into pieces of at most `PIECE` bytes (views: nothing copied)."""
    for chunk in chunks:
        view = memoryview(chunk)
        if view.nbytes <= PIECE:
            yield chunk
            continue
        view = view.cast("B")
        for start in range(0, view.nbytes, PIECE):
            yield view[start : start + PIECE]


class _Hashing:
    """The BLAKE3 key of `pieces`, computed on a thread of its own (blake3 releases the GIL and
    hashes on every core) while the caller writes the same pieces."""

    def __init__(self, pieces: list[Buffer], size: int) -> None:
        self.pieces = pieces
        self.done = threading.Event()
        self._hasher = new_hasher(size)
        self._key: str | None = None
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="aioflow-blob-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for piece in self.pieces:
                if self._stopped:
                    return
                self._hasher.update(piece)
            self._key = key_of(self._hasher)
        except BaseException as exc:  # handed to the writer, which raises it
            self._error = exc
        finally:
            self.done.set()

    def key(self) -> str:
        """The key, once every piece is hashed (waits for it)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._key is not None
        return self._key

    def stop(self) -> None:
        """Stop after the piece being hashed (the write failed) and wait for the thread."""
        self._stopped = True
        self._thread.join()


def _open_blob(key: str, path: Path) -> tuple[BufferedReader, int]:
    """The blob file under `key`, open, and its size; BlobNotFound when there is none,
    BlobCorrupted when it is empty (the tag byte is always there)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (the caller closes it)
    except FileNotFoundError:
        raise BlobNotFound(key, location=path) from None
    size = os.fstat(f.fileno()).st_size
    if not size:
        f.close()
        raise BlobCorrupted(key, location=path, problem="is empty: the store was damaged")
    return f, size


class MemoryBlobStore:
    """A BlobStore in a dict, for tests and throwaway runs."""

    location = "memory"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        #: When each blob was last put (`time.time()`), for `delete`.
        self.put_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def has(self, key: str) -> bool:
        """True when the key is in the dict, or holds the blob itself."""
        return key in self.blobs or identity_blob(key) is not None

    def put(self, key: str, chunks: tuple[Buffer, ...]) -> None:
        """Join the chunks and keep them (replacing a damaged blob under the same key)."""
        blob = b"".join(chunks)
        with self._lock:
            self.put_at[key] = time.time()
            if self.blobs.get(key) != blob:
                self.blobs[key] = blob

    def write_stream(self, key: str, size: int, chunks: Iterable[Buffer]) -> None:
        """Join the pieces and keep them (memory holds the blob anyway)."""
        self.put(key, (b"".join(chunks),))

    def read_stream(self, key: str, chunk_size: int) -> Generator[Buffer, None, None]:
        """The stored blob in pieces of at most `chunk_size`, verified before the first."""
        tag, payload = self.get(key)
        yield bytes((tag,))
        view = memoryview(payload)
        for start in range(0, len(view), chunk_size):
            yield view[start : start + chunk_size]

    def get(self, key: str) -> tuple[int, Buffer]:
        """Return the stored blob, verified."""
        found = read_identity(key)
        if found is not None:
            return found
        blob = self.blobs.get(key)
        if blob is None:
            raise BlobNotFound(key, location=self.location)
        payload = blob[1:]
        _verify(key, blob[0], payload, "memory")
        return blob[0], payload

    def size(self, key: str) -> int:
        """The stored blob's length."""
        blob = self.blobs.get(key) or identity_blob(key)
        if blob is None:
            raise BlobNotFound(key, location=self.location)
        return len(blob)

    def keys(self) -> Iterator[str]:
        """Every stored key."""
        with self._lock:
            return iter(list(self.blobs))

    def delete(self, key: str, *, untouched_since: float) -> int:
        """Remove the blob unless it was put at or after `untouched_since`; the bytes freed."""
        with self._lock:
            blob = self.blobs.get(key)
            if blob is None or self.put_at.get(key, 0.0) >= untouched_since:
                return 0
            del self.blobs[key]
            self.put_at.pop(key, None)
            return len(blob)


def put_encoded(blobs: BlobStore, encoded: Encoded) -> None:
    """Store an encoded value in any blob store under its key (`encoded.key` is known after).

    A file store hashes a large value while writing it (`FileBlobStore.put_encoded`). Any other
    store is given the key first: an object store names the object by it and uploads nothing
    when it is there already, which an upload to a temporary name and a copy would not save.
    A blob whose key is an identity key is stored nowhere: the key holds it.
    """
    if encoded.size <= IDENTITY_MAX and is_identity(encoded.key):  # (a large key: unread)
        return
    if isinstance(blobs, FileBlobStore):
        blobs.put_encoded(encoded)
    else:
        blobs.put(encoded.key, encoded.chunks)


__all__ = [
    "STREAM_CHUNK",
    "BlobStore",
    "FileBlobStore",
    "MemoryBlobStore",
    "put_encoded",
]
