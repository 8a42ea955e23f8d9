"""Flows whose final self.next() is malformed or points to a step that does not exist."""

from aioflow.decorators import step


class FlowSpec:
    """Stand-in for aioflow.FlowSpec: the graph only inspects the class."""


class NextOfVariableFlow(FlowSpec):
    @step
    def start(self):
        target = self.end
        self.next(target)

    @step
    def end(self):
        pass


class ForeachOfVariableFlow(FlowSpec):
    @step
    def start(self):
        name = "items"
        self.items = [1, 2]
        self.next(self.work, foreach=name)

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachTwoTargetsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b, foreach="items")

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class EmptyNextFlow(FlowSpec):
    @step
    def start(self):
        self.next()

    @step
    def end(self):
        pass


class DictWithoutConditionFlow(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.a, "b": self.end})

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchVariableKeyFlow(FlowSpec):
    @step
    def start(self):
        key = "a"
        self.next({key: self.a, "b": self.end}, condition="mode")

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchConditionVariableFlow(FlowSpec):
    @step
    def start(self):
        attr = "mode"
        self.next({"a": self.a, "b": self.end}, condition=attr)

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchEmptyFlow(FlowSpec):
    @step
    def start(self):
        self.next({}, condition="mode")

    @step
    def end(self):
        pass


class UnknownStepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        self.next(self.missing)

    @step
    def end(self):
        pass


class SwitchUnknownStepFlow(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.end, "b": self.nowhere}, condition="mode")

    @step
    def end(self):
        pass


class MisspelledStepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.proces)

    @step
    def process(self):
        self.next(self.end)

    @step
    def end(self):
        pass
