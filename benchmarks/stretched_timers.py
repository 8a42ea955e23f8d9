"""Run `python -m MODULE ARGS` with the orchestrators' timers stretched, for counts under valgrind.

    python -m benchmarks.stretched_timers FACTOR MODULE [ARGS...]

A process under callgrind runs about 50 times slower than natively (a 2,001-task run of
`benchmarks.floor`'s sync case: 0.2 s natively, 9.9 s counted), but its timers keep to the wall
clock: aioflow's writer commits at most every 10 ms, its thread lane hands results over on a
2 ms tick and checks for blocked threads 5 ms after a submit, and the reference orchestrator
commits every 10 ms. Counted as they are, a run commits and hands over about 50 times more often
per task than the same run natively does (a commit every few tasks instead of every few
hundred), and how often depends on how fast valgrind gets through the work, which the load on
the machine sets: the same code counted 223,600 instructions per task with the machine busy and
236,200 quiet (sync step, every thread).

Stretching every such timer by valgrind's slowdown makes the counted run batch its commits and
hand-offs as the native run does, and the count no longer moves with the load (218,900 quiet,
220,500 with three CPU burners; stretched 20 times it was 222,600, 200 times 217,600: past the
slowdown, the count barely moves with the factor). `benchmarks.instructions` runs each
per-task count through this module. `TIMERS` names each timer; one renamed fails here loudly
(AttributeError), never silently unstretched.
"""

from __future__ import annotations

import importlib
import runpy
import sys

#: What a process under callgrind takes, against the same process run natively (measured here).
VALGRIND_SLOWDOWN = 50.0

#: The timers of each orchestrator, by the module that runs it: (module, its constants).
TIMERS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "aioflow": (
        ("aioflow.store.writer", ("COMMIT_INTERVAL",)),
        ("aioflow.runtime.executors.thread_lane", ("TICK", "TICK_MAX", "GROW_AFTER")),
    ),
    "benchmarks.reference_orchestrator": (("benchmarks.reference_store", ("COMMIT_INTERVAL",)),),
}


def stretch(runner: str, factor: float) -> None:
    """Multiply the timers of the orchestrator that `runner` (a module run with -m) starts."""
    if runner not in TIMERS:
        raise ValueError(f"no timers known for {runner!r}: one of {', '.join(TIMERS)}")
    for module_name, names in TIMERS[runner]:
        module = importlib.import_module(module_name)
        for name in names:  # (read when used: each is looked up as a module global)
            setattr(module, name, getattr(module, name) * factor)


def stretched_command(command: list[str], factor: float = VALGRIND_SLOWDOWN) -> list[str]:
    """`[python, "-m", MODULE, *args]` run through this module, its timers stretched."""
    python, dash_m, runner, *args = command
    if dash_m != "-m":
        raise ValueError(f"not a `python -m MODULE` command: {' '.join(command)}")
    return [python, "-m", "benchmarks.stretched_timers", f"{factor:g}", runner, *args]


def main() -> None:
    """The command line: stretch, then run the module as `python -m` would."""
    if len(sys.argv) < 3:
        sys.exit("usage: python -m benchmarks.stretched_timers FACTOR MODULE [ARGS...]")
    factor, runner, *args = sys.argv[1:]
    stretch(runner, float(factor))
    sys.argv = [runner, *args]
    runpy.run_module(runner, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
