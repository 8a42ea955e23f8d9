"""The flows the benchmarks run, shared by every benchmark script."""

from __future__ import annotations

import os

from aioflow import FlowSpec, Parameter, step

MB = 1024 * 1024


class WideForeachFlow(FlowSpec):
    """start -> N trivial tasks -> join -> end: measures per-task overhead."""

    n = Parameter("n", default=10_000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class BigArtifactFlow(FlowSpec):
    """A large artifact made in start and carried untouched through 10 steps and a 4-way branch."""

    size_mb = Parameter("size_mb", default=200)

    @step
    def start(self):
        self.big = os.urandom(self.size_mb * MB)
        self.next(self.s1)

    @step
    def s1(self):
        self.next(self.s2)

    @step
    def s2(self):
        self.next(self.s3)

    @step
    def s3(self):
        self.next(self.s4)

    @step
    def s4(self):
        self.next(self.s5)

    @step
    def s5(self):
        self.next(self.s6)

    @step
    def s6(self):
        self.next(self.s7)

    @step
    def s7(self):
        self.next(self.s8)

    @step
    def s8(self):
        self.next(self.s9)

    @step
    def s9(self):
        self.next(self.s10)

    @step
    def s10(self):
        self.next(self.b1, self.b2, self.b3, self.b4)

    @step
    def b1(self):
        self.next(self.join)

    @step
    def b2(self):
        self.next(self.join)

    @step
    def b3(self):
        self.next(self.join)

    @step
    def b4(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        self.size = len(self.big)


def burn(iterations: int) -> int:
    """A fixed amount of pure-Python CPU work (holds the GIL the whole time)."""
    total = 0
    for i in range(iterations):
        total += i % 7
    return total


def iterations_per_second() -> int:
    """How many `burn` iterations this machine does in one second, on one core."""
    import time

    n = 200_000
    while True:
        started = time.perf_counter()
        burn(n)
        elapsed = time.perf_counter() - started
        if elapsed > 0.2:
            return int(n / elapsed)
        n *= 2


class CpuBranchFlow(FlowSpec):
    """8 CPU-bound branches of equal work; the executor comes from the run's default."""

    iterations = Parameter("iterations", default=10_000_000, help="burn() iterations per branch")

    @step
    def start(self):
        self.next(self.c1, self.c2, self.c3, self.c4, self.c5, self.c6, self.c7, self.c8)

    @step
    def c1(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def c2(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def c3(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def c4(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def c5(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def c6(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def c7(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def c8(self):
        self.n = burn(self.iterations)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.n for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class AsyncSleepFlow(FlowSpec):
    """N async steps in a foreach that each sleep `delay` seconds (I/O-bound)."""

    n = Parameter("n", default=1000)
    delay = Parameter("delay", default=0.1)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.wait, foreach="items")

    @step
    async def wait(self):
        import anyio

        await anyio.sleep(self.delay)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class TrivialProcessFlow(FlowSpec):
    """start -> one trivial step in a worker process -> end."""

    @step
    def start(self):
        self.next(self.work)

    @step(executor="process")
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass
