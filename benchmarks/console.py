"""What the console costs on a terminal: a wide foreach with the live display against `--quiet`.

    python -m benchmarks.console [--n 10000] [--repeats 3] [--quick]

Runs `aioflow run wide_flow.py` (start -> N empty tasks -> join -> end) in a pseudo-terminal,
so the command really draws its live display, and the same command with `--quiet`, alternately,
each in a fresh process and a fresh store; prints the median wall time of each and their ratio.
The target (issue 14) is a ratio of at most 1.10 for N = 10,000.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

WIDE_FLOW = """
from aioflow import FlowSpec, Parameter, step


class WideFlow(FlowSpec):
    n = Parameter("n", default=10_000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideFlow()
"""


def _aioflow() -> list[str]:
    beside = Path(sys.executable).with_name("aioflow")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "aioflow"]


def _take_the_terminal() -> None:  # in the child: the pty becomes its controlling terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, bytes]:
    """Run `argv` on a pseudo-terminal (120 x 40), reading all it prints; (seconds, output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env={**env, "TERM": "xterm-256color"},
        stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=_take_the_terminal,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last holder of the terminal closed it
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait()
    finally:
        os.close(master)
    took = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{argv} exited with {code}:\n{b''.join(chunks).decode()[-2000:]}")
    return took, b"".join(chunks)


def measure(n: int, repeats: int) -> dict[str, float]:
    """Median seconds of the run on a terminal and with --quiet, and their ratio."""
    work = Path(tempfile.mkdtemp(prefix="aioflow-console-bench-"))
    try:
        (work / "wide_flow.py").write_text(WIDE_FLOW)
        times: dict[str, list[float]] = {"terminal": [], "quiet": []}
        for i in range(repeats):
            for case, extra in (("terminal", []), ("quiet", ["--quiet"])):
                env = {**os.environ, "AIOFLOW_ROOT": str(work / f"store-{case}-{i}")}
                argv = [*_aioflow(), "run", "wide_flow.py", "--n", str(n),
                        "--max-num-splits", str(n), *extra]  # fmt: skip
                took, _ = run_in_terminal(argv, work, env)
                times[case].append(took)
        terminal = statistics.median(times["terminal"])
        quiet = statistics.median(times["quiet"])
        return {"n": n, "terminal_s": terminal, "quiet_s": quiet, "ratio": terminal / quiet}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="foreach width")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case (median)")
    parser.add_argument("--quick", action="store_true", help="n=1000, one run each")
    args = parser.parse_args(argv)
    n, repeats = (1000, 1) if args.quick else (args.n, args.repeats)
    result = measure(n, repeats)
    print(
        f"{n:,} tasks: {result['terminal_s']:.2f} s on a terminal (live display), "
        f"{result['quiet_s']:.2f} s with --quiet: ratio {result['ratio']:.3f} "
        f"(target <= 1.10; median of {repeats})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
