"""Waiting with a timeout, and cancelling helper tasks, without losing our own cancellation.

Invariants:
- A task cancelled while it waits here ends cancelled, whatever completes at the
  same moment. Python 3.11's `asyncio.wait_for` breaks this: when the awaited
  future completes in the loop iteration in which the waiting task is cancelled,
  it returns the result and the cancellation is lost (CPython gh-86296, fixed in
  3.12). A worker that loses its cancellation never ends, so `within` is built on
  `asyncio.timeout`, which counts cancellation requests.
- `cancel_and_wait` waits for the cancelled helpers with `asyncio.wait`, which
  never raises their outcome: a `CancelledError` that reaches the caller is the
  caller's own, and it propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`await awaitable`, or raise `TimeoutError` after `seconds` (None: no limit)."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def wait_set(event: asyncio.Event, seconds: float | None) -> bool:
    """True once `event` is set, False when `seconds` pass first."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel helper tasks and wait until they end (their outcome ignored; ours propagates)."""
    helpers = list(tasks)
    pending = [t for t in helpers if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
    for t in helpers:
        if not t.cancelled():
            t.exception()  # retrieved: no "exception was never retrieved" warning


async def cancel_within(
    tasks: Sequence[asyncio.Future[Any]], seconds: float, *, cancel: bool = True
) -> int:
    """Cancel `tasks` (unless `cancel` is False) and wait for them, at most `seconds`.

    Returns how many did not end in time: cancelled (again), and left to end on their own.
    """
    waiting = [t for t in tasks if not t.done()]
    if cancel:
        for t in waiting:
            t.cancel()
    if waiting and seconds > 0:
        await asyncio.wait(waiting, timeout=seconds)
    late = [t for t in waiting if not t.done()]
    for t in late:
        t.cancel()
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: no "exception was never retrieved" warning
    return len(late)


async def unless_set(awaitable: Awaitable[T], event: asyncio.Event) -> T | None:
    """`await awaitable`, or cancel it and answer None once `event` is set first.

    A result that is there when the event is set too is still answered. Cancelled
    while waiting, both helpers are cancelled and waited for, and the cancellation
    propagates.
    """
    task = asyncio.ensure_future(awaitable)
    if event.is_set():
        await cancel_and_wait([task])
        return None
    stopped = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        await cancel_and_wait([task, stopped])
        raise
    if task in done:
        await cancel_and_wait([stopped])
        return task.result()
    await cancel_and_wait([task])
    return None
