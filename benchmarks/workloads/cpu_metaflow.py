"""CPU-bound: a foreach of 8 tasks of about one second of pure-Python work each, on the process
executor (Metaflow: every task is a process)."""

import os

from bench_common import CPU_ITERATIONS, burn, note
from metaflow import FlowSpec, Parameter, step


class BenchCpuFlow(FlowSpec):
    """start -> crunch x N (each a process) -> join -> end."""

    n = Parameter("n", default=8)
    iterations = Parameter("iterations", default=CPU_ITERATIONS)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.crunch, foreach="items")

    @step
    def crunch(self):
        self.result = burn(self.iterations + self.input)
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [i.result for i in inputs]
        self.pids = sorted({i.pid for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        assert len(self.results) == self.n
        note(f"the {self.n} CPU tasks ran in {len(self.pids)} process(es)")


if __name__ == "__main__":
    BenchCpuFlow()
