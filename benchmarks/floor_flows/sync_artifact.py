"""start -> n sync tasks, each setting one small artifact -> a join reading it from each -> end."""

from aioflow import FlowSpec, Parameter, step


class FloorSyncFlow(FlowSpec):
    """A 10,000-wide foreach of sync steps setting one int (issue 19's per-task case)."""

    n = Parameter("n", default=10_000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = -1 - self.input  # a value no item has: every task stores a new blob
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
