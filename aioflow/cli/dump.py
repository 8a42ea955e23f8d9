"""What `aioflow dump` prints: each artifact of a task with its stored size, type and value.

    aioflow dump MyFlow/3/start/1 --max-value-size 40

    items [size: 13 type: list] = ['a', 'b', 'c']
    name [size: 7 type: str] = 'MyFlow'

One line per artifact, sorted by name, as Metaflow's `dump`: `name [size: N type: T] = value`,
where N is the stored size in bytes and the value is a `repr` cut to `max_value_size`
characters (containers are abbreviated as they are rendered, so a huge list costs no more than
a short one). Values stored in more than LOAD_LIMIT bytes are not loaded: their type is read
from the first bytes of the blob instead.
"""

from __future__ import annotations

import io
import pickletools
import reprlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..client import Task
from ..client.tags import displayable
from ..exceptions import BlobError, BlobNotFound
from ..store import FileBlobStore, Store
from ..store.serde import TAG_BYTES, TAG_MSGPACK, TAG_PICKLE, TAG_PICKLE_OOB

#: Values stored in more bytes than this are described without being loaded.
LOAD_LIMIT = 16 * 1024 * 1024
#: How many leading bytes of a large blob are read to tell its type.
_PEEK = 64 * 1024

# msgpack's first byte -> the Python type it decodes to (see the msgpack spec's formats).
_MSGPACK_RANGES = [
    (0x00, 0x7F, "int"), (0x80, 0x8F, "dict"), (0x90, 0x9F, "list"), (0xA0, 0xBF, "str"),
    (0xC0, 0xC0, "NoneType"), (0xC2, 0xC3, "bool"), (0xC4, 0xC6, "bytes"),
    (0xCA, 0xCB, "float"), (0xCC, 0xD3, "int"), (0xD9, 0xDB, "str"), (0xDC, 0xDD, "list"),
    (0xDE, 0xDF, "dict"), (0xE0, 0xFF, "int"),
]  # fmt: skip

# Pickle globals that rebuild an object of another type than their own name says.
_REBUILDERS = {
    "copyreg._reconstructor": None,  # the class follows as the next global
    "copyreg.__newobj__": None,
    "numpy.core.multiarray._reconstruct": "numpy.ndarray",
    "numpy._core.multiarray._reconstruct": "numpy.ndarray",
    "numpy.core.numeric._frombuffer": "numpy.ndarray",
    "numpy._core.numeric._frombuffer": "numpy.ndarray",
}
_CONTAINER_OPS = {
    "EMPTY_DICT": "dict",
    "EMPTY_LIST": "list",
    "EMPTY_SET": "set",
    "EMPTY_TUPLE": "tuple",
    "FROZENSET": "frozenset",
}
_SKIPPED_OPS = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
# Opcodes pushing one value of a known type: the pickled value, when STOP comes next.
_SCALAR_OPS = {
    "BININT": "int", "BININT1": "int", "BININT2": "int", "LONG1": "int", "LONG4": "int",
    "BINFLOAT": "float", "NONE": "NoneType", "NEWTRUE": "bool", "NEWFALSE": "bool",
    "BINBYTES": "bytes", "SHORT_BINBYTES": "bytes", "BINBYTES8": "bytes",
    "BYTEARRAY8": "bytearray",
}  # fmt: skip


@dataclass(frozen=True)
class ArtifactSummary:
    """One artifact as `dump` shows it: name, stored size, type, and its value's text."""

    name: str
    size: int
    type_name: str
    value: str | None

    def line(self) -> str:
        """`name [size: N type: T] = value` (without ` = value` when no value is shown)."""
        # Names and reprs come from the flow: escaped, so none can spoof lines or the terminal.
        head = f"{displayable(self.name)} [size: {self.size} type: {displayable(self.type_name)}]"
        return head if self.value is None else f"{head} = {displayable(self.value)}"


def type_name(value: Any) -> str:
    """`int`, `list`, ... for builtins; `module.Class` for anything else."""
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def short_repr(value: Any, max_chars: int) -> str:
    """`repr(value)` of at most `max_chars` characters (then `...`), abbreviated as it goes."""
    shortener = reprlib.Repr()
    shortener.maxlevel = 4
    shortener.maxstring = shortener.maxother = shortener.maxlong = max(max_chars, 8)
    for name in ("maxlist", "maxtuple", "maxset", "maxfrozenset", "maxdict", "maxdeque"):
        setattr(shortener, name, max(6, min(max_chars // 2, 1000)))
    try:
        text = shortener.repr(value)
    except Exception as exc:  # a broken __repr__ must not stop the dump
        text = f"<repr failed: {type(exc).__name__}: {exc}>"
    return text if len(text) <= max_chars else text[:max_chars] + "..."


def _msgpack_type(first: int) -> str:
    for low, high, name in _MSGPACK_RANGES:
        if low <= first <= high:
            return name
    return "object"


def _pickle_type(data: bytes) -> str:
    """The type of a pickled value, from the first opcodes of its pickle (best effort)."""
    strings: list[str] = []
    scalar: str | None = None
    resolve_next = False
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            name = op.name
            if name in _SKIPPED_OPS:
                continue
            if scalar is not None:
                return scalar if name == "STOP" else "object"
            if isinstance(arg, str) and "UNICODE" in name:
                strings.append(arg)
                continue
            if not strings and not resolve_next and name in _SCALAR_OPS:
                scalar = _SCALAR_OPS[name]
                continue
            if name in ("STACK_GLOBAL", "GLOBAL"):
                found = ".".join(strings[-2:]) if name == "STACK_GLOBAL" else str(arg)
                found = found.replace(" ", ".")
                strings.clear()
                if found in _REBUILDERS and _REBUILDERS[found] is None:
                    resolve_next = True
                    continue
                return _REBUILDERS.get(found) or found.removeprefix("builtins.")
            if name == "STOP" and strings:
                return "str"
            if not resolve_next and name in _CONTAINER_OPS:
                return _CONTAINER_OPS[name]
            if not resolve_next:
                break
    except (ValueError, EOFError, struct.error):
        pass
    return "object"


def peek_type(store: Store, key: str) -> str:
    """The type of a stored value, read from the first bytes of its blob (not loaded)."""
    blobs = store.blobs
    small = store.db.get_blob(key)
    if small is not None:
        head = small[:_PEEK]
    elif isinstance(blobs, FileBlobStore):
        path = blobs.path(key)
        try:
            with open(path, "rb") as f:
                head = f.read(_PEEK)
        except FileNotFoundError:
            raise BlobNotFound(key, location=path) from None
    else:
        tag, payload = store.read_blob(key)
        head = bytes((tag,)) + bytes(memoryview(payload)[:_PEEK])
    if not head:
        return "object"
    tag, body = head[0], head[1:]
    if tag == TAG_BYTES:
        return "bytes"
    if tag == TAG_MSGPACK:
        return _msgpack_type(body[0]) if body else "object"
    if tag == TAG_PICKLE:
        return _pickle_type(body)
    if tag == TAG_PICKLE_OOB and len(body) >= 16:
        return _pickle_type(body[16:])  # after the buffer count and the pickle's length
    return "object"


def summarize(
    store: Store, name: str, key: str, max_value_size: int, pathspec: str | None = None
) -> ArtifactSummary:
    """Describe one artifact; its value is shown unless `max_value_size` is 0.

    A missing or damaged blob raises its BlobError naming the artifact and the task
    (`pathspec`), whichever of the reads below finds it.
    """
    try:
        size = store.blob_size(key)
        if size > LOAD_LIMIT:
            value = None if max_value_size == 0 else f"<not loaded: {size} bytes stored>"
            return ArtifactSummary(name, size, peek_type(store, key), value)
        loaded = store.load(key)
    except BlobError as exc:
        raise exc.in_context(artifact=name, pathspec=pathspec) from None
    shown = None if max_value_size == 0 else short_repr(loaded, max_value_size)
    return ArtifactSummary(name, size, type_name(loaded), shown)


def dump_task(
    task: Task,
    *,
    private: bool = False,
    include: Iterable[str] = (),
    max_value_size: int = 1000,
) -> list[ArtifactSummary]:
    """The artifacts of a task, sorted by name.

    Private (`_name`) artifacts are left out unless `private`, or unless `include` names them;
    a non-empty `include` keeps only the artifacts it names.
    """
    wanted = set(include)
    rows = []
    for name, key in sorted(task.manifest.items()):
        if wanted and name not in wanted:
            continue
        if name.startswith("_") and not private and name not in wanted:
            continue
        rows.append(summarize(task._store, name, key, max_value_size, task.pathspec))
    return rows


__all__ = [
    "LOAD_LIMIT",
    "ArtifactSummary",
    "dump_task",
    "peek_type",
    "short_repr",
    "summarize",
    "type_name",
]
