"""Async steps run on the event loop, so I/O-bound work in a foreach overlaps.

    python examples/async_steps.py run --delay 0.2

Ten "downloads" of 0.2 s each finish in about 0.2 s, not 2 s.
"""

import time

import anyio

from aioflow import FlowSpec, Parameter, current, step


class AsyncStepsFlow(FlowSpec):
    delay = Parameter("delay", default=0.2, help="Seconds each fake download takes")
    count = Parameter("count", default=10, help="How many downloads")

    @step
    def start(self):
        self.urls = [f"https://example.invalid/item/{i}" for i in range(self.count)]
        self.started = time.time()
        self.next(self.fetch, foreach="urls")

    @step
    async def fetch(self):
        await anyio.sleep(self.delay)  # stands in for an HTTP call
        self.size = len(self.input)
        print(f"fetched {self.input} in task {current.task_id}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.size for inp in inputs)
        self.elapsed = time.time() - inputs[0].started
        self.next(self.end)

    @step
    def end(self):
        print(f"{self.count} fetches, {self.total} bytes, in {self.elapsed:.2f} s")


if __name__ == "__main__":
    AsyncStepsFlow()
