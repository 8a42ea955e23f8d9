"""Cards, as Metaflow's "Visualizing Results" shows them: a blank card of components, a default
card of the task (its metadata, parameters, artifacts, the DAG and the code), and a progress
bar that updates while the step runs. After `python card_flow.py run`:

    python card_flow.py card view start       # opens the latest run's card in the browser
    aioflow card list CardFlow/1              # every card of run 1
"""

from aioflow import FlowSpec, Parameter, card, current, step
from aioflow.cards import Markdown, ProgressBar, Table


class CardFlow(FlowSpec):
    number = Parameter("number", default=3)

    @card(type="blank")
    @step
    def start(self):
        current.card.append(Markdown("# Guess my number"))
        if self.number > 5:
            current.card.append(Markdown("My number is **smaller** ⬇️"))
        elif self.number < 5:
            current.card.append(Markdown("My number is **larger** ⬆️"))
        else:
            current.card.append(Markdown("## Correct! 🎉"))
        self.next(self.train)

    @card
    @card(type="blank", id="progress")
    @step
    def train(self):
        bar = ProgressBar(max=5, label="Epochs", unit="epochs")
        current.card["progress"].append(bar)
        self.losses = []
        for epoch in range(1, 6):
            self.losses.append(round(1 / epoch, 3))
            bar.update(epoch)
            current.card.refresh()  # a reader of the store sees the bar move
        current.card["progress"].append(
            Table([[i + 1, loss] for i, loss in enumerate(self.losses)], headers=["epoch", "loss"])
        )
        self.next(self.end)

    @step
    def end(self):
        print(f"Final loss {self.losses[-1]}")


if __name__ == "__main__":
    CardFlow()
