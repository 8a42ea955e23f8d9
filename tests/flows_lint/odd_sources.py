"""Flows whose source layout is unusual but valid."""

from aioflow.decorators import step


class FlowSpec:
    """Stand-in for aioflow.FlowSpec: the graph only inspects the class."""


def tag(*names):
    """A do-nothing step decorator taking arguments over several lines."""

    def wrap(func):
        return func

    return wrap


class OddSourceFlow(FlowSpec):
    @tag(
        "a",
        "b",
    )
    @step
    def start(self):
        """A docstring whose second line
        is not indented at all.
        """
        self.next(
            self.middle,
        )

    @step
    def middle(self):
        text = """
not indented either
"""
        self.text = text
        self.next(
            {
                "x": self.end,
                "y": self.middle,
            },
            condition="text",
        )

    @step
    def end(self):
        pass


class TwoProblemsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.zeta)

    @step
    def zeta(self):
        self.x = 1

    @step
    def alpha(self):
        self.x = 2

    @step
    def end(self):
        pass


class NameAndNextFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.Middle)

    @step
    def Middle(self):
        self.x = 1

    @step
    def end(self):
        pass
