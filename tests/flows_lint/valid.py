"""Valid flows of every shape; each must lint cleanly."""

from aioflow.decorators import step


class FlowSpec:
    """Stand-in for aioflow.FlowSpec: the graph only inspects the class."""


class LinearFlow(FlowSpec):
    """A flow in a straight line.

    It has two steps between start and end.
    """

    @step
    def start(self):
        """Begin here."""
        self.x = 1
        self.next(self.middle)

    @step
    async def middle(self):
        """An async step."""
        self.x += 1
        self.next(self.finish)

    @step
    def finish(self):
        self.next(self.end)

    @step
    def end(self):
        """Done."""


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class NestedBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a1, self.a2)

    @step
    def a1(self):
        self.next(self.join_a)

    @step
    def a2(self):
        self.next(self.join_a)

    @step
    def join_a(self, inputs):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class NestedForeachFlow(FlowSpec):
    @step
    def start(self):
        self.rows = [1, 2]
        self.next(self.row, foreach="rows")

    @step
    def row(self):
        self.cols = [3, 4]
        self.next(self.cell, foreach="cols")

    @step
    def cell(self):
        self.next(self.join_cols)

    @step
    def join_cols(self, inputs):
        self.next(self.join_rows)

    @step
    def join_rows(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachInBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.fan, self.other)

    @step
    def fan(self):
        self.items = "abc"
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.join_each)

    @step
    def join_each(self, inputs):
        self.next(self.join)

    @step
    def other(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchFlow(FlowSpec):
    @step
    def start(self):
        self.mode = "fast"
        self.next({"fast": self.fast, "slow": self.slow}, condition="mode")

    @step
    def fast(self):
        self.next(self.end)

    @step
    def slow(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchConvergeFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.decide)

    @step
    def decide(self):
        self.size = 3
        self.next(
            {1: self.small, 2: self.small, 3: self.large, "cfg": self.large},
            condition="size",
        )

    @step
    def small(self):
        self.next(self.merge)

    @step
    def large(self):
        self.next(self.merge)

    @step
    def merge(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchSkipFlow(FlowSpec):
    @step
    def start(self):
        self.next({True: self.extra, False: self.common}, condition="flag")

    @step
    def extra(self):
        self.next(self.common)

    @step
    def common(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class RecursiveSwitchFlow(FlowSpec):
    @step
    def start(self):
        self.count = 0
        self.next(self.loop)

    @step
    def loop(self):
        self.count += 1
        self.again = self.count < 3
        self.next({True: self.loop, False: self.end}, condition="again")

    @step
    def end(self):
        pass


class SwitchInBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next({"c": self.c, "d": self.d}, condition="pick")

    @step
    def c(self):
        self.next(self.join)

    @step
    def d(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchInForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next({"again": self.work, "c": self.c, "d": self.d}, condition="case")

    @step
    def c(self):
        self.next(self.after)

    @step
    def d(self):
        self.next(self.after)

    @step
    def after(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class BranchInSwitchFlow(FlowSpec):
    @step
    def start(self):
        self.next({"one": self.one, "two": self.two}, condition="how")

    @step
    def one(self):
        self.next(self.end)

    @step
    def two(self):
        self.next(self.p, self.q)

    @step
    def p(self):
        self.next(self.join_pq)

    @step
    def q(self):
        self.next(self.join_pq)

    @step
    def join_pq(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ConfigSwitchFlow(FlowSpec):
    @step
    def start(self):
        self.next(
            {self.config.fast: self.fast, self.config.slow: self.slow},
            condition="mode",
        )

    @step
    def fast(self):
        self.next(self.end)

    @step
    def slow(self):
        self.next(self.end)

    @step
    def end(self):
        pass
