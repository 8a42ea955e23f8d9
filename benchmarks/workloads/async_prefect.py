"""I/O-bound: a foreach of 1,000 async tasks, each awaiting 0.1 s, gathered on the flow's event
loop (Prefect)."""

import asyncio

from bench_common import ASYNC_SLEEP, prefect_args
from prefect import flow, task


@task
def start(n):
    return list(range(n))


@task
async def wait(item):
    await asyncio.sleep(ASYNC_SLEEP)
    return item


@task
def join(echoes):
    return sum(echoes)


@task
def end(n, total):
    assert total == n * (n - 1) // 2, total


@flow
async def bench_async(n: int = 1000):
    """start -> wait x N (async, all awaited at once) -> join -> end."""
    items = start(n)
    echoes = await asyncio.gather(*(wait(item) for item in items))
    end(n, join(echoes))


if __name__ == "__main__":
    asyncio.run(bench_async(prefect_args(n=1000).n))
