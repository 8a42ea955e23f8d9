"""Big artifact: 200 MB made in start, carried untouched through 3 steps and a 4-way branch,
merged by merge_artifacts and read once at the end (aioflow)."""

from bench_common import MB, payload

from aioflow import FlowSpec, Parameter, step


class BenchBigFlow(FlowSpec):
    """start -> s1 -> s2 -> s3 -> b0 | b1 | b2 | b3 -> join (merge_artifacts) -> end."""

    size_mb = Parameter("size_mb", default=200)

    @step
    def start(self):
        self.big = payload(self.size_mb)
        self.next(self.s1)

    @step
    def s1(self):
        self.next(self.s2)

    @step
    def s2(self):
        self.next(self.s3)

    @step
    def s3(self):
        self.next(self.b0, self.b1, self.b2, self.b3)

    @step
    def b0(self):
        self.next(self.join)

    @step
    def b1(self):
        self.next(self.join)

    @step
    def b2(self):
        self.next(self.join)

    @step
    def b3(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        assert len(self.big) == self.size_mb * MB


if __name__ == "__main__":
    BenchBigFlow()
