"""Artifact encoding: values to tagged, content-addressed bytes and back.

A blob is one tag byte followed by a payload:

- ``M``: msgpack, for plain data whose types survive a round trip exactly (None, bool, int, float,
  str, bytes, and lists and dicts of those). msgpack is compact and language neutral.
- ``B``: a large ``bytes`` value, stored as is so that it is never copied while encoding.
- ``P``: pickle (protocol 5), for everything else: tuples, sets, objects.
- ``Q``: pickle with out-of-band buffers (large NumPy arrays and the like), laid out as
  ``count, len(pickle), pickle, (len(buffer), buffer)...`` so buffers are written and read without
  an intermediate copy.

The key of a blob is the BLAKE3 hash of its bytes (tag included), so equal values share one blob
and a damaged blob is detected when it is read. A large blob's key is computed when first asked
for, not by `encode`: a file store hashes the bytes while it writes them (`blobs.put_encoded`).
A blob of at most `IDENTITY_MAX` bytes (an int, a short string) gets an identity key instead: the
key is the blob itself (`keys.py`), so it is neither hashed nor stored anywhere.
"""

from __future__ import annotations

import io
import itertools
import pickle
import re
import struct
import threading
from typing import Any

import msgpack
from blake3 import blake3

from ..exceptions import ArtifactEncodingError
from .keys import IDENTITY_MAX, KEY_BYTES, identity_key
from .keys import read_identity as read_identity  # readers' one way back to (tag, payload)

TAG_MSGPACK = ord("M")
TAG_BYTES = ord("B")
TAG_PICKLE = ord("P")
TAG_PICKLE_OOB = ord("Q")

#: Values at least this large are hashed on several threads and kept out of band.
LARGE = 1 << 20
_U64 = struct.Struct("<Q")

Buffer = bytes | bytearray | memoryview


class Encoded:
    """One encoded value: its key, its bytes as a list of chunks, and what it was.

    `key` is a plain attribute: every artifact a task sets reads it a few times. Only a blob of
    `LARGE` bytes or more waits for its key (`UnhashedEncoded`).
    """

    __slots__ = ("chunks", "key", "size", "type_name")

    def __init__(self, key: str, chunks: tuple[Buffer, ...], size: int, type_name: str) -> None:
        #: The blob's content key (the BLAKE3 hash of its bytes, or for a blob of at most
        #: `IDENTITY_MAX` bytes its identity key).
        self.key = key
        self.chunks = chunks
        self.size = size
        self.type_name = type_name

    @property
    def hashed(self) -> bool:
        """True when the key is known, so reading `key` costs nothing."""
        return True

    def learn_key(self, key: str) -> None:
        """Record the key a store computed from exactly these chunks while writing them."""
        self.key = key

    def _known_key(self) -> str | None:
        return self.key

    def __repr__(self) -> str:
        return (
            f"Encoded(key={self._known_key()!r}, size={self.size}, "
            f"type_name={self.type_name!r}, chunks={len(self.chunks)})"
        )

    def tobytes(self) -> bytes:
        """The whole blob as one bytes object (copies; meant for small blobs)."""
        if len(self.chunks) == 1 and type(self.chunks[0]) is bytes:
            return self.chunks[0]
        return b"".join(self.chunks)


class UnhashedEncoded(Encoded):
    """A large encoded value, whose key is computed the first time `key` is read, unless a
    store learned it first (`learn_key`) by hashing the bytes as it wrote them: hashing 2 GB
    takes as long as writing them, and the two then overlap instead of following each other.
    """

    __slots__ = ("_key",)

    def __init__(self, chunks: tuple[Buffer, ...], size: int, type_name: str) -> None:
        self._key: str | None = None
        self.chunks = chunks
        self.size = size
        self.type_name = type_name

    @property  # (the base's attribute, computed when first read)
    def key(self) -> str:
        """The blob's content key, hashed now if not yet."""
        key = self._key
        if key is None:
            key = self._key = hash_chunks(self.chunks, self.size)
        return key

    @key.setter
    def key(self, key: str) -> None:
        self._key = key

    @property
    def hashed(self) -> bool:
        """True when the key is known, so reading `key` costs nothing."""
        return self._key is not None

    def _known_key(self) -> str | None:
        return self._key


def _refuse(obj: Any) -> Any:
    # msgpack calls this for any type it does not pack exactly; we then fall back to pickle.
    raise TypeError(type(obj).__name__)


#: The largest packed value after which the thread's packer that packed it is replaced.
PACKER_KEEPS = 1 << 20


class _Packers(threading.local):
    """This thread's msgpack packers: `msgpack.packb` builds a new Packer on every call, which
    costs more than packing a small value. A Packer is not thread-safe, hence one per thread."""

    def __init__(self) -> None:
        self.renew_artifact()
        self.renew_metadata()

    # A Packer keeps the buffer its largest value needed for good (each thread's, as long as
    # the thread lives: 84 MB after the list of a million item keys); the one that packed a
    # large value is replaced.

    def renew_artifact(self) -> None:
        """A new packer for artifacts."""
        self.artifact = msgpack.Packer(use_bin_type=True, strict_types=True, default=_refuse)

    def renew_metadata(self) -> None:
        """A new packer for aioflow's own metadata."""
        self.metadata = msgpack.Packer(use_bin_type=True)


_packers = _Packers()


#: msgpack's three bin headers, any of which a packed value holding bytes contains.
_BIN_MARKER = re.compile(b"[\xc4-\xc6]").search
#: Longer packed values are searched with `bytes.find`, which skips through memory faster.
_SCAN_BELOW = 4096


def _has_bin_marker(packed: bytes) -> bool:
    """True when `packed` may hold binary data: one of msgpack's bin headers occurs in it
    (a packed value with no bytes in it at all never has one).

    Not `b"\\xc4" in packed`: `bytes.__contains__` first tries its argument as an int, and the
    TypeError it formats and discards costs more than the search (3.11).
    """
    if len(packed) < _SCAN_BELOW:
        return _BIN_MARKER(packed) is not None
    return packed.find(b"\xc4") >= 0 or packed.find(b"\xc5") >= 0 or packed.find(b"\xc6") >= 0


_BYTES_LIKE = (bytearray, memoryview)


def _has_bytes_like(value: Any) -> bool:
    """True when `value` (which msgpack packed) holds a bytearray or memoryview anywhere.

    msgpack packs those as binary data that decodes as `bytes`, so such values are pickled
    instead to keep their type. Walks level by level with C-level iteration; no cycles are
    possible, as msgpack accepted the value.
    """
    level: list[Any] = [value]
    while level:
        types = set(map(type, level))
        if not types.isdisjoint(_BYTES_LIKE):
            return True
        if len(types) == 1:
            lists = level if list in types else []
            dicts = level if dict in types else []
        else:
            lists = [x for x in level if type(x) is list] if list in types else []
            dicts = [x for x in level if type(x) is dict] if dict in types else []
        level = list(itertools.chain.from_iterable(lists))
        level.extend(itertools.chain.from_iterable(dicts))
        level.extend(itertools.chain.from_iterable(map(dict.values, dicts)))
    return False


def new_hasher(size: int) -> blake3:
    """A BLAKE3 hasher for a blob of `size` bytes: on every core from `LARGE` bytes up."""
    return blake3(max_threads=blake3.AUTO) if size >= LARGE else blake3()


def key_of(hasher: blake3) -> str:
    """The content key of what `hasher` was given."""
    return hasher.hexdigest(length=KEY_BYTES)


def hash_chunks(chunks: tuple[Buffer, ...] | list[Buffer], size: int) -> str:
    """The content key of a blob given as chunks."""
    hasher = new_hasher(size)
    for chunk in chunks:
        hasher.update(chunk)
    return key_of(hasher)


def _encoded(chunks: tuple[Buffer, ...], type_name: str) -> Encoded:
    size = sum(len(c) if not isinstance(c, memoryview) else c.nbytes for c in chunks)
    if size <= IDENTITY_MAX:
        return _encoded_small(b"".join(chunks), type_name)
    # A large blob's key waits until it is asked for (see `UnhashedEncoded`).
    if size >= LARGE:
        return UnhashedEncoded(chunks, size, type_name)
    return Encoded(hash_chunks(chunks, size), chunks, size, type_name)


def _encoded_small(blob: bytes, type_name: str) -> Encoded:
    # The common case (one small bytes object) without the general path's loops.
    if len(blob) <= IDENTITY_MAX:
        return Encoded(identity_key(blob), (blob,), len(blob), type_name)
    return Encoded(blake3(blob).hexdigest(length=KEY_BYTES), (blob,), len(blob), type_name)


def blob_key(blob: bytes) -> str:
    """The key `encode` gives a whole blob (tag byte first): its identity key when it is at
    most `IDENTITY_MAX` bytes, else its BLAKE3 hash."""
    if len(blob) <= IDENTITY_MAX:
        return identity_key(blob)
    return hash_chunks((blob,), len(blob))


#: Types msgpack packs exactly that cannot hold a bytearray or memoryview (no search needed).
_SCALARS = frozenset({int, float, bool, str, type(None)})


def encode(value: Any) -> Encoded:
    """Encode `value`; raise ArtifactEncodingError (with the reason) when it cannot be stored."""
    kind = type(value)
    type_name = kind.__name__
    if kind is bytes and len(value) >= LARGE:
        return _encoded((b"B", value), type_name)
    try:
        packed = _packers.artifact.pack(value)
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        if len(packed) > PACKER_KEEPS:
            _packers.renew_artifact()
        if kind in _SCALARS or not (_has_bin_marker(packed) and _has_bytes_like(value)):
            blob = b"M" + packed
            if len(blob) < LARGE:
                return _encoded_small(blob, type_name)
            return _encoded((blob,), type_name)
    buffers: list[pickle.PickleBuffer] = []
    try:
        pickled = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except ArtifactEncodingError:
        raise
    except BaseException as exc:
        # BaseException too: a value's own pickling code (`__reduce__`, `__getstate__`) raising
        # SystemExit or KeyboardInterrupt is a value that cannot be stored, not a request to
        # stop the run (a real Ctrl-C reaches the run through its signal handling instead).
        raise ArtifactEncodingError(
            f"{type_name} cannot be pickled: {type(exc).__name__}: {exc}"
        ) from exc
    if not buffers:
        blob = b"P" + pickled
        if len(blob) < LARGE:
            return _encoded_small(blob, type_name)
        return _encoded((blob,), type_name)
    views = [b.raw() for b in buffers]
    chunks: list[Buffer] = [b"Q", _U64.pack(len(views)), _U64.pack(len(pickled)), pickled]
    for view in views:
        chunks.append(_U64.pack(view.nbytes))
        chunks.append(view)
    return _encoded(tuple(chunks), type_name)


def decode(tag: int, payload: Buffer) -> Any:
    """Decode a blob's payload (the bytes after its tag)."""
    if tag == TAG_MSGPACK:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    if tag == TAG_PICKLE:
        return pickle.loads(payload)
    if tag == TAG_BYTES:
        return payload if type(payload) is bytes else bytes(payload)
    if tag == TAG_PICKLE_OOB:
        view = memoryview(payload)
        if view.readonly:
            # Arrays rebuilt on read-only memory would be read-only; users may write to them.
            view = memoryview(bytearray(view))
        (count,) = _U64.unpack_from(view, 0)
        (plen,) = _U64.unpack_from(view, 8)
        pos = 16 + plen
        pickled = view[16:pos]
        buffers = []
        for _ in range(count):
            (blen,) = _U64.unpack_from(view, pos)
            pos += 8
            buffers.append(view[pos : pos + blen])
            pos += blen
        return pickle.loads(pickled, buffers=buffers)
    raise ValueError(f"unknown blob tag {tag!r}")


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every global: it builds only Python's own scalars and
    containers, so reading cannot call or import anything."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def decode_plain(tag: int, payload: Buffer) -> Any:
    """Decode a blob that should hold plain data (str, numbers, lists, dicts), running no code.

    For what aioflow reads without trusting the store (logs): msgpack, or a pickle naming no
    global (a log line msgpack cannot take, a lone surrogate, is pickled as a plain str). Any
    other blob raises ValueError: decoding it could import and call anything.
    """
    if tag == TAG_MSGPACK:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    if tag == TAG_PICKLE:
        try:
            return _NoGlobals(io.BytesIO(payload)).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise ValueError(f"it is not plain data ({exc})") from None
    raise ValueError(f"it is not plain data (a blob of kind {chr(tag)!r})")


def decode_blob(blob: Buffer) -> Any:
    """Decode a whole blob (tag byte included)."""
    view = memoryview(blob)
    return decode(view[0], view[1:])


def pack(value: Any) -> bytes:
    """msgpack for aioflow's own metadata (manifests, frames): plain data only."""
    packed: bytes = _packers.metadata.pack(value)
    if len(packed) > PACKER_KEEPS:
        _packers.renew_metadata()
    return packed


def unpack(data: Buffer) -> Any:
    """Inverse of `pack`."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
