"""`python -m benchmarks`: aioflow side by side with Metaflow and Prefect, and the scaling curve.

    python -m benchmarks                  # aioflow alone, every workload
    python -m benchmarks --peers          # install the peers once (a venv under
                                          # benchmarks/.cache), then compare all three
    python -m benchmarks --peers --save   # ... and write benchmarks/results + README table
    python -m benchmarks --quick          # smallest sizes, one run each (the smoke test)

Every run is a fresh process timed from spawn to exit; tools alternate run by run. The report
(the machine, the table, notes, and issue 6's targets) goes to stdout, progress to stderr.
Runs of peers that fail are reported, not fatal; the exit status is 1 only when an aioflow run
failed, so a slow machine never fails anything.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import machine, outputs, peers
from .cases import WORKLOADS, Case, Settings, build_cases
from .report import legend, notes, table, targets
from .session import Plan, Session
from .summary import summarize
from .tools import PEERS, TOOLS, make_tools

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LAST_RUN = HERE / ".cache" / "last-run"


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def _names(text: str, allowed: tuple[str, ...]) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    for name in names:
        if name not in allowed:
            raise argparse.ArgumentTypeError(f"{name!r}: choose from {', '.join(allowed)}")
    return names


def _peer_max(text: str) -> dict[str, int]:
    """`1000` (every peer) or `metaflow=1000,prefect=10000`."""
    if "=" not in text:
        return dict.fromkeys(PEERS, int(text.replace("_", "")))
    limits = {}
    for part in text.split(","):
        tool, _, value = part.partition("=")
        limits[_names(tool, PEERS)[0]] = int(value.replace("_", ""))
    return limits


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add(
        "--peers",
        action="store_true",
        help="compare with Metaflow and Prefect (installs them into benchmarks/.cache once)",
    )
    add(
        "--tools",
        type=lambda t: _names(t, TOOLS),
        default=None,
        help="comma-separated tools [default: aioflow, plus the peers with --peers]",
    )
    add(
        "--workloads",
        type=lambda t: _names(t, WORKLOADS),
        default=list(WORKLOADS),
        help=f"comma-separated workloads [default: {','.join(WORKLOADS)}]",
    )
    add(
        "--sizes",
        type=_ints,
        default=[10, 100, 1_000, 10_000, 100_000],
        help="foreach sizes; N=1 is always added as the baseline [default: %(default)s]",
    )
    add(
        "--peer-max-n",
        type=_peer_max,
        default={"metaflow": 1_000, "prefect": 10_000},
        help="largest N a peer runs, e.g. 1000 or metaflow=1000,prefect=10000 "
        "[default: metaflow=1000,prefect=10000]",
    )
    add("--repeats", type=int, default=3, help="runs per case for peers [default: 3]")
    add("--aioflow-repeats", type=int, default=5, help="runs per case for aioflow [default: 5]")
    add(
        "--long-run",
        type=float,
        default=30.0,
        help="a case whose first run takes longer (s) is not repeated [default: 30]",
    )
    add("--timeout", type=float, default=1800.0, help="seconds before a run is killed")
    add("--big-mb", type=int, default=200, help="size of the big artifact [default: 200]")
    add("--cpu-tasks", type=int, default=8, help="CPU-bound tasks [default: 8]")
    add(
        "--cpu-iterations",
        type=int,
        default=0,
        help="iterations per CPU task [default: the workloads' own, about 1 s]",
    )
    add("--async-tasks", type=int, default=1_000, help="async steps [default: 1000]")
    add(
        "--quick",
        action="store_true",
        help="smallest sizes, one run each: sizes 10, 8 MB, 8 x 0.01 s CPU, 20 async steps",
    )
    add(
        "--out",
        type=Path,
        default=None,
        help=f"where to write CSV/PNG/table [default: {LAST_RUN}, or {RESULTS} with --save]",
    )
    add(
        "--save",
        action="store_true",
        help="write to benchmarks/results and update benchmarks/README.md's table",
    )
    add("--keep", action="store_true", help="keep the session's stores and logs")
    return p  # fmt: skip


def _settings(args: argparse.Namespace) -> tuple[Settings, Plan]:
    if args.quick:
        args.sizes, args.big_mb, args.async_tasks = [10], 8, 20
        args.cpu_iterations = args.cpu_iterations or 70_000
        args.repeats = args.aioflow_repeats = 1
    settings = Settings(
        sizes=args.sizes,
        big_mb=args.big_mb,
        cpu_tasks=args.cpu_tasks,
        cpu_iterations=args.cpu_iterations,
        async_tasks=args.async_tasks,
        workloads=args.workloads,
        peer_max_n=args.peer_max_n,
    )
    plan = Plan(args.repeats, args.aioflow_repeats, args.long_run, args.timeout)
    return settings, plan


def _tool_names(args: argparse.Namespace) -> tuple[list[str], str | None]:
    names = args.tools or (["aioflow", *PEERS] if args.peers else ["aioflow"])
    peer_python = None
    if any(n in PEERS for n in names):
        found = peers.ensure_venv() if args.peers else peers.installed_python()
        if found is None:
            raise SystemExit("Peers need their venv: add --peers to install it.")
        peer_python = str(found)
    return names, peer_python


def _report(info: dict[str, object], body: str, extra: list[str], goals: list[str]) -> str:
    took = f"; the session took {info['minutes']} min" if "minutes" in info else ""
    lines = [f"aioflow benchmarks on {machine.summary(info)}{took}", "", body, "", legend()]
    if extra:
        lines += ["", "Notes:", *(f"  - {n}" for n in extra)]
    lines += ["", "Targets (issue 6):", *(f"  {g}" for g in goals)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the report; see the module docstring."""
    args = parser().parse_args(argv)
    settings, plan = _settings(args)
    names, peer_python = _tool_names(args)
    versions = {"aioflow": _aioflow_version()}
    if peer_python is not None:
        versions.update(peers.versions(peer_python, [n for n in names if n in PEERS]))
    info = machine.describe(versions)
    cases = build_cases(settings)
    session_dir = Path(tempfile.mkdtemp(prefix="aioflow-bench-"))
    started = time.monotonic()
    try:
        tools = make_tools(names, peer_python, session_dir)
        logs = session_dir / "logs"
        logs.mkdir()
        session = Session(tools, settings, plan, logs)
        print(f"Session in {session_dir}; warming up...", file=sys.stderr, flush=True)
        broken = session.warm_up(Case("linear", "warm-up (linear)"))
        outcomes = session.run(cases)
    finally:
        if args.keep:
            print(f"Kept {session_dir}", file=sys.stderr)
        else:
            shutil.rmtree(session_dir, ignore_errors=True)
    info["load_after"] = machine.load_average()
    info["minutes"] = round((time.monotonic() - started) / 60, 1)
    rows = summarize(outcomes, names, cases)
    extra = [f"warm-up failed for {name}" for name in broken] + notes(rows)
    report = _report(info, table(rows), extra, targets(rows))
    print(report)
    out = args.out or (RESULTS if args.save else LAST_RUN)
    written = outputs.save(out, outcomes, rows, report, info)
    if args.save and outputs.update_readme(HERE / "README.md", report):
        written.append(HERE / "README.md")
    print("Wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    failed = any(o.tool == "aioflow" and len(o.good) < len(o.runs) for o in outcomes)
    return 1 if failed else 0


def _aioflow_version() -> str:
    try:
        from aioflow import __version__
    except ImportError:
        return "?"
    return __version__


if __name__ == "__main__":
    raise SystemExit(main())
