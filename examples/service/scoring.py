"""The flow the service runs for each request: score some values, in parallel, and sum them."""

from __future__ import annotations

import anyio

from aioflow import FlowSpec, JSONType, Parameter, current, step


class ScoringFlow(FlowSpec):
    """Scale each value (as if asking a model for it), then add the scores up."""

    values = Parameter("values", type=JSONType, default="[]", help="The values to score")
    scale = Parameter("scale", default=1.0, help="What each value is multiplied by")
    delay = Parameter("delay", default=0.0, help="Seconds each score takes (a model call)")

    @step
    def start(self):
        if not self.values:
            raise ValueError("Nothing to score: give at least one value.")
        self.next(self.score, foreach="values")

    @step
    async def score(self):
        await anyio.sleep(self.delay)  # an async step waits on the loop without blocking it
        self.score = self.input * self.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        self.scores = [i.score for i in inputs]
        self.total = sum(self.scores)
        self.next(self.end)

    @step
    def end(self):
        self.run_id = current.run_id
        print(f"scored {len(self.scores)} values: {self.total}")
