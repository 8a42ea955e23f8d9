"""Linear: 10 steps in a row, each adding one to a counter (Prefect)."""

from bench_common import LINEAR_STEPS
from prefect import flow, task


@task
def start():
    return 1


@task
def add_one(count):
    return count + 1


@task
def end(count):
    count += 1
    assert count == LINEAR_STEPS, count
    return count


@flow
def bench_linear():
    """start -> 8 steps -> end, the counter passed from task to task."""
    count = start()
    for _ in range(LINEAR_STEPS - 2):
        count = add_one(count)
    end(count)


if __name__ == "__main__":
    bench_linear()
