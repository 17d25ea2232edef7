"""The Snapshots port, over both adapters (memory, mongo on mongomock-motor)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import Decimal128, ObjectId

from eventstore.model import GENESIS_HASH, EntitySnapshot
from eventstore.ports import Store

T0 = datetime(2026, 3, 1, tzinfo=UTC)
OID = ObjectId("65f000000000000000000001")


def snap(version: int, entity_id: object = OID, **kw: object) -> EntitySnapshot:
    values: dict[str, object] = {
        "stream": "orders",
        "entity_id": entity_id,
        "entity_key": str(entity_id),
        "version": version,
        "occurred_at": T0 + timedelta(minutes=version),
        "exists": True,
        "document": {"_id": entity_id, "v": version, "total": Decimal128("9.90")},
        "event_hash": f"{version:064x}",
    }
    values.update(kw)
    return EntitySnapshot(**values)  # type: ignore[arg-type]


@pytest.fixture
async def snapshots_store(store: Store) -> Store:
    await store.snapshots.ensure_indexes()
    return store


async def test_latest_by_version_and_by_time(snapshots_store: Store) -> None:
    s = snapshots_store.snapshots
    await s.put_many([snap(100), snap(200), snap(300), snap(100, entity_id=7)])
    assert await s.latest("orders", OID) == snap(300)
    assert await s.latest("orders", OID, max_version=300) == snap(300)
    assert await s.latest("orders", OID, max_version=299) == snap(200)
    assert await s.latest("orders", OID, max_version=99) is None
    assert await s.latest("orders", OID, at=T0 + timedelta(minutes=250)) == snap(200)
    assert await s.latest("orders", OID, at=T0 + timedelta(minutes=200)) == snap(200)
    assert await s.latest("orders", OID, at=T0 + timedelta(minutes=99)) is None
    both = await s.latest("orders", OID, max_version=150, at=T0 + timedelta(days=1))
    assert both == snap(100)
    assert await s.latest("orders", OID, max_version=300, at=T0 + timedelta(minutes=150)) == snap(
        100
    )
    # the typed _id is the identity: 7 and "7" are different entities
    assert await s.latest("orders", 7) == snap(100, entity_id=7)
    assert await s.latest("orders", "7") is None
    assert await s.latest("refunds", OID) is None


async def test_a_time_is_compared_at_millisecond_precision(snapshots_store: Store) -> None:
    s = snapshots_store.snapshots
    at = T0 + timedelta(milliseconds=123)
    await s.put_many([snap(10, occurred_at=at)])
    assert await s.latest("orders", OID, at=at) is not None
    assert await s.latest("orders", OID, at=at + timedelta(microseconds=999)) is not None
    assert await s.latest("orders", OID, at=at - timedelta(microseconds=1)) is None


async def test_a_second_put_replaces_the_state_and_keeps_the_nearest_link(
    snapshots_store: Store,
) -> None:
    s = snapshots_store.snapshots
    await s.put_many([snap(100, next_version=300)])
    # a reader that knows of a nearer later snapshot lowers the link ...
    await s.put_many([snap(100, next_version=200, document={"healed": True})])
    stored = await s.latest("orders", OID)
    assert stored == snap(100, next_version=200, document={"healed": True})
    # ... one that knows of a farther one, or of none, leaves it
    await s.put_many([snap(100, next_version=400)])
    await s.put_many([snap(100)])
    assert await s.latest("orders", OID) == snap(100, next_version=200)


async def test_states_round_trip_whole(snapshots_store: Store) -> None:
    s = snapshots_store.snapshots
    gone = snap(100, exists=False, document=None)
    found = snap(
        200,
        findings=[{"version": 150, "kind": "pre_image_mismatch", "detail": "status differs"}],
        next_version=300,
    )
    await s.put_many([gone, found])
    assert await s.latest("orders", OID, max_version=100) == gone
    assert await s.latest("orders", OID) == found


async def test_the_version_zero_snapshot_comes_before_any_time(snapshots_store: Store) -> None:
    s = snapshots_store.snapshots
    genesis = snap(
        0,
        occurred_at=datetime(1, 1, 1, tzinfo=UTC),
        exists=False,
        document=None,
        event_hash=GENESIS_HASH,
        next_version=100,
    )
    await s.put_many([genesis, snap(100)])
    assert await s.latest("orders", OID, at=datetime(1970, 1, 1, tzinfo=UTC)) == genesis
    assert await s.latest("orders", OID, max_version=99) == genesis
    assert await s.latest("orders", OID) == snap(100)


async def test_times_that_go_back_still_give_the_newest_version_at_or_before(
    snapshots_store: Store,
) -> None:
    s = snapshots_store.snapshots
    late, early = T0 + timedelta(hours=2), T0 + timedelta(hours=1)
    await s.put_many([snap(100, occurred_at=late), snap(200, occurred_at=early)])
    found = await s.latest("orders", OID, at=early)
    assert found is not None and found.version == 200
    found = await s.latest("orders", OID, at=late, max_version=150)
    assert found is not None and found.version == 100


async def test_a_put_stores_a_copy_of_the_state(snapshots_store: Store) -> None:
    s = snapshots_store.snapshots
    mine = snap(100)
    await s.put_many([mine])
    assert mine.document is not None
    mine.document["v"] = "edited after the put"
    assert await s.latest("orders", OID) == snap(100)


async def test_nothing_to_put_is_fine(snapshots_store: Store) -> None:
    await snapshots_store.snapshots.put_many([])
    assert await snapshots_store.snapshots.latest("orders", OID) is None
