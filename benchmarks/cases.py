"""What the comparison runs: the workloads, their sizes, and which tool runs which size.

A `Case` is one workload at one size. The foreach workload also runs at N = 1, the baseline its
per-task overhead is measured from: `(time(N) - time(1)) / (N - 1)`, the cost of one more task
once the process, the imports and the flow's fixed steps are paid for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKLOADS = ("linear", "foreach", "branch", "big", "cpu", "async")
BASELINE_N = 1


@dataclass(frozen=True)
class Case:
    """One workload at one size: the parameters its flow takes, and how many tasks it fans to."""

    workload: str
    label: str
    param_items: tuple[tuple[str, int], ...] = ()
    tasks: int = 0

    @property
    def params(self) -> dict[str, int]:
        """The flow's parameters, by name."""
        return dict(self.param_items)

    @property
    def is_baseline(self) -> bool:
        """True for the foreach at N = 1, measured only to derive per-task overheads."""
        return self.workload == "foreach" and self.tasks == BASELINE_N


@dataclass
class Settings:
    """Sizes of every workload (the command line's options)."""

    sizes: list[int] = field(default_factory=lambda: [10, 100, 1_000, 10_000, 100_000])
    big_mb: int = 200
    cpu_tasks: int = 8
    cpu_iterations: int = 0  # 0: the workloads' own default (about 1 s)
    async_tasks: int = 1_000
    workloads: list[str] = field(default_factory=lambda: list(WORKLOADS))
    peer_max_n: dict[str, int] = field(
        default_factory=lambda: {"metaflow": 1_000, "prefect": 10_000}
    )


def _n(value: int) -> str:
    return f"{value:,}"


def build_cases(settings: Settings) -> list[Case]:
    """Every case to run, in the order the table prints them."""
    cases: list[Case] = []
    for workload in settings.workloads:
        if workload == "linear":
            cases.append(Case("linear", "linear, 10 steps"))
        elif workload == "foreach":
            for n in sorted({BASELINE_N, *settings.sizes}):
                cases.append(Case("foreach", f"foreach N={_n(n)}", (("n", n),), n))
        elif workload == "branch":
            cases.append(Case("branch", "8-way branch + merge_artifacts"))
        elif workload == "big":
            mb = settings.big_mb
            cases.append(Case("big", f"{_n(mb)} MB artifact carried", (("size_mb", mb),)))
        elif workload == "cpu":
            n, iterations = settings.cpu_tasks, settings.cpu_iterations
            params: tuple[tuple[str, int], ...] = (("n", n),)
            label = f"CPU-bound {n} x ~1 s"
            if iterations:
                params += (("iterations", iterations),)
                label = f"CPU-bound {n} x {_n(iterations)} it."
            cases.append(Case("cpu", label, params, n))
        elif workload == "async":
            n = settings.async_tasks
            cases.append(Case("async", f"{_n(n)} async steps x 0.1 s", (("n", n),), n))
        else:
            raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
    return cases


def skip_reason(tool: str, case: Case, settings: Settings) -> str | None:
    """Why `tool` does not run `case` (too large for a peer), or None when it does."""
    limit = settings.peer_max_n.get(tool)
    if limit is not None and case.tasks > limit:
        return f"N > {_n(limit)} (--peer-max-n)"
    return None


def describe(case: Case) -> dict[str, Any]:
    """The case as plain data (for the CSV files)."""
    return {"workload": case.workload, "case": case.label, "n": case.tasks or ""}
