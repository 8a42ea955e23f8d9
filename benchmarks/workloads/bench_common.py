"""What every tool's version of a workload shares. Standard library only (peers import it too)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from typing import Any

MB = 1024 * 1024

#: Steps of the linear workload, start and end included.
LINEAR_STEPS = 10
#: Arms of the static branch workload.
BRANCHES = 8
#: Iterations of `burn` that take about one second of one core (Python 3.11, a 2020s Xeon).
CPU_ITERATIONS = 7_000_000
#: How long each I/O-bound async step waits, in seconds.
ASYNC_SLEEP = 0.1


def burn(iterations: int) -> int:
    """Pure-Python CPU work: a linear congruential loop (holds the GIL throughout)."""
    x = 0
    for i in range(iterations):
        x = (x * 1103515245 + i) & 0x7FFFFFFF
    return x


def payload(size_mb: int) -> bytes:
    """An incompressible artifact of `size_mb` MB (compression would flatter a tool)."""
    return os.urandom(size_mb * MB)


def merge_artifacts(branches: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Metaflow's merge rule for Prefect, whose branches return dicts: a name set to different
    values on two branches is a conflict; values equal on every branch that has them merge."""
    merged: dict[str, Any] = {}
    for artifacts in branches:
        for name, value in artifacts.items():
            if name in merged and merged[name] is not value and merged[name] != value:
                raise ValueError(f"conflicting values for artifact {name!r}")
            merged.setdefault(name, value)
    return merged


def note(text: str) -> None:
    """Tell the runner something about how the run went (it prints it under the table)."""
    path = os.environ.get("BENCH_NOTES")
    if path:
        with open(path, "a") as f:
            f.write(text.rstrip("\n") + "\n")


def prefect_args(**defaults: int) -> argparse.Namespace:
    """`--name value` options for a Prefect workload script, spelt as the flows' parameters."""
    parser = argparse.ArgumentParser()
    for name, default in defaults.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    return parser.parse_args()
