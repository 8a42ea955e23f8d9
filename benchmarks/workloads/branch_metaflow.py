"""Branch: an 8-way static split, each arm setting its own artifact, joined by merge_artifacts
(Metaflow)."""

from bench_common import BRANCHES
from metaflow import FlowSpec, step


class BenchBranchFlow(FlowSpec):
    """start -> b0 | b1 | ... | b7 -> join (merge_artifacts) -> end."""

    @step
    def start(self):
        self.common = "set before the split, the same on every arm"
        self.next(self.b0, self.b1, self.b2, self.b3, self.b4, self.b5, self.b6, self.b7)

    @step
    def b0(self):
        self.r0 = 0
        self.next(self.join)

    @step
    def b1(self):
        self.r1 = 1
        self.next(self.join)

    @step
    def b2(self):
        self.r2 = 2
        self.next(self.join)

    @step
    def b3(self):
        self.r3 = 3
        self.next(self.join)

    @step
    def b4(self):
        self.r4 = 4
        self.next(self.join)

    @step
    def b5(self):
        self.r5 = 5
        self.next(self.join)

    @step
    def b6(self):
        self.r6 = 6
        self.next(self.join)

    @step
    def b7(self):
        self.r7 = 7
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        results = [self.r0, self.r1, self.r2, self.r3, self.r4, self.r5, self.r6, self.r7]
        assert results == list(range(BRANCHES)), results
        assert self.common.startswith("set before")


if __name__ == "__main__":
    BenchBranchFlow()
