"""The reference orchestrator's flows and codec: what `reference_orchestrator.py` runs and how
it turns values into blobs and rows, as aioflow does.

A blob is a tag byte and the value's bytes (`M` + msgpack when msgpack keeps the value's types,
else `P` + pickle), keyed by the first 20 bytes of its BLAKE3 hash in hex, or, when it is at most
`IDENTITY_MAX` bytes, by an identity key: "=" and the blob in unpadded base64url, stored nowhere
and read from the key itself. aioflow's `store/serde.py` and `store/keys.py` do the same, so
equal values give equal keys in both stores. Rows' packed
fields (frames, parents, manifests, transitions, tags, the graph) are plain msgpack.

The step bodies are those of `benchmarks/floor_flows/`, written against `Task`: `self.input`,
`self.next(...)`, artifacts as attributes. `graph_description` is the graph as aioflow stores it
with a run (`FlowGraph.to_dict`'s keys), naming this file's functions and lines.
"""

from __future__ import annotations

import asyncio
import base64
import pickle
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from blake3 import blake3


class _Packers(threading.local):
    def __init__(self) -> None:
        self.value = msgpack.Packer(use_bin_type=True, strict_types=True)
        self.meta = msgpack.Packer(use_bin_type=True)


_packers = _Packers()


#: The longest blob whose key is the blob itself (aioflow's `store/keys.py`).
IDENTITY_MAX = 29


def encode(value: Any) -> tuple[str, bytes]:
    """(key, blob) of a value: msgpack when its types survive, else pickle (aioflow's tags)."""
    try:
        blob = b"M" + _packers.value.pack(value)
    except (TypeError, ValueError, OverflowError):
        blob = b"P" + pickle.dumps(value, protocol=5)
    if len(blob) <= IDENTITY_MAX:
        return "=" + base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii"), blob
    return blake3(blob).hexdigest(length=20), blob


def stored(key: str) -> bool:
    """True when the blob of `key` is stored (not held by its key)."""
    return key[0] != "="


def blob_of(key: str, cache: dict[str, bytes]) -> bytes:
    """The blob of `key`: from the key itself, or from the writer's cache."""
    if key[0] == "=":
        return base64.urlsafe_b64decode(key[1:] + "=" * (-(len(key) - 1) % 4))
    return cache[key]


def pack(value: Any) -> bytes:
    return _packers.meta.pack(value)


def decode(blob: bytes) -> Any:
    if blob[0] == 77:  # "M"
        return msgpack.unpackb(memoryview(blob)[1:], raw=False, strict_map_key=False)
    return pickle.loads(memoryview(blob)[1:])


class Task:
    """What a step body sees as `self`: its attributes are the artifacts."""

    __slots__ = ("__dict__", "_blobs", "_item", "_next")

    @property
    def input(self) -> Any:
        """The foreach item, read from its blob when asked for (an empty step never is)."""
        return decode(blob_of(self._item, self._blobs))

    def next(self, target: str, foreach: str | None = None) -> None:
        self._next = ((target,), foreach)


class Input:
    """One input of a join: its artifacts read from the blobs its manifest names."""

    __slots__ = ("_cache", "_manifest")

    def __init__(self, manifest: dict[str, str], cache: dict[str, bytes]) -> None:
        self._manifest, self._cache = manifest, cache

    def __getattr__(self, name: str) -> Any:
        return decode(blob_of(self._manifest[name], self._cache))


# -- the flows: the bodies of benchmarks/floor_flows/, one set per case -------------------------


def start(self: Task) -> None:
    self.items = list(range(self.n))
    self.next("work", foreach="items")


def work_artifact(self: Task) -> None:
    self.x = -1 - self.input  # a value no item has: every task stores a new blob
    self.next("join")


async def work_artifact_async(self: Task) -> None:
    self.x = -1 - self.input
    self.next("join")


def work_empty(self: Task) -> None:
    self.next("join")


def join_sum(self: Task, inputs: list[Input]) -> None:
    self.total = sum(i.x for i in inputs)
    self.next("end")


def join_count(self: Task, inputs: list[Input]) -> None:
    self.count = len(inputs)
    self.next("end")


def end(self: Task) -> None:
    pass


CASES: dict[str, tuple[str, dict[str, Callable[..., Any]]]] = {
    "sync": ("FloorSyncFlow",
             {"start": start, "work": work_artifact, "join": join_sum, "end": end}),
    "async": ("FloorAsyncFlow",
              {"start": start, "work": work_artifact_async, "join": join_sum, "end": end}),
    "empty": ("FloorEmptyFlow",
              {"start": start, "work": work_empty, "join": join_count, "end": end}),
}  # fmt: skip
_SHAPE = {"start": ("foreach", ["work"], []), "work": ("linear", ["join"], ["start"]),
          "join": ("join", ["end"], ["work"]), "end": ("end", [], ["join"])}  # fmt: skip


def graph_description(flow: str, steps: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    """The graph as aioflow stores it with a run (`FlowGraph.to_dict`'s keys and values)."""
    described = {}
    for name, (kind, out, into) in _SHAPE.items():
        code = steps[name].__code__
        described[name] = {
            "type": kind, "line": code.co_firstlineno, "file": code.co_filename,
            "doc": None, "next": out, "in": into,
            "foreach": "items" if name == "start" else None, "condition": None, "cases": None,
            "matching_join": "join" if name == "start" else None,
            "is_async": asyncio.iscoroutinefunction(steps[name]), "decorators": [],
        }  # fmt: skip
    return {"name": flow, "doc": None, "file": __file__, "steps": described}


def aioflow_version() -> str:
    """aioflow's version, as its system tag says it, read from its file: importing aioflow's
    package to learn it would load all of aioflow."""
    text = (Path(__file__).resolve().parents[1] / "aioflow" / "_version.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', text)
    assert match is not None
    return match.group(1)
