"""The flow the report tests run (at module level, so worker processes import it)."""

from __future__ import annotations

from aioflow import FlowSpec, Parameter, card, catch, current, step
from aioflow.cards import Markdown, Table, VegaChart


class ReportFlow(FlowSpec):
    """A foreach, a switch whose path is 'small', and a task that fails and is caught."""

    width = Parameter("width", default=4, help="How many branches the foreach starts.")

    @step
    def start(self) -> None:
        self.items = list(range(self.width))
        self.next(self.square, foreach="items")

    @card
    @step
    def square(self) -> None:
        self.value = self.input * self.input
        current.card.append(Markdown(f"# Square of {self.input}"))
        current.card.append(Table([[self.input, self.value]], headers=["input", "value"]))
        self.next(self.gather)

    @step
    def gather(self, inputs: list) -> None:  # type: ignore[type-arg]
        self.total = sum(i.value for i in inputs)
        self.next(self.choose)

    @step
    def choose(self) -> None:
        self.size = "small" if self.total < 1000 else "large"
        self.next({"small": self.small, "large": self.large}, condition="size")

    @catch(var="problem")
    @step
    def small(self) -> None:
        print("about to fail on purpose")
        raise ValueError("a failure the report shows")
        self.next(self.end)

    @step
    def large(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class FailingFlow(FlowSpec):
    """Fails in `start`, uncaught."""

    @step
    def start(self) -> None:
        raise RuntimeError("no luck")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def bar_chart(title: str, values: list[int]) -> dict:  # type: ignore[type-arg]
    """A Vega-Lite bar chart of `values` by position."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": title,
        "data": {"values": [{"x": i, "y": v} for i, v in enumerate(values)]},
        "mark": "bar",
        "encoding": {
            "x": {"field": "x", "type": "ordinal"},
            "y": {"field": "y", "type": "quantitative"},
        },
    }


class ChartFlow(FlowSpec):
    """Cards with Vega-Lite charts: a blank card per task of a foreach, drawing a bar chart."""

    @step
    def start(self) -> None:
        self.sizes = [3, 5]
        self.next(self.plot, foreach="sizes")

    @card(type="blank", id="chart")
    @step
    def plot(self) -> None:
        self.values = [i * i for i in range(self.input)]
        current.card.append(Markdown(f"# Squares up to {self.input - 1}"))
        current.card.append(VegaChart(bar_chart(f"{self.input} squares", self.values)))
        self.next(self.join)

    @step
    def join(self, inputs: list) -> None:  # type: ignore[type-arg]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
