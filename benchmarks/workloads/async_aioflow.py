"""I/O-bound: a foreach of 1,000 async steps, each awaiting 0.1 s (aioflow, --max-workers 1000)."""

import anyio
from bench_common import ASYNC_SLEEP

from aioflow import FlowSpec, Parameter, step


class BenchAsyncFlow(FlowSpec):
    """start -> wait x N (async, on the event loop) -> join -> end."""

    n = Parameter("n", default=1000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.wait, foreach="items")

    @step
    async def wait(self):
        await anyio.sleep(ASYNC_SLEEP)
        self.echo = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.echo for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == self.n * (self.n - 1) // 2, self.total


if __name__ == "__main__":
    BenchAsyncFlow()
