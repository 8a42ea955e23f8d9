"""CPU-bound: a foreach of 8 tasks of about one second of pure-Python work each, on the default
task runner (Prefect: a thread pool)."""

import os

from bench_common import CPU_ITERATIONS, burn, note, prefect_args
from prefect import flow, task, unmapped


@task
def start(n):
    return list(range(n))


@task
def crunch(item, iterations):
    return burn(iterations + item), os.getpid()


@task
def join(results):
    return [r for r, _ in results], sorted({pid for _, pid in results})


@task
def end(n, joined):
    results, pids = joined
    assert len(results) == n
    note(f"the {n} CPU tasks ran in {len(pids)} process(es)")


@flow
def bench_cpu(n: int = 8, iterations: int = CPU_ITERATIONS):
    """start -> crunch x N (mapped on the default task runner) -> join -> end."""
    items = start(n)
    results = crunch.map(items, iterations=unmapped(iterations))
    end(n, join(results))


if __name__ == "__main__":
    args = prefect_args(n=8, iterations=CPU_ITERATIONS)
    bench_cpu(args.n, args.iterations)
