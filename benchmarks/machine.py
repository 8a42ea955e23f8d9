"""The machine a comparison ran on, printed above the table and saved beside it."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load_average() -> float | None:
    """The 1-minute load average (other work on the machine skews every figure)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def describe(versions: dict[str, str]) -> dict[str, Any]:
    """CPU, cores, memory, OS, Python, tool versions, date and load."""
    memory = _memory_gib()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": None if memory is None else round(memory, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_before": load_average(),
    }


def summary(info: dict[str, Any]) -> str:
    """The machine in two lines."""
    versions = ", ".join(f"{tool} {version}" for tool, version in info["versions"].items())
    load = info.get("load_before")
    after = info.get("load_after")
    loads = "" if load is None else f"; load average {load:.2f} at start"
    loads += "" if after is None else f", {after:.2f} at end"
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, "
        f"Python {info['python']}\n{versions}; {info['date']}{loads}"
    )
