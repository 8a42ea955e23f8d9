"""Foreach: N trivial tasks, each doubling its item, summed by a join (Prefect)."""

from bench_common import prefect_args
from prefect import flow, task


@task
def start(n):
    return list(range(n))


@task
def work(item):
    return item * 2


@task
def join(doubled):
    return sum(doubled)


@task
def end(n, total):
    assert total == n * (n - 1), total


@flow
def bench_foreach(n: int = 10):
    """start -> work x N (mapped on the default task runner) -> join -> end."""
    items = start(n)
    doubled = work.map(items)
    total = join(doubled)
    end(n, total)


if __name__ == "__main__":
    bench_foreach(prefect_args(n=10).n)
