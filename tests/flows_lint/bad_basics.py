"""Flows breaking the basic rules: names, start/end, arguments, missing self.next()."""

from aioflow.decorators import step


class FlowSpec:
    """Stand-in for aioflow.FlowSpec: the graph only inspects the class."""


class ReservedWordFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.index)

    @step
    def index(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NoStartFlow(FlowSpec):
    @step
    def begin(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NoEndFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.finish)

    @step
    def finish(self):
        pass


class EndWithNextFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.next(self.start)


class EndIsJoinFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self, inputs):
        pass


class BadNameFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.stepTwo)

    @step
    def stepTwo(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class TooManyArgsFlow(FlowSpec):
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
    def join(self, inputs, extra):
        self.next(self.end)

    @step
    def end(self):
        pass


class JoinAndSplitFlow(FlowSpec):
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
        self.next(self.c, self.d)

    @step
    def c(self):
        self.next(self.end)

    @step
    def d(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class MissingSelfFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end():
        pass


class MissingNextFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        self.x = 1

    @step
    def end(self):
        pass


class NextNotLastFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)
        return None

    @step
    def end(self):
        pass


class JoinWithoutNextFlow(FlowSpec):
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
        self.total = len(inputs)

    @step
    def end(self):
        pass


class JoinNextByNameFlow(FlowSpec):
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
        self.next("end")

    @step
    def end(self):
        pass
