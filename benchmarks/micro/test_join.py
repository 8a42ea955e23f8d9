"""A join over 1,000 inputs: reading one artifact from each, and merge_artifacts over all of them.

The join's flow instance and its inputs are built as the runtime builds them (`TaskState`,
`InputView`), over blobs held in a dict, so only the join's own work is measured.
"""

from __future__ import annotations

from typing import Any

from aioflow import FlowSpec, step
from aioflow.flowspec import TaskState
from aioflow.graph import FlowGraph
from aioflow.inputs import Inputs, JoinInput
from aioflow.store.serde import decode, encode

WIDTH = 1000
SHARED = 20  # artifacts every input inherited unchanged from before the split


class JoinFlow(FlowSpec):
    """start -> work x N -> join -> end (only the graph is used)."""

    @step
    def start(self):
        self.items = []
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def _world() -> tuple[dict[str, bytes], dict[str, str], list[dict[str, str]]]:
    """Blobs by key, the run's base manifest, and each input's manifest."""
    blobs: dict[str, bytes] = {}

    def put(value: Any) -> str:
        encoded = encode(value)
        blobs[encoded.key] = encoded.tobytes()
        return encoded.key

    shared = {f"shared{i}": put(f"value {i}") for i in range(SHARED)}
    manifests = [{**shared, "x": put(i)} for i in range(WIDTH)]
    return blobs, {"name": put("JoinFlow")}, manifests


BLOBS, BASE, MANIFESTS = _world()
NODE = FlowGraph(JoinFlow)["join"]


def _load(key: str) -> Any:
    blob = BLOBS[key]
    return decode(blob[0], memoryview(blob)[1:])


def _join_task() -> tuple[FlowSpec, Inputs]:
    state = TaskState(node=NODE, manifest=dict(BASE), load=_load, readonly=frozenset())
    arrivals = [JoinInput.of("work", i + 2, m, ()) for i, m in enumerate(MANIFESTS)]
    return JoinFlow._for_task(state), Inputs(arrivals, _load)


def test_join_reads_1000_inputs(benchmark):
    """Build the join's inputs and sum one artifact over all of them (decoding each)."""

    def join():
        _, inputs = _join_task()
        return sum(i.x for i in inputs)

    assert benchmark(join) == WIDTH * (WIDTH - 1) // 2
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["us_per_input"] = benchmark.stats.stats.median / WIDTH * 1e6


def test_merge_artifacts_1000_inputs(benchmark):
    """merge_artifacts over 1,000 inputs of 21 artifacts each (x differs, so it is excluded)."""

    def merge(flow, inputs):
        flow.merge_artifacts(inputs, exclude=["x"])
        return flow

    flow = benchmark.pedantic(merge, setup=lambda: (_join_task(), {}), rounds=50, warmup_rounds=2)
    assert flow.shared0 == "value 0"
