"""LeaseKeeper over each adapter, on a fake clock: renewal every third of the lease, takeover, loss."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta

import pytest

from eventstore.clock import FakeClock
from eventstore.leasing import LeaseKeeper, LeaseLost, default_owner
from eventstore.ports import Store

ROLE = "capture:shop"
TTL = 30.0


def keeper(store: Store, owner: str, clock: FakeClock, ttl: float = TTL) -> LeaseKeeper:
    return LeaseKeeper(store.leases, ROLE, owner, ttl=ttl, clock=clock)


async def expiry(store: Store) -> float:
    """Seconds from the epoch of the fake clock's start to the current lease's expiry."""
    lease = await store.leases.get(ROLE)
    assert lease is not None
    return lease.expires_at.timestamp()


async def test_a_lease_renewed_every_third_of_its_time_holds_against_a_second_owner(
    store: Store, clock: FakeClock
) -> None:
    holder, rival = keeper(store, "holder", clock), keeper(store, "rival", clock)
    assert await holder.try_acquire() and holder.held
    for _ in range(15):  # five lease times, renewed exactly at each third
        clock.advance(TTL / 3)
        await holder.keep()
        # renewed now: the lease runs a whole lease time from this moment
        assert await expiry(store) == (clock.now() + timedelta(seconds=TTL)).timestamp()
        assert await rival.try_acquire() is False and rival.held is False
        assert (await store.leases.get(ROLE)).owner == "holder"  # type: ignore[union-attr]


async def test_keep_within_a_third_of_the_lease_time_costs_no_renewal(
    store: Store, clock: FakeClock
) -> None:
    holder = keeper(store, "holder", clock)
    assert await holder.try_acquire()
    first = await expiry(store)
    clock.advance(TTL / 3 - 0.5)
    await holder.keep()
    assert await expiry(store) == first  # not renewed: no command before a third has passed
    clock.advance(0.5)
    await holder.keep()
    assert await expiry(store) == first + TTL / 3


async def test_a_lease_renewed_late_is_lost_to_the_second_owner(
    store: Store, clock: FakeClock
) -> None:
    holder, rival = keeper(store, "holder", clock), keeper(store, "rival", clock)
    assert await holder.try_acquire()
    clock.advance(TTL / 3)
    await holder.keep()
    clock.advance(TTL + 1)  # the holder stalled past its lease time
    assert await rival.try_acquire() and rival.held
    with pytest.raises(LeaseLost, match=ROLE):
        await holder.keep()
    assert holder.held is False
    assert (await store.leases.get(ROLE)).owner == "rival"  # type: ignore[union-attr]
    # a lost lease is never kept silently: asked again at once, it is still lost
    with pytest.raises(LeaseLost, match=ROLE):
        await holder.keep()


async def test_a_lease_just_short_of_its_time_still_holds(store: Store, clock: FakeClock) -> None:
    holder, rival = keeper(store, "holder", clock), keeper(store, "rival", clock)
    assert await holder.try_acquire()
    clock.advance(TTL - 0.001)
    assert await rival.try_acquire() is False
    await holder.keep()  # late, but before the expiry: renewed
    clock.advance(TTL - 0.001)
    assert await rival.try_acquire() is False
    clock.advance(0.001)
    assert await rival.try_acquire() is True


async def test_is_ours_only_while_this_owner_holds_an_unexpired_lease(
    store: Store, clock: FakeClock
) -> None:
    """The stored lease decides: none, a rival's, or ours at its expiry are all not ours."""
    holder, rival = keeper(store, "holder", clock), keeper(store, "rival", clock)
    assert await holder.is_ours() is False  # no lease at all
    assert await rival.try_acquire()
    assert await holder.is_ours() is False  # a rival's lease, not expired
    assert await rival.is_ours() is True
    clock.advance(TTL)  # the rival's lease expires exactly now: a standby may take it
    assert await rival.is_ours() is False
    assert await holder.try_acquire()
    clock.advance(TTL - 0.001)
    assert await holder.is_ours() is True
    assert await rival.is_ours() is False  # an expired rival's own view: not ours either


async def test_a_standby_waits_until_the_lease_expires_then_takes_over(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()  # sleeping advances it: each poll of the standby moves a quarter lease
    holder, standby = keeper(store, "holder", clock), keeper(store, "standby", clock)
    assert await holder.try_acquire()
    start = clock.now()
    with caplog.at_level(logging.INFO, logger="eventstore.leasing"):
        assert await standby.acquire() is True
    waited = (clock.now() - start).total_seconds()
    assert TTL <= waited <= TTL + TTL / 4  # polled every quarter lease until it expired
    assert standby.held and (await store.leases.get(ROLE)).owner == "standby"  # type: ignore[union-attr]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"standing by: {ROLE} is held by holder", f"took over {ROLE}"]


async def test_a_standby_that_cannot_see_the_holder_says_so(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    holder, standby = keeper(store, "holder", clock), keeper(store, "standby", clock)
    assert await holder.try_acquire()

    async def vanished(role: str) -> None:  # the holder's lease read back as gone
        return None

    store.leases.get = vanished  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="eventstore.leasing"):
        assert await standby.acquire() is True
    assert [r.getMessage() for r in caplog.records] == [
        f"standing by: {ROLE} is held by another instance",
        f"took over {ROLE}",
    ]


async def test_a_free_lease_is_taken_at_once_without_standing_by(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    holder = keeper(store, "holder", clock)
    start = clock.now()
    with caplog.at_level(logging.INFO, logger="eventstore.leasing"):
        assert await holder.acquire(asyncio.Event()) is True
    assert clock.now() == start and caplog.records == []


async def test_a_standby_stops_waiting_when_told_to(store: Store, clock: FakeClock) -> None:
    holder, standby = keeper(store, "holder", clock), keeper(store, "standby", clock)
    assert await holder.try_acquire()
    stop = asyncio.Event()
    waiting = asyncio.create_task(standby.acquire(stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is False
    assert standby.held is False
    stop_now = asyncio.Event()
    stop_now.set()
    assert await keeper(store, "third", clock).acquire(stop_now) is False  # not even one try
    assert (await store.leases.get(ROLE)).owner == "holder"  # type: ignore[union-attr]


async def test_release_frees_the_role_at_once_and_only_when_held(
    store: Store, clock: FakeClock
) -> None:
    holder, rival = keeper(store, "holder", clock), keeper(store, "rival", clock)
    assert await holder.try_acquire()
    await rival.release()  # not held: gives nothing back
    assert (await store.leases.get(ROLE)).owner == "holder"  # type: ignore[union-attr]
    await holder.release()
    assert holder.held is False and await store.leases.get(ROLE) is None
    assert await rival.try_acquire()
    await holder.release()  # released already: the rival's lease stays
    assert (await store.leases.get(ROLE)).owner == "rival"  # type: ignore[union-attr]


async def test_a_failing_release_is_logged_never_raised(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    holder = keeper(store, "holder", clock)
    assert await holder.try_acquire()

    async def broken(role: str, owner: str) -> bool:
        raise ConnectionError("database gone")

    store.leases.release = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="eventstore.leasing"):
        await holder.release()
    assert holder.held is False
    assert [r.getMessage() for r in caplog.records] == [
        f"could not release {ROLE}; it expires in {TTL}s"
    ]


def test_default_owner_names_the_host_and_process_and_is_unique() -> None:
    first, second = default_owner(), default_owner()
    host, pid, suffix = first.split(":")
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert len(suffix) == 8 and int(suffix, 16) >= 0
    assert first != second


async def test_a_fresh_keeper_holds_nothing_and_its_first_keep_takes_the_lease(
    store: Store, clock: FakeClock
) -> None:
    fresh = keeper(store, "fresh", clock)
    before = fresh.held
    await fresh.keep()  # never renewed: renews (takes) at once
    assert (before, fresh.held) == (False, True)
    assert (await store.leases.get(ROLE)).owner == "fresh"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("ttl", "late", "waited"),
    [
        (10.0, 2.0, 10.0),  # polls every quarter lease: 2, 4.5, 7, 9.5, then 12 (expired at 10)
        (0.02, 0.0, 0.02),  # a tiny lease: every 10 ms at least, not more
    ],
)
async def test_a_standby_polls_every_quarter_of_the_lease(
    store: Store, ttl: float, late: float, waited: float
) -> None:
    clock = FakeClock()
    holder = keeper(store, "holder", clock, ttl=ttl)
    assert await holder.try_acquire()
    clock.advance(late)
    start = clock.now()
    assert await keeper(store, "standby", clock, ttl=ttl).acquire() is True
    assert (clock.now() - start).total_seconds() == pytest.approx(waited)
