"""Issue 19's figures counted in instructions, which move far less with the load than time.

    python -m benchmarks.instructions [--n 2001] [--cases sync,async,empty] [--rounds 1]
                                      [--no-startup]

CPU time per task, what `benchmarks.floor` checks the targets on, moves by a fifth between
sessions on a shared 2-core machine, and aioflow's ratio to the reference with it: a change
worth 3% cannot be told from noise there. Valgrind's callgrind counts the instructions a process
executes instead. Counted here, each in a fresh process under callgrind (every thread of it,
start to exit):

- per task, for each case of `benchmarks.floor`: the whole command line of aioflow
  (`aioflow run FLOW --n N`) and of the reference orchestrator, with `--n N` less with `--n 1`,
  over N - 1, and aioflow's ratio to the reference; and the same of the main thread alone,
  where both run their event loop (the scheduler's bookkeeping, and an async step's whole
  task), apart from the other threads (sync bodies, the writer's commits). Both orchestrators'
  timers (commits, hand-off ticks) are stretched by valgrind's slowdown
  (`stretched_timers`), so the counted runs batch as native runs do; unstretched, how often they
  commit per task depended on how fast valgrind ran, and the load moved aioflow's count by 4-6%.
  The counts still move by about 1% from run to run, since how many results share one hand-off
  between threads depends on their timing. `--rounds` counts each that many times and prints
  medians.
- start-up: `aioflow run examples/linear.py --quiet` and the dependency floor of
  `benchmarks.core` (the interpreter, click imported, `anyio.run` of nothing), whole processes,
  and the difference: aioflow's own share.

Each command runs once uninstrumented first, so bytecode caches are written before any count;
hash randomisation is fixed (PYTHONHASHSEED=0), since the order of a set can change the count.
Needs valgrind (Debian's valgrind package). A count takes 20-50 times the command's time.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .core import startup_commands
from .floor import CASES, RATIO_TARGET, ROOT, TOOLS, format_ratio, whole_command
from .stretched_timers import stretched_command

#: The total callgrind prints at the end of its run ("==123== I   refs:      959,647,499").
_TOTAL = re.compile(r"^==\d+== I\s+refs:\s+([\d,]+)\s*$", re.MULTILINE)
#: A thread's total in its own output file (`--separate-threads=yes`): "summary: 646110736".
_SUMMARY = re.compile(r"^summary:\s+(\d+)\s*$", re.MULTILINE)


class Counted(NamedTuple):
    """Instructions of one process: all its threads, and its main thread alone."""

    total: float
    main: float


class NoValgrind(RuntimeError):
    """valgrind is not on PATH."""


def counting_env(**extra: str) -> dict[str, str]:
    """The environment of a counted command: bytecode cached, hash randomisation fixed."""
    env = {**os.environ, "PYTHONHASHSEED": "0", **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's runs load cached bytecode
    return env


def count(
    command: list[str], work: Path, warm_up: list[str], env: dict[str, str] | None = None
) -> Counted:
    """The instructions `command` executes, start to exit, every thread and the main one: one
    callgrind run, after one uninstrumented run of `warm_up` (which writes the bytecode
    caches)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise NoValgrind(
            "benchmarks.instructions counts with valgrind, which is not on PATH: install "
            "Debian's valgrind package (apt-get install valgrind)."
        )
    env = env or counting_env()
    subprocess.run(warm_up, cwd=ROOT, env=env, check=True, capture_output=True)
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [valgrind, "--tool=callgrind", f"--callgrind-out-file={work / 'callgrind.out'}",
         "--separate-threads=yes", "--trace-children=no", *command],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    found = _TOTAL.search(done.stderr)
    # Valgrind numbers the main thread 1: its own file is the one ending -01.
    main = _SUMMARY.search((work / "callgrind.out-01").read_text()) if found else None
    if done.returncode != 0 or found is None or main is None:
        raise RuntimeError(
            f"{' '.join(command)} under callgrind failed ({done.returncode}):\n{done.stderr}"
        )
    return Counted(int(found.group(1).replace(",", "")), int(main.group(1)))


def per_task(tool: str, case: str, n: int, work: Path) -> Counted:
    """Instructions per task of one case: (the run of n - the run of 1) / (n - 1), of every
    thread and of the main one, the orchestrators' timers stretched by valgrind's slowdown
    (`stretched_timers`). Each counted run makes a store of its own (the warm-up runs use
    others), so both create one and the creation cancels out."""
    runs = {}
    for label, size in (("many", n), ("one", 1)):
        runs[label] = count(
            stretched_command(whole_command(tool, case, size, work / label / "store")),
            work / label,
            warm_up=stretched_command(whole_command(tool, case, size, work / label / "warm-up")),
        )
    many, one = runs["many"], runs["one"]
    return Counted((many.total - one.total) / (n - 1), (many.main - one.main) / (n - 1))


def median_counts(
    per_task: Callable[[str, str, int, Path], Any],
    case: str,
    n: int,
    rounds: int,
    work: Path,
    parts: tuple[str, ...],
) -> dict[str, dict[str, float]]:
    """Count a case `rounds` times in each tool with `per_task(tool, case, n, work)`; the
    median of each of the counts' `parts`, by part and tool."""
    counted = {
        tool: [per_task(tool, case, n, work / f"{case}-{tool}-{r}") for r in range(rounds)]
        for tool in TOOLS
    }
    return {
        part: {
            tool: statistics.median(getattr(c, part) for c in counts)
            for tool, counts in counted.items()
        }
        for part in parts
    }


def per_task_lines(cases: list[str], n: int, rounds: int, work: Path) -> list[str]:
    """The per-task table: each case's count in both tools and their ratio, of every thread and
    of the main thread."""
    lines = [
        f"instructions per task: a {n:,}-wide foreach less a 1-wide one, whole process "
        f"(callgrind){f', median of {rounds}' if rounds > 1 else ''}",
        "",
        f"{'':<32} {'every thread':^29}   {'main thread (the event loop)':^29}".rstrip(),
        f"{'case':<32} {'aioflow':>10} {'reference':>10} {'ratio':>7}   "
        f"{'aioflow':>10} {'reference':>10} {'ratio':>7}",
    ]
    ratios = {}
    for case in cases:
        cells = []
        for part, got in median_counts(per_task, case, n, rounds, work, ("total", "main")).items():
            # (A tiny n can put a count at or below zero, within the sync steps' noise.)
            positive = got["aioflow"] > 0 and got["reference"] > 0
            ratio = got["aioflow"] / got["reference"] if positive else math.nan
            if part == "total":  # the verdict is every thread's
                ratios[case] = ratio
            cells.append(
                f"{got['aioflow']:>10,.0f} {got['reference']:>10,.0f} {format_ratio(ratio):>7}"
            )
        lines.append(f"{CASES[case][0]:<32} {'   '.join(cells)}")
    lines += ["", f"aioflow / reference, instructions (issue 19's {RATIO_TARGET}x is on CPU time, "
              "benchmarks.floor; this is its companion, far less moved by the load):"]  # fmt: skip
    for case, ratio in ratios.items():
        verdict = "-   " if math.isnan(ratio) else "PASS" if ratio <= RATIO_TARGET else "MISS"
        lines.append(
            f"  {verdict}  {CASES[case][0]}: {format_ratio(ratio)} (target <= {RATIO_TARGET}x)"
        )
    return lines


def startup_lines(work: Path) -> list[str]:
    """The start-up counts: `aioflow run` of the 3-step flow, the dependency floor, and the
    difference."""
    commands = startup_commands()
    # Both counts find the store made by the warm-up run, as a user's later runs do.
    env = counting_env(AIOFLOW_ROOT=str(work / "startup-store"))
    run = count(commands["run"], work / "startup-run", commands["run"], env).total
    floor = count(commands["floor"], work / "startup-floor", commands["floor"], env).total
    return [
        "start-up, whole process (callgrind):",
        f"  {'aioflow run examples/linear.py --quiet':<56} {run / 1e6:>8,.1f} M",
        f"  {'dependency floor: click imported, anyio.run of nothing':<56} {floor / 1e6:>8,.1f} M",
        f"  {'aioflow own share (the difference)':<56} {(run - floor) / 1e6:>8,.1f} M "
        f"({run / floor:.2f}x the floor)",
    ]


def add_case_options(parser: argparse.ArgumentParser) -> None:
    """`--n`, `--cases` and `--rounds`: what a per-task count counts, and how often."""
    parser.add_argument("--n", type=int, default=2001, help="foreach width (default 2,001)")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}"
    )
    parser.add_argument("--rounds", type=int, default=1, help="counts of each (median)")


def chosen_cases(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, at_least_one: bool = False
) -> list[str]:
    """The cases `--cases` names; the parser's error for an unknown one (or none, with
    `at_least_one`), or for `--n` under 2 or `--rounds` under 1."""
    cases = [case for case in args.cases.split(",") if case]
    unknown = sorted(set(cases) - set(CASES))
    if unknown or (at_least_one and not cases):
        what = f"unknown case(s) {', '.join(unknown)}" if unknown else "no case named"
        parser.error(f"{what}: choose from {', '.join(CASES)}")
    if args.n < 2 or args.rounds < 1:
        parser.error("--n must be at least 2 and --rounds at least 1")
    return cases


def main() -> None:
    """Count and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_case_options(parser)
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up counts")
    args = parser.parse_args()
    cases = chosen_cases(parser, args)
    with tempfile.TemporaryDirectory(prefix="aioflow-bench-instructions-") as tmp:
        work = Path(tmp)
        try:
            lines = per_task_lines(cases, args.n, args.rounds, work) if cases else []
            if not args.no_startup:
                lines += ["", *startup_lines(work)]
        except NoValgrind as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    print("\n".join(lines))


if __name__ == "__main__":
    main()
