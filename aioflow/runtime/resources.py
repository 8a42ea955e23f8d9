"""`@resources` on one machine: a weighted semaphore of CPUs, memory and GPUs per run.

A task of a step with `@resources(cpu=2)` holds two CPU tokens while it runs, so on a 2-core
machine such tasks run one at a time. A request larger than the machine is clamped to the whole
machine (the task then runs alone) rather than refused: flows written for a cluster, where
Metaflow's local runtime ignores `@resources`, still run here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio


def _total_memory_mb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return float("inf")


class ResourcePool:
    """CPUs, memory (MB) and GPUs available to one run's tasks."""

    def __init__(
        self, cpu: float | None = None, memory: float | None = None, gpu: float = 0
    ) -> None:
        self.capacity = {
            "cpu": float(cpu if cpu is not None else os.cpu_count() or 1),
            "memory": float(memory if memory is not None else _total_memory_mb()),
            "gpu": float(gpu),
        }
        self.free = dict(self.capacity)
        self._changed = anyio.Condition()

    def _clamp(self, want: dict[str, float]) -> dict[str, float]:
        return {k: min(v, self.capacity[k]) for k, v in want.items() if v > 0}

    @asynccontextmanager
    async def reserve(
        self, cpu: float = 0, memory: float = 0, gpu: float = 0
    ) -> AsyncIterator[None]:
        """Hold the given amounts while the block runs; wait until they are free."""
        want = self._clamp({"cpu": cpu, "memory": memory, "gpu": gpu})
        if not want:
            yield
            return
        async with self._changed:
            while any(self.free[k] < v for k, v in want.items()):
                await self._changed.wait()
            for k, v in want.items():
                self.free[k] -= v
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    for k, v in want.items():
                        self.free[k] += v
                    self._changed.notify_all()
