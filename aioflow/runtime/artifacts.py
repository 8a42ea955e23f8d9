"""Which attributes of a flow are artifacts, and turning them into blobs at a step's end.

Metaflow's rules: every instance attribute is an artifact except dunder names, functions and
methods (silently skipped). Single-underscore and name-mangled names are
stored but hidden by the client. An attribute that was never read or set is not in `__dict__`
and keeps its parent's key without being decoded, hashed or copied.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from types import FunctionType, MethodType
from typing import Any

from ..exceptions import ArtifactEncodingError, StoreFull
from ..store.keys import IDENTITY_MAX, is_identity
from ..store.metadata import SMALL
from ..store.serde import Encoded, encode

#: Receives a blob too large for the database; must store it (once) under its key.
LargeBlobSink = Callable[[Encoded], None]


def is_artifact(name: str, value: Any) -> bool:
    """True when an instance attribute is persisted as an artifact.

    As in Metaflow, functions, lambdas and bound methods are skipped, while other callables
    (classes, `functools.partial`, objects with `__call__`) are stored.
    """
    return not name.startswith("__") and not isinstance(value, (FunctionType, MethodType))


def encode_artifact(name: str, value: Any, step: str) -> Encoded:
    """Encode one artifact; the error names the artifact and the step."""
    try:
        return encode(value)
    except ArtifactEncodingError as exc:
        raise _cannot_store(exc, name, step) from exc.__cause__


def _cannot_store(exc: ArtifactEncodingError, name: str, step: str) -> ArtifactEncodingError:
    return ArtifactEncodingError(
        f"Artifact '{name}' set in step *{step}* cannot be stored: {exc.message}",
        artifact=name,
        step=step,
    )


def store_encoded(encoded: Encoded, small: list[tuple[str, bytes]], large: LargeBlobSink) -> None:
    """Route a blob to the database list (small) or the large-blob sink; one whose key is an
    identity key goes nowhere: the key holds it (`store/keys.py`)."""
    if encoded.size <= IDENTITY_MAX and is_identity(encoded.key):
        return
    if encoded.size <= SMALL:
        small.append((encoded.key, encoded.tobytes()))
    else:
        large(encoded)


def snapshot(
    attributes: dict[str, Any],
    inherited: dict[str, str],
    step: str,
    small: list[tuple[str, bytes]],
    large: LargeBlobSink,
    *,
    skip_unencodable: bool = False,
    readonly: Collection[str] = (),
) -> dict[str, str]:
    """The task's manifest: `inherited` updated with every artifact in `attributes`.

    New blobs are appended to `small` or handed to `large`. Returns `inherited` itself when no
    key changed, so untouched manifests are shared, not copied. With `skip_unencodable` (used
    when the step already failed) values that cannot be encoded are left out instead of raising.
    Names in `readonly` (parameters, class-level constants) are never stored by a task: as in
    Metaflow, an in-place change to one (`self.SETTINGS["mode"] = "slow"`) lasts for the rest
    of the step only, and the next step reads the run's value again.
    """
    manifest: dict[str, str] | None = None  # a copy of `inherited`, made at the first change
    for name, value in attributes.items():
        if name in readonly or not is_artifact(name, value):
            continue
        try:
            encoded = encode_artifact(name, value, step)
        except ArtifactEncodingError:
            if skip_unencodable:
                continue
            raise
        # A new name's value is stored without hashing it first (the store hashes a large
        # one while writing it); one replacing an inherited value is hashed first, so a value
        # read and left as it was costs a hash, not a write.
        old = inherited.get(name)
        if old is not None and old == encoded.key:
            continue
        try:
            store_encoded(encoded, small, large)
        except StoreFull as exc:
            raise exc.naming(artifact=name, step=step) from exc
        if manifest is None:
            manifest = dict(inherited)
        manifest[name] = encoded.key
    return inherited if manifest is None else manifest


def encode_values(
    values: Iterable[Any],
    what: str,
    step: str,
    small: list[tuple[str, bytes]],
    large: LargeBlobSink,
) -> list[str]:
    """Store each value as its own blob (foreach items); return their keys in order."""
    keys = []
    for i, value in enumerate(values):
        try:  # (not encode_artifact: an item's name is made only for an error, not per item)
            encoded = encode(value)
        except ArtifactEncodingError as exc:
            raise _cannot_store(exc, f"{what}[{i}]", step) from exc.__cause__
        try:
            store_encoded(encoded, small, large)
        except StoreFull as exc:
            raise exc.naming(artifact=f"{what}[{i}]", step=step) from exc
        keys.append(encoded.key)
    return keys
