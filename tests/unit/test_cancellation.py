"""A task cancelled while it waits, or while it waits for helpers it cancelled, ends cancelled.

Each scenario is driven step by step (no timing): the cancellation arrives at the
exact moment that Python 3.11's `asyncio.wait_for`, or awaiting a cancelled helper
under `suppress(CancelledError)`, would swallow it; the task then never ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from eventstore.awaiting import cancel_and_wait, unless_set, wait_set, within
from eventstore.capture_worker import CaptureWorker
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.supervisor import Supervisor
from tests.integration.ingest_helpers import settings


async def _settle_loop(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def _assert_ends_cancelled(task: asyncio.Task[Any]) -> None:
    # Bounded: the defect is a task that goes on after its cancel (here it would return).
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "the cancelled task did not end"
    assert task.cancelled(), f"the cancellation was swallowed: {task!r}"


class Stubborn:
    """A helper that, once cancelled, ends only when `release` is set (then ends cancelled)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            await self.release.wait()
            raise


async def test_a_cancel_arriving_as_the_awaited_event_is_set_is_not_lost() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_set(event, 10))
    await _settle_loop()
    event.set()  # the event's waiter completes in the same loop iteration as...
    task.cancel()  # ...the cancel: 3.11's wait_for returned True here
    await _assert_ends_cancelled(task)


async def test_wait_set_says_whether_the_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.001) is False
    event.set()
    assert await wait_set(event, 0) is True


async def test_within_raises_timeout_error_and_passes_the_result() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(10), 0.001)
    assert await within(asyncio.sleep(0, result=7), 1) == 7


async def test_a_task_cancelled_while_waiting_for_its_cancelled_helpers_ends_cancelled() -> None:
    helper = Stubborn()
    inner = asyncio.ensure_future(helper.run())
    await _settle_loop()
    task = asyncio.create_task(cancel_and_wait([inner]))
    await helper.cancelled.wait()
    task.cancel()  # our own cancellation, while the helper still ends
    helper.release.set()
    await _assert_ends_cancelled(task)
    await asyncio.wait({inner})
    assert inner.cancelled()


async def test_supervisor_sleep_cancelled_while_its_helper_ends_is_cancelled() -> None:
    sup = Supervisor(clock=FakeClock(), instance="here", lease_seconds=10)
    helper = Stubborn()
    task = asyncio.create_task(sup._interruptible(helper.run()))
    await _settle_loop()
    sup.stopping.set()  # the wait ends: the sleeping helper is cancelled and awaited
    await helper.cancelled.wait()
    task.cancel()  # the supervisor's task is cancelled meanwhile
    helper.release.set()
    await _assert_ends_cancelled(task)


async def test_capture_worker_close_cancelled_while_the_workload_ends_is_cancelled() -> None:
    clock = FakeClock()
    ingester = Ingester(
        store=MemoryStore(),
        source=MemoryChangeFeed(clock=clock).source(["orders"], batch_size=10, max_await=0.01),
        settings=settings(),
        clock=clock,
        owner="here",
    )
    helper = Stubborn()

    def workload() -> Coroutine[Any, Any, None]:
        return helper.run()

    worker = CaptureWorker(ingester, follow=False, workload=workload)
    worker._workload_task = asyncio.create_task(workload())
    await _settle_loop()
    task = asyncio.create_task(worker.close())
    await helper.cancelled.wait()
    task.cancel()
    helper.release.set()
    await _assert_ends_cancelled(task)


async def test_unless_set_answers_the_result_or_none_once_the_event_is_set() -> None:
    event = asyncio.Event()
    assert await unless_set(asyncio.sleep(0, result=7), event) == 7
    # The event set while it waits: the awaitable is cancelled, and the answer is None.
    slow = asyncio.ensure_future(asyncio.sleep(3600, result=1))
    waiting = asyncio.ensure_future(unless_set(slow, event))
    await _settle_loop()
    event.set()
    assert await waiting is None
    assert slow.cancelled()
    # Set already: the awaitable never runs on.
    never = asyncio.ensure_future(asyncio.sleep(3600, result=1))
    assert await unless_set(never, event) is None
    assert never.cancelled()
    # Its error is raised as it is.
    with pytest.raises(ZeroDivisionError):
        await unless_set(asyncio.ensure_future(_divide()), asyncio.Event())


async def _divide() -> float:
    return 1 / 0


async def test_unless_set_cancelled_while_it_waits_ends_cancelled_with_its_helper() -> None:
    slow = asyncio.ensure_future(asyncio.sleep(3600))
    task = asyncio.ensure_future(unless_set(slow, asyncio.Event()))
    await _settle_loop()
    task.cancel()
    await _assert_ends_cancelled(task)
    assert slow.cancelled()
