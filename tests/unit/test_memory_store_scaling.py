"""The memory store's listings: a page costs the same however long the list.

Before, each page of parked events sorted them all, each admin action re-sorted
the trail and each page of a read model sorted its keys: reading 20,000 parked
events a page at a time took 190× as long as 2,000, appending 20,000 actions 56×
(quadratic), and a page of rows at 500,000 rows 185× one at 5,000. Now a page is
a bisection and an append one insertion. Times only as ratios, best of three (a
loaded machine only ever adds time).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from eventstore.memory.readmodels import MemoryReadModels
from eventstore.memory.subscriptions import MemoryAdminActions, MemoryDeliveries
from eventstore.subscription_records import AdminAction, ParkedEvent

T = datetime(2026, 1, 1, tzinfo=UTC)
SMALL, LARGE = 2_000, 20_000
# Linear work grows 10× from SMALL to LARGE; the sorting it replaced, 100× or more.
MAX_RATIO = 30


async def best_of_three(work: Callable[[], Awaitable[None]]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        await work()
        best = min(best, time.perf_counter() - started)
    return best


async def page_through_parked(n: int) -> float:
    deliveries = MemoryDeliveries()
    await deliveries.park(
        [
            ParkedEvent(
                name="s",
                seq=seq,
                stream="orders",
                entity_key=str(seq),
                type="updated",
                attempts=7,
                last_error="the receiver answered 400",
                parked_at=T,
            )
            for seq in range(n, 0, -1)
        ]
    )

    async def read_all() -> None:
        after, seen = 0, 0
        while page := await deliveries.parked("s", after_seq=after, limit=100):
            after, seen = page[-1].seq, seen + len(page)
        assert seen == n

    return await best_of_three(read_all)


async def append_and_page_the_trail(n: int) -> float:
    async def work() -> None:
        trail = MemoryAdminActions()
        for i in range(n):
            action = AdminAction(id=f"{i:08d}", at=T, actor="a", action="pause", target="s")
            await trail.append(action)
        after, seen = None, 0
        while page := await trail.page(after=after, limit=100):
            after, seen = page[-1].id, seen + len(page)
        assert seen == n

    return await best_of_three(work)


async def test_paging_through_parked_events_is_linear() -> None:
    small, large = await page_through_parked(SMALL), await page_through_parked(LARGE)
    assert large / small <= MAX_RATIO, (small, large)


async def test_the_admin_trail_appends_and_pages_in_linear_time() -> None:
    small, large = await append_and_page_the_trail(SMALL), await append_and_page_the_trail(LARGE)
    assert large / small <= MAX_RATIO, (small, large)


async def per_page_of_rows(n: int) -> float:
    """Seconds per page of 100 rows, paging through `n` rows while new ones arrive."""
    rows = MemoryReadModels()
    await rows.write("rm", [(f"k{i:09d}", {"status": "paid"}) for i in range(n)])

    async def read_all() -> None:
        after, pages = None, 0
        while page := await rows.query("rm", filters={"status": "paid"}, limit=100, after=after):
            after, pages = page[-1]["_id"], pages + 1
            # A new order between two pages (its key sorts anywhere in the table).
            await rows.write("rm", [(f"k{pages * 7919 % n:09d}-{n}", {"status": "new"})])

    return await best_of_three(read_all) / (n / 100)


async def test_a_page_of_rows_costs_the_same_at_ten_times_the_rows() -> None:
    small, large = await per_page_of_rows(5_000), await per_page_of_rows(50_000)
    assert large / small <= 3, (small, large)  # sorting every page: 8x here, 185x at 500,000
