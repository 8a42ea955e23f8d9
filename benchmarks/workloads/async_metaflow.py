"""I/O-bound: a foreach of 1,000 steps, each waiting 0.1 s (Metaflow has no async steps: each is a
process sleeping, at most --max-workers of them at once)."""

import time

from bench_common import ASYNC_SLEEP
from metaflow import FlowSpec, Parameter, step


class BenchAsyncFlow(FlowSpec):
    """start -> wait x N (each a process) -> join -> end."""

    n = Parameter("n", default=1000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.wait, foreach="items")

    @step
    def wait(self):
        time.sleep(ASYNC_SLEEP)
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
