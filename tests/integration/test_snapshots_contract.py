"""The Snapshots port, over both adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId

from eventstore.model import EntitySnapshot
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
        "document": {"_id": entity_id, "v": version},
        "event_hash": f"{version:064x}",
    }
    values.update(kw)
    return EntitySnapshot(**values)  # type: ignore[arg-type]


async def test_latest_by_version_and_by_time(store: Store) -> None:
    await store.snapshots.ensure_indexes()
    await store.snapshots.put_many([snap(100), snap(200), snap(300), snap(100, entity_id=7)])
    assert await store.snapshots.latest("orders", OID) == snap(300)
    assert await store.snapshots.latest("orders", OID, max_version=299) == snap(200)
    assert await store.snapshots.latest("orders", OID, max_version=99) is None
    assert await store.snapshots.latest("orders", OID, at=T0 + timedelta(minutes=250)) == snap(200)
    assert await store.snapshots.latest("orders", OID, at=T0 + timedelta(minutes=200)) == snap(200)
    assert await store.snapshots.latest(
        "orders", OID, max_version=150, at=T0 + timedelta(days=1)
    ) == snap(100)
    assert await store.snapshots.latest("orders", 7) == snap(100, entity_id=7)
    assert await store.snapshots.latest("orders", "7") is None
    assert await store.snapshots.latest("refunds", OID) is None


async def test_a_snapshot_is_written_once(store: Store) -> None:
    await store.snapshots.ensure_indexes()
    await store.snapshots.put_many([snap(100)])
    await store.snapshots.put_many([snap(100, document={"other": True}), snap(200)])
    assert await store.snapshots.latest("orders", OID, max_version=100) == snap(100)
    assert await store.snapshots.latest("orders", OID) == snap(200)


async def test_deleted_states_round_trip(store: Store) -> None:
    gone = snap(100, exists=False, document=None)
    await store.snapshots.put_many([gone])
    assert await store.snapshots.latest("orders", OID) == gone
