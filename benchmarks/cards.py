"""What cards cost a task (issue 17): rendering and storing a default card, and nothing
without @card.

    python -m benchmarks.cards [--n 300] [--repeats 3] [--quick]

1. A foreach of N tasks, each setting a few small artifacts, run in a store folder without
   cards and with `--with card` (a default card per task): the per-task difference is what a
   default card costs a task, rendered (metadata, parameters, artifact previews, the DAG as
   SVG, the step's code) and stored (its page as a blob, its record in SQLite). Target: under
   5 ms. Rendering alone (`TaskCards.render`, no store) is timed apart.
2. A run without @card pays only for looking up its step's cards (a dict lookup when the task
   is made, a None check when it ends): timed directly, per task, beside the per-task time of
   the same foreach, so its share shows. Target: nothing measurable.

Medians of `--repeats` runs are reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit
from pathlib import Path

from aioflow import FlowSpec, Parameter, run_flow_sync, step


class SmallArtifactsFlow(FlowSpec):
    n = Parameter("n", default=1)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input
        self.label = f"item {self.input}"
        self.values = [self.input, self.input * 2, self.input * 3]
        self.settings = {"rate": 0.1, "name": "small"}
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


def _run_seconds(n: int, with_cards: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        extra = ["card"] if with_cards else []
        started = time.perf_counter()
        run_flow_sync(
            SmallArtifactsFlow,
            root=Path(folder) / "store",
            quiet=True,
            with_decorators=extra,
            max_num_splits=n + 1,
            n=n,
        )
        return time.perf_counter() - started


def per_task_ms(n: int, repeats: int, with_cards: bool) -> float:
    """Median per-task time of the foreach, `(time(n) - time(1)) / (n - 1)`, in ms."""
    _run_seconds(2, with_cards)  # warm: imports, the graph's lint, the card modules
    samples = []
    for _ in range(repeats):
        one = _run_seconds(1, with_cards)
        many = _run_seconds(n, with_cards)
        samples.append((many - one) / (n - 1) * 1000)
    return statistics.median(samples)


def render_ms(repeats: int) -> float:
    """Median time to render one default card of a task with small artifacts, in ms."""
    from aioflow.card_decorator import CardDecorator
    from aioflow.graph import FlowGraph
    from aioflow.runtime.cards import TaskCards
    from aioflow.runtime.task import RunEnv, TaskSpec

    class _NoReader:
        def read_blob(self, key: str) -> tuple[int, bytes]:
            raise KeyError(key)

    env = RunEnv(
        flow_cls=SmallArtifactsFlow,
        graph=FlowGraph(SmallArtifactsFlow),
        flow_name="SmallArtifactsFlow",
        run_id="1",
        username="bench",
        namespace="user:bench",
        tags=frozenset(),
        parameter_names=("n",),
        readonly=frozenset({"n"}),
        base_manifest={},
        reader=_NoReader(),
        blobs=None,  # type: ignore[arg-type]  (rendering stores nothing)
        line_sink=lambda *args: None,
    )
    spec = TaskSpec(7, "work", (), (1,), {}, started_at=time.time())
    cards = TaskCards(env, spec, (CardDecorator(),))
    attributes = {
        "n": 300,
        "x": 3,
        "label": "item 3",
        "values": [3, 6, 9],
        "settings": {"rate": 0.1, "name": "small"},
    }
    slot = cards.slots[0]
    number = 200
    runs = timeit.repeat(
        lambda: cards.render(slot, attributes, {}, "succeeded"), number=number, repeat=repeats
    )
    return statistics.median(runs) / number * 1000


def no_card_path_ns() -> float:
    """What a task of a step without @card spends on cards: the lookup and the None check."""
    cards: dict[str, tuple[object, ...]] = {"other": (object(),)}
    number = 1_000_000
    seconds = timeit.timeit(
        "c = cards.get('work'); c is not None; c is not None", globals=locals(), number=number
    )
    return seconds / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="n=30, one repeat (a smoke test)")
    args = parser.parse_args()
    n, repeats = (30, 1) if args.quick else (args.n, args.repeats)

    plain = per_task_ms(n, repeats, with_cards=False)
    carded = per_task_ms(n, repeats, with_cards=True)
    print(f"foreach of {n} tasks with small artifacts, per task (median of {repeats}):")
    print(f"  without cards          {plain:8.3f} ms")
    print(f"  with a default card    {carded:8.3f} ms")
    print(f"  a default card costs   {carded - plain:8.3f} ms a task (target: under 5 ms)")
    print(f"  rendering it alone     {render_ms(max(repeats, 3)):8.3f} ms")
    lookup = no_card_path_ns()
    print(
        f"without @card, a task spends {lookup:.0f} ns on cards "
        f"({lookup / (plain * 1e6) * 100:.4f}% of its {plain:.3f} ms)"
    )


if __name__ == "__main__":
    main()
