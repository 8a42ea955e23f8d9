"""A run report of a 10,000-task run (issue 17): how long `aioflow report` takes to write it,
how big the file is, and how long headless Chromium takes to open it.

    python -m benchmarks.run_report [--n 10000] [--repeats 3] [--quick]

A foreach of N tasks with small artifacts is run once into a store folder; then the report is
written `--repeats` times (the median is printed; target under 2 s), its size is printed
(target under 5 MB), and it is opened in Debian's chromium (`/usr/bin/chromium`, headless,
driven by Playwright; no browser is downloaded) `--repeats` times, each in a fresh page: the
median time to the load event, from the Navigation Timing entry (target under 2 s).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from aioflow import FlowSpec, Parameter, run_flow_sync, step
from aioflow.report import write_report

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
LOAD_MS = (
    "() => { const n = performance.getEntriesByType('navigation')[0];"
    " return n.loadEventEnd - n.startTime; }"
)


class WideFlow(FlowSpec):
    n = Parameter("n", default=1)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input
        self.label = f"item {self.input}"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


def load_seconds(report: Path, repeats: int, profile: Path) -> list[float]:
    """Seconds from navigation to the load event, once per fresh page."""
    from playwright.sync_api import sync_playwright

    samples = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        try:
            for _ in range(repeats):
                page = context.new_page()
                page.goto(report.as_uri(), wait_until="load", timeout=60_000)
                samples.append(page.evaluate(LOAD_MS) / 1000)
                page.close()
        finally:
            context.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="n=200, one repeat (a smoke test)")
    args = parser.parse_args()
    n, repeats = (200, 1) if args.quick else (args.n, args.repeats)

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run = run_flow_sync(
            WideFlow, root=Path(folder) / "store", quiet=True, max_num_splits=n + 1, n=n
        )
        ran = time.perf_counter() - started
        report = Path(folder) / "run.html"
        writes = []
        for _ in range(repeats):
            started = time.perf_counter()
            write_report(run, report)
            writes.append(time.perf_counter() - started)
        size = report.stat().st_size
        loads = load_seconds(report, repeats, Path(folder) / "profile")
    print(f"a foreach of {n:,} tasks ({n + 3:,} tasks in all), run in {ran:.1f} s")
    print(f"  report written in   {statistics.median(writes):6.2f} s (median of {repeats}; "
          "target under 2 s)")  # fmt: skip
    print(f"  report file size    {size / 1e6:6.2f} MB (target under 5 MB)")
    print(f"  opened (load event) {statistics.median(loads):6.2f} s in headless chromium "
          f"(median of {repeats}; target under 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
