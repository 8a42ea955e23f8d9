"""Issue 19's per-task figures: aioflow against a minimal orchestrator persisting the same.

    python -m benchmarks.floor [--quick] [--n 10000] [--rounds 3] [--million]

Three 10,000-wide foreach flows (`benchmarks/floor_flows/`): a sync step setting one small
artifact, the same step async, an empty sync step. Each runs in aioflow and in the reference
orchestrator (`benchmarks/reference_orchestrator.py`, which persists the same rows and blobs),
always in fresh child processes, taking turns (aioflow, reference, aioflow, ...; each round
starts with the other tool than the last), `--rounds` times each; medians are printed.

Two kinds of child, for each tool and case:

- in-process: the child runs n = 1 untimed (imports, the store, first threads), then 1 and n,
  and reports their CPU time (`getrusage`, every thread of the process) and wall time, and the
  n run's memory: peak RSS after the run minus RSS before it. Per task: (run(n) - run(1)) /
  (n - 1), so the fixed costs of a run (its row, the graph, the last commit) cancel out. KB per
  task: that memory over n.
- whole process: `aioflow run FILE` (the reference's own command line for it), timed from spawn
  to exit, with its CPU time and peak RSS from `wait4`.

Under the table, each tool's CPU per task by thread: the event loop, the worker threads (sync
bodies) and the writer (the commits: the reference's writer thread, aioflow's anyio worker
threads), each thread read on its own clock (aioflow's by name, the reference's timing itself).

CPU time stays meaningful on a loaded machine, wall time does not: targets on per-task cost are
checked on CPU time, and the load average is printed at the start and the end. After the runs,
the stores the last aioflow and reference runs of each case left are compared (`floor_compare`):
a line under the table says whether they hold the same rows and blobs.

`--million` runs, instead, the sync-artifact flow at 1,000,000 tasks in aioflow alone, as one
`aioflow run` (wall, CPU, peak RSS; targets 30 s and 1 GB). It takes minutes: off by default.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .floor_compare import differences, summary

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "benchmarks" / "floor_flows"
#: case -> (title, flow file, CPU-per-task target in us)
CASES = {
    "sync": ("sync step, one small artifact", "sync_artifact.py", 20.0),
    "async": ("async step, one small artifact", "async_artifact.py", 20.0),
    "empty": ("empty sync step", "sync_empty.py", 12.0),
}
TOOLS = ("aioflow", "reference")
RATIO_TARGET = 1.3
WHOLE_TARGET_S = 0.3
KB_TARGET = 0.6
MILLION_S, MILLION_MB = 30.0, 1024.0


# -- children ---------------------------------------------------------------------------------


def _rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: Which of aioflow's threads does what, by thread name: the event loop, the sync bodies'
#: worker threads, and anyio's worker threads, where the batch writer commits.
_ROLES = (("MainThread", "loop"), ("aioflow-worker", "worker"), ("AnyIO worker", "writer"))


def _threads_cpu() -> dict[int, tuple[str, float]]:
    """Each live thread's role and CPU seconds so far (its own clock, read from this thread)."""
    found = {}
    for thread in threading.enumerate():
        role = next((r for prefix, r in _ROLES if thread.name.startswith(prefix)), "other")
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            found[thread.ident] = (role, time.clock_gettime(clock))
        except (OSError, ProcessLookupError):  # it ended meanwhile
            continue
    return found


def _by_role(before: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each role's threads spent since `before` (threads that ended meanwhile are
    not counted: aioflow's idle threads live on for seconds after a run)."""
    spent: dict[str, float] = {}
    for ident, (role, seconds) in _threads_cpu().items():
        spent[role] = spent.get(role, 0.0) + seconds - before.get(ident, (role, 0.0))[1]
    return spent


def child(tool: str, case: str, n: int, root: Path) -> dict[str, float]:
    """In this process: an untimed run of 1, then a run of 1 and a run of n, timed."""
    if tool == "aioflow":
        import anyio

        from aioflow import run_flow
        from aioflow.loader import load_flow

        flow = load_flow(FLOWS / CASES[case][1])

        async def timed(size: int, where: Path) -> dict[str, float]:
            before = _threads_cpu()
            await run_flow(flow, root=where, quiet=True, n=size, max_num_splits=max(size, 1))
            return _by_role(before)  # before the loop closes: anyio's threads end with it

        def go(size: int, where: Path) -> dict[str, float]:
            return dict(anyio.run(timed, size, where))
    else:
        from . import reference_orchestrator

        def go(size: int, where: Path) -> dict[str, float]:
            return reference_orchestrator.run(case, size, where).cpu  # by thread

    go(1, root / "warm-up")  # what the first run of a process loads and starts: not timed
    figures: dict[str, float] = {}
    for label, size in (("one", 1), ("many", n)):
        rss = _rss_kb()
        cpu, wall = _cpu(), time.perf_counter()
        threads = go(size, root / label)
        figures[f"{label}_wall"] = time.perf_counter() - wall
        figures.update({f"{label}_{thread}": seconds for thread, seconds in threads.items()})
        figures[f"{label}_cpu"] = _cpu() - cpu
        figures[f"{label}_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    return figures


def _in_process(tool: str, case: str, n: int, root: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.floor", "--child", tool, case, str(n), str(root)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # say why: a run that fails has no figures
        raise RuntimeError(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def whole_command(tool: str, case: str, n: int, root: Path) -> list[str]:
    """The command line running one case as a whole process."""
    if tool == "aioflow":
        return [sys.executable, "-m", "aioflow", "run", str(FLOWS / CASES[case][1]), "--quiet",
                "--n", str(n), "--max-num-splits", str(max(n, 1)), "--root", str(root)]  # fmt: skip
    return [sys.executable, "-m", "benchmarks.reference_orchestrator", "--case", case,
            "--n", str(n), "--root", str(root)]  # fmt: skip


def whole_process(command: list[str]) -> dict[str, float]:
    """Wall time from spawn to exit, CPU time and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{err}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "mb": usage.ru_maxrss / 1024}


# -- the session ------------------------------------------------------------------------------


def measure(n: int, rounds: int, work: Path) -> tuple[dict[tuple[str, str], list[dict]], list[str]]:
    """Every case, tool and round; the figures by (case, tool), and the stores' comparisons."""
    figures: dict[tuple[str, str], list[dict[str, float]]] = {}
    compared = []
    turn = 0
    for r in range(rounds):
        for case in CASES:
            order = TOOLS if turn % 2 == 0 else TOOLS[::-1]
            turn += 1
            for tool in order:
                folder = work / f"{case}-{tool}-{r}"
                runs = _in_process(tool, case, n, folder / "in")
                whole = whole_process(whole_command(tool, case, n, folder / "whole"))
                per = {
                    "cpu_us": (runs["many_cpu"] - runs["one_cpu"]) / max(n - 1, 1) * 1e6,
                    "wall_us": (runs["many_wall"] - runs["one_wall"]) / max(n - 1, 1) * 1e6,
                    "run_s": runs["many_wall"],
                    "kb": runs["many_kb"] / n,
                    "whole_s": whole["wall"],
                    "whole_cpu_s": whole["cpu"],
                    "whole_mb": whole["mb"],
                }
                for thread in ("loop", "worker", "writer"):  # the reference's threads
                    if f"many_{thread}" in runs:
                        spent = runs[f"many_{thread}"] - runs.get(f"one_{thread}", 0.0)
                        per[f"{thread}_us"] = spent / max(n - 1, 1) * 1e6
                figures.setdefault((case, tool), []).append(per)
    for case in CASES:
        last = rounds - 1
        a, ref = (work / f"{case}-{tool}-{last}" / "in" / "many" for tool in TOOLS)
        found = differences(a, ref)
        held = summary(a)
        what = (f"{held['tasks']:,} task rows, {held['blobs']:,} small blobs "
                f"({held['blob_bytes']:,} bytes), {held['files']} blob file(s) "
                f"({held['file_bytes']:,} bytes)")  # fmt: skip
        verdict = "the same" if not found else "DIFFERENT: " + "; ".join(found)
        compared.append(f"  {CASES[case][0]}: {verdict} ({what})")
    return figures, compared


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _ratio(a: list[dict[str, float]], ref: list[dict[str, float]], key: str) -> float:
    """aioflow's median over the reference's (nan when the reference's is not above zero: a
    per-task figure of a tiny n can be, within noise)."""
    below = _median(ref, key)
    return _median(a, key) / below if below > 0 else math.nan


def format_ratio(ratio: float) -> str:
    """A ratio as printed: "1.23x", or "-" when there is none (nan)."""
    return "-" if math.isnan(ratio) else f"{ratio:.2f}x"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(figures: dict[tuple[str, str], list[dict]], n: int, rounds: int) -> list[str]:
    """The table, the ratios and the targets, as lines."""
    lines = [f"{n:,}-wide foreach; median of {rounds} fresh processes per tool, alternating",
             "",
             f"{'case':<32} {'tool':<10} {'CPU/task':>9} {'wall/task':>10} {'run':>8} "
             f"{'process':>8} {'proc CPU':>9} {'peak MB':>8} {'KB/task':>8}"]  # fmt: skip
    for case, (title, _, _) in CASES.items():
        for i, tool in enumerate(TOOLS):
            runs = figures[(case, tool)]
            lines.append(
                f"{title if i == 0 else '':<32} {tool:<10} "
                f"{_median(runs, 'cpu_us'):>6.1f} us {_median(runs, 'wall_us'):>7.1f} us "
                f"{_median(runs, 'run_s'):>6.3f} s {_median(runs, 'whole_s'):>6.3f} s "
                f"{_median(runs, 'whole_cpu_s'):>7.3f} s {_median(runs, 'whole_mb'):>8.1f} "
                f"{_median(runs, 'kb'):>8.2f}"
            )
        a, ref = figures[(case, "aioflow")], figures[(case, "reference")]
        lines.append(
            f"{'':<32} {'ratio':<10} {format_ratio(_ratio(a, ref, 'cpu_us')):>9} "
            f"{format_ratio(_ratio(a, ref, 'wall_us')):>10} "
            f"{format_ratio(_ratio(a, ref, 'run_s')):>8} "
            f"{format_ratio(_ratio(a, ref, 'whole_s')):>8}"
        )
    lines += ["", "CPU per task by thread: the event loop, the worker threads (sync bodies), the "
              "writer (commits; aioflow's anyio threads):"]  # fmt: skip
    for case, (title, _, _) in CASES.items():
        for i, tool in enumerate(TOOLS):
            runs = figures[(case, tool)]
            split = "  ".join(
                f"{thread} {_median(runs, f'{thread}_us'):5.1f} us"
                for thread in ("loop", "worker", "writer")
                if all(f"{thread}_us" in run for run in runs)
            )  # fmt: skip
            lines.append(f"  {title if i == 0 else '':<32} {tool:<10} {split}")
    lines += ["", "CPU/task, wall/task: (run(n) - run(1)) / (n - 1) inside one process.  run: "
              "the n run's wall time.", "process: `aioflow run` (the reference's command line) "
              "from spawn to exit; proc CPU and peak MB of that process (wait4).", "KB/task: peak "
              "RSS after the n run minus RSS before it, over n.", "",
              "Targets (issue 19), aioflow:"]  # fmt: skip
    for case, (title, _, target) in CASES.items():
        a, ref = figures[(case, "aioflow")], figures[(case, "reference")]
        cpu = _median(a, "cpu_us")
        ratio = _ratio(a, ref, "cpu_us")
        lines.append(f"  {_verdict(cpu <= target)}  {title}: CPU per task {cpu:.1f} us "
                     f"(target <= {target:g} us)")  # fmt: skip
        lines.append(f"  {_verdict(ratio <= RATIO_TARGET)}  {title}: CPU per task / the "
                     f"reference's {format_ratio(ratio)} (target <= {RATIO_TARGET}x)")  # fmt: skip
    whole = _median(figures[("sync", "aioflow")], "whole_s")
    lines.append(f"  {_verdict(whole < WHOLE_TARGET_S)}  aioflow run of the {n:,}-wide foreach "
                 f"(sync, one artifact), whole process: {whole:.3f} s "
                 f"(target < {WHOLE_TARGET_S} s)")  # fmt: skip
    kb = _median(figures[("sync", "aioflow")], "kb")
    lines.append(f"  {_verdict(kb <= KB_TARGET)}  memory per foreach task (sync, one artifact): "
                 f"{kb:.2f} KB (target <= {KB_TARGET} KB)")  # fmt: skip
    return lines


def million(work: Path) -> list[str]:
    """The 1,000,000-task foreach, aioflow alone, as one `aioflow run`."""
    n = 1_000_000
    got = whole_process(whole_command("aioflow", "sync", n, work / "million"))
    return [
        f"aioflow run of a {n:,}-wide foreach (sync step, one small artifact):",
        f"  {_verdict(got['wall'] < MILLION_S)}  wall {got['wall']:.1f} s "
        f"(target < {MILLION_S:g} s), CPU {got['cpu']:.1f} s",
        f"  {_verdict(got['mb'] < MILLION_MB)}  peak RSS {got['mb']:.0f} MB "
        f"(target < {MILLION_MB:g} MB)",
    ]


def main() -> None:
    """Run the session and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="n = 200, one round (smoke test)")
    parser.add_argument("--n", type=int, help="foreach width (default 10,000)")
    parser.add_argument("--rounds", type=int, help="runs of each tool and case (default 3)")
    parser.add_argument("--million", action="store_true", help="1,000,000 tasks, aioflow alone")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, case, n, root = args.child
        print(json.dumps(child(tool, case, int(n), Path(root))))
        return
    n = args.n or (200 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aioflow-bench-floor-") as tmp:
        if args.million:  # on its own: it takes minutes, and the session is another command
            lines = million(Path(tmp))
        else:
            figures, compared = measure(n, rounds, Path(tmp))
            lines = report(figures, n, rounds)
            lines += ["", "Stores of the last runs, aioflow's against the reference's:", *compared]
    print("\n".join(lines))
    print(f"(load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
