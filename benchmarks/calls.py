"""Issue 19's per-task gap in Python calls, by thread, and what one call costs here.

    python -m benchmarks.calls [--n 2001] [--cases sync,async,empty] [--rounds 1] [--no-cost]

`benchmarks.instructions` says how far aioflow is from the reference orchestrator per task; this
says how much of that distance its layers are. A Python call (a frame pushed and popped, its
arguments bound) is the unit a flatter hot path would remove, so it is counted here, for each
case of `benchmarks.floor`, in aioflow and in the reference, each command line in a fresh
process (after one uncounted run, which writes the bytecode caches; hash randomisation fixed)
with `sys.setprofile` and `threading.setprofile` installed before it starts a thread:
calls of Python functions, and resumptions of coroutines and generators, per task ((the run of
n - the run of 1) / (n - 1), so imports and a run's fixed costs cancel out), on the main thread
(the event loop's) and on the others (sync bodies, the writer). The counts are the code's, not
the machine's: the load does not move them, except by how many results share one hand-off
between threads (tenths of a call on a quiet machine, a few calls on a loaded one).

Then, with valgrind (Debian's package; `--no-cost` skips it), what one call costs on this
interpreter in instructions (callgrind: a loop calling a method with three arguments, less the
same loop with the method's body inline), and so how many instructions per task aioflow's calls
beyond the reference's account for. Set beside `benchmarks.instructions`' difference, what is
left of the gap is work done inside the calls (objects made, attributes read, checks), which
merging layers does not remove by itself.
"""

from __future__ import annotations

import argparse
import json
import runpy
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from .floor import CASES, ROOT, whole_command
from .instructions import (
    NoValgrind,
    add_case_options,
    chosen_cases,
    count,
    counting_env,
    median_counts,
)

#: The headings of the three parts a count has.
PARTS = ("main thread (event loop)", "other threads", "every thread")
#: The `Calls` field each part is.
PART_FIELDS = ("main", "other", "total")
#: Iterations of the call-cost loop: enough that the interpreter's start-up is noise in it.
COST_LOOP = 200_000

#: The call-cost loop: `add` called with three arguments, or its body inline ("inline").
_COST_SCRIPT = """
import sys

class Holder:
    __slots__ = ("total",)

    def __init__(self):
        self.total = 0

    def add(self, value, other, flag):
        self.total += value

def loop(inline, n):
    holder = Holder()
    if inline:
        for i in range(n):
            holder.total += i
    else:
        for i in range(n):
            holder.add(i, holder, None)

loop(sys.argv[1] == "inline", int(sys.argv[2]))
"""


class Calls(NamedTuple):
    """Python calls of one process, or per task: its main thread's and the other threads'."""

    main: float
    other: float

    @property
    def total(self) -> float:
        """Every thread's."""
        return self.main + self.other


def _child(command: list[str], out: Path) -> None:
    """Run `command` (`python -m MODULE ARGS`) in this process, counting the Python calls of
    each thread; write {"main": ..., "other": ...} to `out`."""
    counts: dict[int, int] = {}

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":  # each thread counts under its own key: no update is lost
            ident = threading.get_ident()
            counts[ident] = counts.get(ident, 0) + 1

    module, argv = command[2], command[3:]
    sys.argv = [module, *argv]
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    main = counts.pop(threading.main_thread().ident or 0, 0)
    out.write_text(json.dumps({"main": main, "other": sum(counts.values())}))


def calls_of(command: list[str], work: Path) -> Calls:
    """The Python calls `command` makes, start to exit, in a fresh process."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "calls.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.calls", "--child", str(out), "--", *command],
        cwd=ROOT, capture_output=True, text=True, env=counting_env(),
    )  # fmt: skip
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    got = json.loads(out.read_text())
    return Calls(got["main"], got["other"])


def per_task(tool: str, case: str, n: int, work: Path) -> Calls:
    """Python calls per task of one case: (the run of n - the run of 1) / (n - 1), by thread.

    An uncounted run goes first, so both counted runs load the bytecode it cached (importing
    from source makes other calls than importing from a cache)."""
    warm_up = whole_command(tool, case, 1, work / "warm-up" / "store")
    subprocess.run(warm_up, cwd=ROOT, env=counting_env(), check=True, capture_output=True)
    many = calls_of(whole_command(tool, case, n, work / "many" / "store"), work / "many")
    one = calls_of(whole_command(tool, case, 1, work / "one" / "store"), work / "one")
    return Calls((many.main - one.main) / (n - 1), (many.other - one.other) / (n - 1))


def call_cost(work: Path) -> float:
    """Instructions one Python call with three arguments costs on this interpreter (callgrind):
    the calling loop's count less the inline loop's, per iteration."""
    got = {}
    for variant in ("call", "inline"):
        command = [sys.executable, "-c", _COST_SCRIPT, variant, str(COST_LOOP)]
        got[variant] = count(command, work / f"cost-{variant}", warm_up=command).total
    return (got["call"] - got["inline"]) / COST_LOOP


def lines_for(cases: list[str], n: int, rounds: int, cost: float | None, work: Path) -> list[str]:
    """The table of calls per task, and with `cost`, the instructions aioflow's extra calls
    account for."""
    lines = [
        f"Python calls per task: a {n:,}-wide foreach less a 1-wide one, whole process "
        f"(sys.setprofile){f', median of {rounds}' if rounds > 1 else ''}",
        "",
        f"{'':<32} " + "   ".join(f"{part:^26}" for part in PARTS).rstrip(),
        f"{'case':<32} " + "   ".join([f"{'aioflow':>8} {'reference':>9} {'more':>7}"] * 3),
    ]
    extra = {}
    for case in cases:
        cells = []
        for part, got in median_counts(per_task, case, n, rounds, work, PART_FIELDS).items():
            more = got["aioflow"] - got["reference"]
            if part == "total":
                extra[case] = more
            cells.append(f"{got['aioflow']:>8.1f} {got['reference']:>9.1f} {more:>+7.1f}")
        lines.append(f"{CASES[case][0]:<32} {'   '.join(cells)}")
    if cost is not None:
        lines += [
            "",
            f"one Python call costs {cost:,.0f} instructions on this interpreter (callgrind: a "
            "method call with three",
            "arguments, less its body inline); aioflow's calls per task beyond the reference's, "
            "at that cost:",
            *(
                f"  {CASES[case][0]:<32} {more:>+6.1f} calls  {more * cost:>+9,.0f} instructions"
                for case, more in extra.items()
            ),
            "  (benchmarks.instructions prints the whole difference per task; what these do not "
            "account for",
            "  is work done inside the calls: objects made, attributes read, checks)",
        ]
    return lines


def main() -> None:
    """Count and print (or, with --child, count one command in this process)."""
    if len(sys.argv) > 3 and sys.argv[1] == "--child" and sys.argv[3] == "--":
        _child(sys.argv[4:], Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_case_options(parser)
    parser.add_argument(
        "--no-cost", action="store_true", help="skip the call's cost (which needs valgrind)"
    )
    args = parser.parse_args()
    cases = chosen_cases(parser, args, at_least_one=True)
    with tempfile.TemporaryDirectory(prefix="aioflow-bench-calls-") as tmp:
        work = Path(tmp)
        try:
            cost = None if args.no_cost else call_cost(work)
        except NoValgrind:
            print(
                "error: benchmarks.calls counts what a call costs with valgrind, which is not on "
                "PATH: install Debian's valgrind package (apt-get install valgrind), or pass "
                "--no-cost.",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
        lines = lines_for(cases, args.n, args.rounds, cost, work)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
