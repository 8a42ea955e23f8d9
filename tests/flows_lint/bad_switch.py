"""Flows whose switch (conditional) transitions break the rules."""

from aioflow.decorators import step


class FlowSpec:
    """Stand-in for aioflow.FlowSpec: the graph only inspects the class."""


class SingleCaseSwitchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.decide)

    @step
    def decide(self):
        self.next({"only": self.end}, condition="mode")

    @step
    def end(self):
        pass


class SwitchIntoJoinFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next({"direct": self.join, "long": self.c}, condition="route")

    @step
    def c(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchCasesJoinFlow(FlowSpec):
    @step
    def start(self):
        self.next({"x": self.x, "y": self.y}, condition="pick")

    @step
    def x(self):
        self.next(self.join)

    @step
    def y(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchEscapesSplitFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next({"stay": self.c, "leave": self.end}, condition="route")

    @step
    def c(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchWithForeachFlow(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.a, "b": self.end}, condition="mode", foreach="items")

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass
