"""CPU-bound: a foreach of 8 tasks of about one second of pure-Python work each, on the process
executor (aioflow)."""

import os

from bench_common import CPU_ITERATIONS, burn, note

from aioflow import FlowSpec, Parameter, step

try:
    process_step = step(executor="process")
except TypeError:  # an aioflow without the process executor: the tasks share the GIL
    process_step = step
    note("aioflow's process executor is not available: the CPU tasks ran on threads")


class BenchCpuFlow(FlowSpec):
    """start -> crunch x N (process executor) -> join -> end."""

    n = Parameter("n", default=8)
    iterations = Parameter("iterations", default=CPU_ITERATIONS)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.crunch, foreach="items")

    @process_step
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
