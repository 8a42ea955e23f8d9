"""A flow defined inside a function, subclassing a base flow from another file."""

from aioflow.decorators import step


def make(base):
    """Return a subclass of `base` that adds the middle of the flow."""

    class ChildFlow(base):
        """The child flow."""

        @step
        def process(self):
            self.next(self.end)

    return ChildFlow
