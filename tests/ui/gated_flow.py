"""A flow the live UI test runs in another process: `python gated_flow.py run --root ...`."""

from __future__ import annotations

import os

from aioflow import FlowSpec, step


class GatedFlow(FlowSpec):
    """Waits in `wait` until the test writes to the FIFO $AIOFLOW_TEST_GATE (the live UI's
    test): reading a FIFO blocks until its writer closes it, so no side polls or sleeps."""

    @step
    def start(self) -> None:
        self.next(self.wait)

    @step
    def wait(self) -> None:
        with open(os.environ["AIOFLOW_TEST_GATE"]) as gate:
            self.word = gate.read()
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


if __name__ == "__main__":
    GatedFlow()
