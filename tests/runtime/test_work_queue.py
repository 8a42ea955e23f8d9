"""`WorkQueue`: the order tasks reach the scheduler's worker coroutines, cancellation, closing."""

from __future__ import annotations

import anyio
from anyio import wait_all_tasks_blocked

from aioflow.runtime.task import TaskSpec
from aioflow.runtime.work_queue import WorkQueue


def queued_spec(task_id: int) -> TaskSpec:
    return TaskSpec(task_id, "work", (), (), {})


async def test_a_task_goes_to_the_worker_that_waited_longest() -> None:
    queue = WorkQueue()
    took: list[tuple[str, TaskSpec | None]] = []

    async def worker(name: str) -> None:
        took.append((name, await queue.take()))

    first, second = queued_spec(1), queued_spec(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "a")
        await wait_all_tasks_blocked()
        tg.start_soon(worker, "b")
        await wait_all_tasks_blocked()
        queue.put(first)
        queue.put(second)
    assert took == [("a", first), ("b", second)]
    assert not queue.specs


async def test_a_task_put_as_its_worker_is_cancelled_goes_to_the_next_one() -> None:
    queue = WorkQueue()
    late, spec = queued_spec(1), queued_spec(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.take)
        await wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
        queue.put(late)  # handed to the waiting worker, cancelled already: it puts it back
    assert list(queue.specs) == [late]
    assert await queue.take() is late
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.take)
        await wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    queue.put(spec)  # the cancelled worker waits no more: the task is queued
    assert list(queue.specs) == [spec]


async def test_closing_the_queue_ends_its_waiting_workers_once_it_is_empty() -> None:
    queue = WorkQueue()
    took: list[TaskSpec | None] = []

    async def worker() -> None:
        took.append(await queue.take())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
        await wait_all_tasks_blocked()
        queue.close()
    assert took == [None, None]
    spec = queued_spec(1)
    queue.specs.append(spec)  # queued before the close: still taken
    assert await queue.take() is spec
    assert await queue.take() is None
