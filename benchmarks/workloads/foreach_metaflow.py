"""Foreach: N trivial tasks, each doubling its item, summed by a join (Metaflow)."""

from metaflow import FlowSpec, Parameter, step


class BenchForeachFlow(FlowSpec):
    """start -> work x N -> join -> end."""

    n = Parameter("n", default=10)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.doubled for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == self.n * (self.n - 1), self.total


if __name__ == "__main__":
    BenchForeachFlow()
