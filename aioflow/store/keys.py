"""Blob keys: what a key is, and identity keys, whose key is the blob itself.

A blob's key is normally its content hash: the BLAKE3 digest of its bytes (tag byte included),
`KEY_BYTES` bytes as 40 lowercase hex digits. A blob of at most `IDENTITY_MAX` bytes gets an
*identity key* instead (IPFS's identity multihash is the same idea): `IDENTITY_PREFIX` followed
by the blob's bytes in unpadded base64url. The key then holds the content, so:

- equal values still get equal keys (content addressing and deduplication hold);
- no hash is computed, and the blob is never written to any store: a foreach of a million
  small items and small artifacts would otherwise add two rows per task to the blobs table, at
  random places in its B-tree, and two entries per task to the run's cache of small blobs;
- every reader decodes such a key itself (`identity_blob`), before looking in any store.

`IDENTITY_MAX` is 29 so that an identity key is never longer than a hash key (1 + 39 chars),
and its prefix is no hex digit, so the two kinds never collide. Both are part of the store's
format: changing either would give old values new keys.

Keys come from the metadata database and a hex key becomes a file or object name, so every key
read from it is checked (`check_key`); only a hex key may name a file (`check_file_key`).
"""

from __future__ import annotations

import binascii
import re

from blake3 import blake3

from ..exceptions import BlobError

#: Bytes of a BLAKE3 content key (40 hex digits).
KEY_BYTES = 20
#: The longest blob, tag byte included, whose key is the blob itself.
IDENTITY_MAX = 29
#: What starts an identity key: no hex digit, and no base64url character either.
IDENTITY_PREFIX = "="

#: A content key: a hex BLAKE3 digest.
HEX_KEY = re.compile(r"[0-9a-f]{40}")
#: An identity key: the prefix and the base64url of 1 to `IDENTITY_MAX` bytes (no padding).
IDENTITY_KEY = re.compile(r"=[A-Za-z0-9_-]{2,39}")

_TO_URL = bytes.maketrans(b"+/", b"-_")
#: (bytes.translate: a str's translate looks each character up in a dict)
_FROM_URL = bytes.maketrans(b"-_", b"+/")


def identity_key(blob: bytes) -> str:
    """The identity key of a whole blob of at most `IDENTITY_MAX` bytes (not checked here)."""
    text = binascii.b2a_base64(blob, newline=False).translate(_TO_URL).rstrip(b"=")
    return IDENTITY_PREFIX + text.decode("ascii")


def is_identity(key: str) -> bool:
    """True when `key` is an identity key (the blob is in the key, in no store)."""
    return key[:1] == IDENTITY_PREFIX


def identity_blob(key: str) -> bytes | None:
    """The whole blob (tag byte first) an identity key holds; None for any other key.

    BlobError when `key` starts as an identity key but is not one (a damaged database): the
    base64url alphabet only, of a whole number of bytes. Every task reading its foreach item
    comes here, so nothing more is checked: the unused low bits of the last character are
    ignored, which only a key `identity_key` did not write could set.
    """
    if key[:1] != IDENTITY_PREFIX:
        return None
    if not IDENTITY_KEY.fullmatch(key):
        raise _not_a_key(key)
    try:
        # Padding beyond what is missing is ignored; a length no bytes have raises.
        return binascii.a2b_base64(key[1:].encode("ascii").translate(_FROM_URL) + b"==")
    except binascii.Error:
        raise _not_a_key(key) from None


def read_identity(key: str) -> tuple[int, bytes] | None:
    """(tag, payload) of the blob an identity key holds; None for any other key. (The payload
    is a copy: at most 28 bytes cost less to copy than a memoryview and its slice to make.)"""
    blob = identity_blob(key)
    if blob is None:
        return None
    return blob[0], blob[1:]


def content_hash(key: str) -> str:
    """The BLAKE3 hex key of the blob `key` names: `key` itself unless it is an identity key,
    whose blob is hashed now (what the key would be without identity keys)."""
    blob = identity_blob(key)
    if blob is None:
        return key
    return blake3(blob).hexdigest(length=KEY_BYTES)


def _not_a_key(key: object) -> BlobError:
    return BlobError(
        ascii(key),
        problem=f"is not a blob key (40 hex digits, or {IDENTITY_PREFIX!r} and up to 39 "
        "base64url characters): the metadata database is damaged or was tampered with",
    )


def check_key(key: str) -> str:
    """Return `key` when it is a blob key of either kind; raise BlobError for anything else.

    Keys come from the metadata database and become file names: a row holding `../../x` must
    not make aioflow read (or write) a file outside the store.
    """
    if type(key) is not str or not (HEX_KEY.fullmatch(key) or IDENTITY_KEY.fullmatch(key)):
        raise _not_a_key(key)
    return key


def check_file_key(key: str) -> str:
    """Return `key` when it is a content (hex) key, the only kind that names a file or an object;
    raise BlobError for anything else, an identity key included (it is stored nowhere)."""
    if type(key) is not str or not HEX_KEY.fullmatch(key):
        raise BlobError(
            ascii(key),
            problem="is not a blob key (40 hex digits): the metadata database is damaged or "
            "was tampered with",
        )
    return key


__all__ = [
    "HEX_KEY",
    "IDENTITY_KEY",
    "IDENTITY_MAX",
    "IDENTITY_PREFIX",
    "KEY_BYTES",
    "check_file_key",
    "check_key",
    "content_hash",
    "identity_blob",
    "identity_key",
    "is_identity",
    "read_identity",
]
