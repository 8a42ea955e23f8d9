"""One benchmark session: every case, every tool, alternating tools run by run.

Tools take turns within each case (aioflow, Metaflow, Prefect, then the next round starting one
tool later), so a slow spell of the machine lands on every tool instead of one. Each tool first
does an untimed warm-up run (Python compiles its imports to bytecode, Prefect migrates its
database), as a user's second run would. A case whose first run took longer than `long_run`
seconds is not repeated for that tool, which keeps Metaflow at N = 1,000 to one run of minutes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cases import Case, Settings, skip_reason
from .measure import Measurement, run_child
from .report import seconds
from .summary import Outcome
from .tools import Tool


@dataclass
class Plan:
    """How many times to run each case, and how long any run may take."""

    repeats: int = 3
    aioflow_repeats: int = 5
    long_run: float = 30.0
    timeout: float = 1800.0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Session:
    """Runs cases with tools and keeps every measurement."""

    def __init__(
        self,
        tools: list[Tool],
        settings: Settings,
        plan: Plan,
        logs: Path,
        say: Callable[[str], None] = _say,
    ) -> None:
        self.tools = tools
        self.logs = logs
        self.settings = settings
        self.plan = plan
        self.say = say
        self.count = 0

    def _run(self, tool: Tool, case: Case, attempt: str) -> Measurement:
        self.count += 1
        home = tool.home
        # Logs and notes go beside the tool's home, not in it: its growth is the store's size.
        log = self.logs / f"{self.count:03d}-{tool.name}-{case.workload}-{case.tasks}.log"
        measurement = run_child(
            tool.command(case),
            env=tool.environment(self.logs / f"{tool.name}-notes.txt"),
            cwd=home,
            home=home,
            log=log,
            timeout=self.plan.timeout,
        )
        status = seconds(measurement.wall_s) if measurement.ok else "FAILED"
        self.say(f"  {case.label:<32} {tool.label:<9} {attempt:<8} {status}")
        if not measurement.ok:
            self.say("    " + measurement.error.replace("\n", "\n    "))
        return measurement

    def warm_up(self, case: Case) -> list[str]:
        """One untimed run per tool; returns the tools whose warm-up failed."""
        failed = []
        for tool in self.tools:
            if not self._run(tool, case, "warm-up").ok:
                failed.append(tool.name)
        return failed

    def run_case(self, case: Case) -> list[Outcome]:
        """All runs of one case, tools alternating."""
        outcomes = {t.name: Outcome(t.name, case) for t in self.tools}
        left: dict[str, int] = {}
        for tool in self.tools:
            reason = skip_reason(tool.name, case, self.settings)
            if reason is not None:
                outcomes[tool.name].skipped = reason
                continue
            plan = self.plan
            left[tool.name] = plan.aioflow_repeats if tool.name == "aioflow" else plan.repeats
        round_no = 0
        while any(left.values()):
            shift = round_no % len(self.tools)
            for tool in self.tools[shift:] + self.tools[:shift]:
                if not left.get(tool.name):
                    continue
                runs = outcomes[tool.name].runs
                measurement = self._run(tool, case, f"run {len(runs) + 1}")
                runs.append(measurement)
                left[tool.name] -= 1
                if not measurement.ok or (
                    len(runs) == 1 and measurement.wall_s > self.plan.long_run
                ):
                    left[tool.name] = 0  # a failure repeats; a long run is not worth repeating
            round_no += 1
        return list(outcomes.values())

    def run(self, cases: list[Case]) -> list[Outcome]:
        """Every case in order; returns every outcome."""
        outcomes: list[Outcome] = []
        for case in cases:
            outcomes.extend(self.run_case(case))
        return outcomes
