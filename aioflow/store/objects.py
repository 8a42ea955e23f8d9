"""Blobs in object storage through obstore: S3 and S3-compatible servers, GCS, Azure, local
folders and memory, behind one BlobStore (`protocols.py`).

A blob is the object `<prefix>/ab/cdef...` (its key fanned out as in `blobs.py`). Content
addressing makes writes idempotent, so no write needs a lock or a read before it:

- A blob up to `CREATE_LIMIT` is one PUT with the backend's conditional create (S3's
  `If-None-Match: *`, GCS's generation match, ...): a blob that is there already is refused by
  the server, in the same round trip, and the refusal counts as success.
- A larger blob is first asked for (`HEAD`): re-running a flow whose 2 GB artifact did not change
  then uploads nothing, where a refused conditional PUT would have sent the 2 GB first. A blob
  that is absent goes up as a multipart upload of its chunks, never joined into one buffer;
  two writers racing on it upload the same bytes, so whichever lands last changes nothing.

Reads stream the object into one buffer of its size while hashing it, and check the hash
against the key (`BlobCorrupted` when it does not match). obstore's errors (a missing bucket,
refused credentials, an unreachable server) come out as `StoreError`s naming the URL and the
blob. The calls are obstore's synchronous ones: the runtime writes large blobs from worker
threads (a task's finish), and the client reads synchronously; obstore releases the GIL while
it waits on the network.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from typing import Any

from blake3 import blake3

from ..exceptions import BlobCorrupted, BlobNotFound, StoreError
from .keys import HEX_KEY, check_file_key, identity_blob, read_identity
from .serde import LARGE, Buffer

#: Blobs up to this size are written with a conditional create; larger ones are asked for
#: first and uploaded in parts (obstore's conditional put is a single request).
CREATE_LIMIT = 8 * 1024 * 1024
#: The size of one part of a multipart upload, and of the reads streamed from the server.
PART_SIZE = 8 * 1024 * 1024

#: Parts a streamed upload (`write_stream`) sends at once: it holds at most one more than this
#: in memory (plus the piece being read), whatever the blob's size.
STREAM_CONCURRENCY = 4

#: Where markers of blobs put again (`_touch`) and blobs being deleted (`delete`) live.
TOUCHED = "touched"
GRAVES = "graves"

#: The URL schemes obstore opens, and what the user should install for them.
SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "file", "memory", "http", "https")
EXTRA = "aioflow[cloud]"


def obstore_module() -> Any:
    """`obstore`, or StoreError naming the extra to install when it is not installed."""
    try:
        import obstore
        import obstore.exceptions
        import obstore.store
    except ImportError:
        raise StoreError(
            f"Blobs in object storage need obstore, which is not installed: pip install '{EXTRA}'."
        ) from None
    return obstore


def _nbytes(chunk: Buffer) -> int:
    return chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)


class ObjectBlobStore:
    """A BlobStore in an object store opened from a URL (`s3://bucket/prefix`, `memory://`...).

    Credentials come from the environment and the backend's usual chains (AWS_* variables and
    profiles, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*), never from aioflow's configuration.
    `options` are passed on to obstore's `from_url` (tests pass a retry configuration).
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.location = url
        obs = obstore_module()
        self._obs = obs
        if url.startswith("file://"):
            options.setdefault("mkdir", True)
        if url.startswith("memory:"):
            url = "memory:///"  # obstore's memory store takes no host or path
        try:
            self._store = obs.store.from_url(url, **options)
        except Exception as exc:
            raise StoreError(f"Cannot open the blob store {self.url}: {_reason(exc)}") from None
        self._exists = obs.exceptions.AlreadyExistsError
        #: Bytes sent in uploads by this object, for the benchmark and `store copy`'s count.
        self.uploaded = 0

    @staticmethod
    def path(key: str) -> str:
        """The object's path under the store's prefix (BlobError for anything but a content
        key: an identity key names no object)."""
        check_file_key(key)
        return f"{key[:2]}/{key[2:]}"

    def has(self, key: str) -> bool:
        """True when the object exists (one HEAD request), or its key holds it (none)."""
        if identity_blob(key) is not None:
            return True
        try:
            self._obs.head(self._store, self.path(key))
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._error(exc, key, "cannot be looked up") from None
        return True

    def put(self, key: str, chunks: tuple[Buffer, ...]) -> None:
        """Store the blob unless it is there (see the module's doc for how each size goes)."""
        size = sum(_nbytes(c) for c in chunks)
        if size > CREATE_LIMIT:
            self._put_multipart(key, size, chunks, {})
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            self._obs.put(self._store, self.path(key), data, mode="create")
        except self._exists:
            self._touch(key)
            return
        except Exception as exc:
            raise self._error(exc, key, "cannot be stored") from None
        self.uploaded += size

    def write_stream(self, key: str, size: int, chunks: Iterable[Buffer]) -> None:
        """Store a blob of `size` bytes given piece by piece, as `put` would: up to
        `CREATE_LIMIT` joined into one conditional create, above as a multipart upload fed by
        the pieces as they come: at most `STREAM_CONCURRENCY` + 1 parts of `PART_SIZE` are
        held at once. An iterable that raises aborts the upload, so nothing is stored."""
        if size <= CREATE_LIMIT:
            self.put(key, (b"".join(chunks),))
            return
        self._put_multipart(key, size, chunks, {"max_concurrency": STREAM_CONCURRENCY})

    def _put_multipart(
        self, key: str, size: int, chunks: Iterable[Buffer], options: dict[str, Any]
    ) -> None:
        """A blob above `CREATE_LIMIT`, unless it is there: a multipart upload of `chunks`
        (`options`: obstore's, such as how many parts go at once)."""
        if self.has(key):
            self._touch(key)
            return
        try:
            self._obs.put(
                self._store,
                self.path(key),
                iter(chunks),
                use_multipart=True,
                chunk_size=PART_SIZE,
                **options,
            )
        except StoreError:  # a piece that could not be read (a damaged source) says so itself
            raise
        except Exception as exc:
            raise self._error(exc, key, "cannot be stored") from None
        self.uploaded += size

    def read_stream(self, key: str, chunk_size: int) -> Generator[Buffer, None, None]:
        """The blob's bytes (its tag byte first) in pieces of about `chunk_size`, streamed
        from the server as they are asked for and checked against the key: BlobCorrupted
        after the last piece when they do not match, so a reader must keep nothing before
        the end."""
        blob = identity_blob(key)
        if blob is not None:
            yield blob
            return
        for _, piece in self._verified_pieces(key, chunk_size):
            yield piece

    def get(self, key: str) -> tuple[int, Buffer]:
        """(tag, payload), streamed into one buffer and checked against the key (or, for an
        identity key, read from the key: no request)."""
        found = read_identity(key)
        if found is not None:
            return found
        payload = bytearray()
        tag = -1
        filled = 0
        for size, view in self._verified_pieces(key, PART_SIZE):
            if tag < 0:
                payload = bytearray(size - 1)
                tag, view = view[0], view[1:]
            end = filled + len(view)
            if end > len(payload):
                raise BlobCorrupted(key, location=self._where(key), problem="grew as read")
            payload[filled:end] = view
            filled = end
        # One buffer, never copied again; writable, as out-of-band buffers must be (blobs.py).
        return tag, payload

    def _verified_pieces(
        self, key: str, chunk_size: int
    ) -> Generator[tuple[int, memoryview], None, None]:
        """(the object's size, a piece of it) as streamed from the server, hashed on the way:
        BlobCorrupted after the last piece when they are not `size` bytes hashing to `key`."""
        try:
            result = self._obs.get(self._store, self.path(key))
            size = result.meta["size"]
            if size == 0:
                raise BlobCorrupted(key, location=self._where(key), problem="is empty")
            hasher = blake3(max_threads=blake3.AUTO) if size >= LARGE else blake3()
            seen = 0
            for chunk in result.stream(min_chunk_size=chunk_size):
                view = memoryview(chunk)
                hasher.update(view)
                seen += len(view)
                yield size, view
        except (StoreError, KeyError):
            raise
        except FileNotFoundError:
            raise BlobNotFound(key, location=self._where(key)) from None
        except Exception as exc:
            raise self._error(exc, key, "cannot be read") from None
        if seen != size or hasher.hexdigest(length=len(key) // 2) != key:
            raise BlobCorrupted(key, location=self._where(key))

    def size(self, key: str) -> int:
        """The object's size in bytes (one HEAD request; none for an identity key)."""
        blob = identity_blob(key)
        if blob is not None:
            return len(blob)
        try:
            return int(self._obs.head(self._store, self.path(key))["size"])
        except FileNotFoundError:
            raise BlobNotFound(key, location=self._where(key)) from None
        except Exception as exc:
            raise self._error(exc, key, "cannot be looked up") from None

    def _touch(self, key: str) -> None:
        """Mark a blob that is there already as put now, for `delete` (an empty marker object:
        object stores cannot change an object's time without rewriting it)."""
        self._obs.put(self._store, f"{TOUCHED}/{key}", b"")

    def keys(self) -> Iterator[str]:
        """Every stored blob's key (a listing of the prefix; markers and graves skipped)."""
        try:
            for batch in self._obs.list(self._store):
                for meta in batch:
                    path = meta["path"]
                    if (
                        len(path) == 41
                        and path[2] == "/"
                        and HEX_KEY.fullmatch(path[:2] + path[3:])
                    ):
                        yield path[:2] + path[3:]
        except Exception as exc:
            raise StoreError(f"The blobs in {self.url} cannot be listed: {_reason(exc)}") from None

    def delete(self, key: str, *, untouched_since: float) -> int:
        """Remove the blob unless it was put (or marked as put) at or after `untouched_since`;
        the bytes freed.

        As `FileBlobStore.delete` renames into `tmp/` and looks again, the object is copied to
        `graves/` (a copy within the server), removed, and its marker read again: a writer that
        found it there before the removal has marked it by then, and it is copied back.
        """
        path = self.path(key)
        grave = f"{GRAVES}/{key}"
        try:
            try:
                meta = self._obs.head(self._store, path)
            except FileNotFoundError:
                return 0
            if max(meta["last_modified"].timestamp(), self._touched(key)) >= untouched_since:
                return 0
            self._obs.copy(self._store, path, grave)
            self._obs.delete(self._store, path)
            if self._touched(key) >= untouched_since:
                self._obs.copy(self._store, grave, path)
                self._obs.delete(self._store, grave)
                return 0
            self._obs.delete(self._store, grave)
            self._obs.delete(self._store, f"{TOUCHED}/{key}")
        except Exception as exc:
            raise self._error(exc, key, "cannot be deleted") from None
        return int(meta["size"])

    def _touched(self, key: str) -> float:
        """When the blob was last marked as put (0: never)."""
        try:
            return float(
                self._obs.head(self._store, f"{TOUCHED}/{key}")["last_modified"].timestamp()
            )
        except FileNotFoundError:
            return 0.0

    def check(self) -> str:
        """Reach the store with one listing request; a one-line description, or StoreError."""
        try:
            page = self._obs.list(self._store, chunk_size=1)
            next(iter(page), None)
        except Exception as exc:
            raise StoreError(
                f"The blob store {self.url} cannot be reached: {_reason(exc)}"
            ) from None
        return f"{self.url} (reachable)"

    def _where(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{self.path(key)}"

    def _error(self, exc: BaseException, key: str, what: str) -> StoreError:
        """One StoreError naming the blob, its URL and the backend's reason."""
        return StoreError(f"Blob {key} at {self._where(key)} {what}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The backend's reason in one line: what the server's error code says, or the first line."""
    text = str(exc)
    for code, reason in _CODES.items():
        if code in text:
            return reason
    if isinstance(exc, PermissionError) or type(exc).__name__ in (
        "PermissionDeniedError",
        "UnauthenticatedError",
    ):
        return "access denied (check the credentials in the environment)"
    if "error sending request" in text or "Connection refused" in text:
        return "the server cannot be reached (check the endpoint and the network)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]


#: Server error codes found in obstore's messages, and what they mean to a user.
_CODES = {
    "NoSuchBucket": "the bucket does not exist",
    "ContainerNotFound": "the container does not exist",
    "InvalidAccessKeyId": "the access key is not known to the server (check AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "the secret key is wrong (check AWS_SECRET_ACCESS_KEY)",
    "AccessDenied": "access denied (check the credentials in the environment)",
}


__all__ = ["CREATE_LIMIT", "EXTRA", "PART_SIZE", "SCHEMES", "ObjectBlobStore", "obstore_module"]
