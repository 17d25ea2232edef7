"""The Checkpoints contract, run over every adapter (memory, mongo on mongomock-motor)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import Binary, Timestamp

from eventstore.model import Checkpoint, Head
from eventstore.ports import Store

TOKEN = {
    "_data": "8265A1B2C3000000012B042C0100296E5A1004",
    "_typeBits": Binary(b"\x40"),
    "extra": {"nested": [1, "two", {"three": 3}]},
}


def ingester_checkpoint(**changes: object) -> Checkpoint:
    fields: dict[str, object] = {
        "name": "ingester:shop",
        "token": TOKEN,
        "start_at": Timestamp(1767225600, 1),
        "last_cluster_time": Timestamp(1767225700, 42),
        "phase": "snapshot",
        "epoch": Timestamp(1767225600, 1),
        "gap_from": Timestamp(1767225500, 9),
        "invalidated": True,
        "head": Head(seq=12, log_hash="ab" * 32),
        "updated_at": datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC),
    }
    fields.update(changes)
    return Checkpoint(**fields)  # type: ignore[arg-type]


async def test_missing_checkpoint_is_none(store: Store) -> None:
    assert await store.checkpoints.get("ingester:shop") is None


async def test_checkpoint_round_trip_keeps_the_whole_token_and_timestamps(store: Store) -> None:
    checkpoint = ingester_checkpoint()

    await store.checkpoints.put(checkpoint)

    found = await store.checkpoints.get("ingester:shop")
    assert found == checkpoint
    assert found is not None and found.token == TOKEN
    assert found.last_cluster_time == Timestamp(1767225700, 42)
    assert found.updated_at is not None and found.updated_at.tzinfo is not None


async def test_put_replaces_the_whole_checkpoint(store: Store) -> None:
    await store.checkpoints.put(ingester_checkpoint())
    later = Checkpoint(
        name="ingester:shop", token={"_data": "99"}, head=Head(seq=13, log_hash="c" * 64)
    )

    await store.checkpoints.put(later)

    assert await store.checkpoints.get("ingester:shop") == later


async def test_checkpoints_are_independent_by_name(store: Store) -> None:
    ingester = ingester_checkpoint()
    projection = Checkpoint(name="projection:orders_by_status", head=Head(seq=3, log_hash="d" * 64))

    await store.checkpoints.put(ingester)
    await store.checkpoints.put(projection)

    assert await store.checkpoints.get("ingester:shop") == ingester
    assert await store.checkpoints.get("projection:orders_by_status") == projection


async def test_stored_checkpoint_does_not_change_with_the_callers_token(store: Store) -> None:
    extra = {"n": 1}
    token: dict[str, Any] = {"_data": "01", "extra": extra}
    await store.checkpoints.put(Checkpoint(name="c", token=token))

    extra["n"] = 2

    found = await store.checkpoints.get("c")
    assert found is not None and found.token == {"_data": "01", "extra": {"n": 1}}


async def test_updated_at_is_kept_to_the_millisecond(store: Store) -> None:
    at = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)

    await store.checkpoints.put(Checkpoint(name="c", updated_at=at))

    found = await store.checkpoints.get("c")
    assert found is not None
    assert found.updated_at == datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)


async def test_put_inside_the_stores_transaction(store: Store) -> None:
    checkpoint = ingester_checkpoint()

    async with store.transaction() as session:
        await store.checkpoints.put(checkpoint, session=session)

    assert await store.checkpoints.get("ingester:shop") == checkpoint
