"""The Leases contract (compare-and-set), run over every adapter with a fake clock."""

from __future__ import annotations

from datetime import timedelta

from eventstore.clock import FakeClock
from eventstore.model import Lease
from eventstore.ports import Store

ROLE = "ingester:shop"
TTL = 10.0


async def test_free_role_is_taken(store: Store, clock: FakeClock) -> None:
    lease = await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)

    expected = Lease(role=ROLE, owner="a", expires_at=clock.now() + timedelta(seconds=TTL))
    assert lease == expected
    assert await store.leases.get(ROLE) == expected


async def test_second_owner_is_refused_while_the_lease_runs(store: Store, clock: FakeClock) -> None:
    first = await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)
    clock.advance(TTL - 0.001)

    assert await store.leases.acquire(ROLE, "b", now=clock.now(), ttl=TTL) is None

    assert await store.leases.get(ROLE) == first


async def test_second_owner_takes_over_when_the_lease_expires(
    store: Store, clock: FakeClock
) -> None:
    await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)
    clock.advance(TTL)  # expires_at <= now: expired

    taken = await store.leases.acquire(ROLE, "b", now=clock.now(), ttl=TTL)

    assert taken == Lease(role=ROLE, owner="b", expires_at=clock.now() + timedelta(seconds=TTL))
    assert await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL) is None
    assert await store.leases.get(ROLE) == taken


async def test_owner_renewal_extends_the_lease(store: Store, clock: FakeClock) -> None:
    await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)
    clock.advance(TTL / 2)

    renewed = await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)

    assert renewed is not None
    assert renewed.expires_at == clock.now() + timedelta(seconds=TTL)
    clock.advance(TTL * 0.9)  # past the first expiry, within the renewed one
    assert await store.leases.acquire(ROLE, "b", now=clock.now(), ttl=TTL) is None


async def test_owner_may_renew_an_expired_lease(store: Store, clock: FakeClock) -> None:
    await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)
    clock.advance(TTL * 3)

    again = await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)

    assert again is not None and again.owner == "a"


async def test_expired_lease_is_still_reported(store: Store, clock: FakeClock) -> None:
    lease = await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)
    clock.advance(TTL * 5)

    assert await store.leases.get(ROLE) == lease


async def test_release_frees_the_role_for_the_holder_only(store: Store, clock: FakeClock) -> None:
    await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)

    assert await store.leases.release(ROLE, "b") is False
    held = await store.leases.get(ROLE)
    assert held is not None and held.owner == "a"
    assert await store.leases.release(ROLE, "a") is True

    assert await store.leases.get(ROLE) is None
    assert await store.leases.release(ROLE, "a") is False
    taken = await store.leases.acquire(ROLE, "b", now=clock.now(), ttl=TTL)
    assert taken is not None and taken.owner == "b"


async def test_roles_are_independent(store: Store, clock: FakeClock) -> None:
    await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=TTL)

    other = await store.leases.acquire("projection:orders_by_status", "b", now=clock.now(), ttl=TTL)

    assert other is not None and other.owner == "b"
    assert await store.leases.get("projection:missing") is None


async def test_lease_times_are_kept_to_the_millisecond(store: Store, clock: FakeClock) -> None:
    clock.advance(0.0004567)

    lease = await store.leases.acquire(ROLE, "a", now=clock.now(), ttl=1.5)

    assert lease is not None
    assert lease.expires_at.microsecond % 1000 == 0
    assert await store.leases.get(ROLE) == lease
