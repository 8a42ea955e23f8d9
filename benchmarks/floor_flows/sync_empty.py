"""start -> n sync tasks setting nothing -> a join counting them -> end."""

from aioflow import FlowSpec, Parameter, step


class FloorEmptyFlow(FlowSpec):
    """A 10,000-wide foreach of empty sync steps (issue 19's empty-step case)."""

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
