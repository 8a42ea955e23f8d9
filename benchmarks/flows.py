"""The flows the benchmarks run, shared by every benchmark script."""

from __future__ import annotations

import os

from aioflow import FlowSpec, Parameter, step

MB = 1024 * 1024


class WideForeachFlow(FlowSpec):
    """start -> N trivial tasks -> join -> end: measures per-task overhead."""

    n = Parameter("n", default=10_000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class BigArtifactFlow(FlowSpec):
    """A large artifact made in start and carried untouched through 10 steps and a 4-way branch."""

    size_mb = Parameter("size_mb", default=200)

    @step
    def start(self):
        self.big = os.urandom(self.size_mb * MB)
        self.next(self.s1)

    @step
    def s1(self):
        self.next(self.s2)

    @step
    def s2(self):
        self.next(self.s3)

    @step
    def s3(self):
        self.next(self.s4)

    @step
    def s4(self):
        self.next(self.s5)

    @step
    def s5(self):
        self.next(self.s6)

    @step
    def s6(self):
        self.next(self.s7)

    @step
    def s7(self):
        self.next(self.s8)

    @step
    def s8(self):
        self.next(self.s9)

    @step
    def s9(self):
        self.next(self.s10)

    @step
    def s10(self):
        self.next(self.b1, self.b2, self.b3, self.b4)

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
    def b4(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        self.size = len(self.big)
