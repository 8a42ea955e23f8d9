"""Linear: 10 steps in a row, each adding one to a counter (aioflow)."""

from bench_common import LINEAR_STEPS

from aioflow import FlowSpec, step


class BenchLinearFlow(FlowSpec):
    """start -> s1 -> ... -> s8 -> end."""

    @step
    def start(self):
        self.count = 1
        self.next(self.s1)

    @step
    def s1(self):
        self.count += 1
        self.next(self.s2)

    @step
    def s2(self):
        self.count += 1
        self.next(self.s3)

    @step
    def s3(self):
        self.count += 1
        self.next(self.s4)

    @step
    def s4(self):
        self.count += 1
        self.next(self.s5)

    @step
    def s5(self):
        self.count += 1
        self.next(self.s6)

    @step
    def s6(self):
        self.count += 1
        self.next(self.s7)

    @step
    def s7(self):
        self.count += 1
        self.next(self.s8)

    @step
    def s8(self):
        self.count += 1
        self.next(self.end)

    @step
    def end(self):
        self.count += 1
        assert self.count == LINEAR_STEPS, self.count


if __name__ == "__main__":
    BenchLinearFlow()
