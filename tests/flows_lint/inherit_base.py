"""A base flow whose steps are inherited by a flow defined in another file."""

from aioflow.decorators import step


class FlowSpec:
    """Stand-in for aioflow.FlowSpec: the graph only inspects the class."""


class BaseFlow(FlowSpec):
    """The base flow."""

    @step
    async def start(self):
        """Inherited start."""
        self.next(self.process)

    @step
    def end(self):
        """Inherited end."""
