"""The Subscriptions, Deliveries and AdminActions ports, over both adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from eventstore.ports import Store
from eventstore.subscription_records import AdminAction, ParkedEvent, SubscriptionRecord
from tests.helpers import parked_event

T = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
MS = T.replace(microsecond=123000)


def _record(name: str) -> SubscriptionRecord:
    return SubscriptionRecord(
        name=name,
        config={"name": name, "sink": {"kind": "webhook", "headers": {}}, "lanes": 2},
        created_at=T,
        updated_at=T,
    )


async def test_records_are_created_once_patched_and_deleted(store: Store) -> None:
    assert await store.subscriptions.create(_record("b"))
    assert await store.subscriptions.create(_record("a"))
    assert not await store.subscriptions.create(_record("a"))  # the name exists: nothing written
    assert await store.subscriptions.patch(
        "a", {"paused": True, "delivered": 3, "last_delivery_at": T}
    )
    assert not await store.subscriptions.patch("zz", {"paused": True})
    got = await store.subscriptions.get("a")
    assert got is not None
    assert got.paused and got.delivered == 3 and got.last_delivery_at == MS
    assert got.created_at == MS and got.config["lanes"] == 2
    assert [r.name for r in await store.subscriptions.all()] == ["a", "b"]
    assert await store.subscriptions.delete("a")
    assert not await store.subscriptions.delete("a")
    assert await store.subscriptions.get("a") is None


async def test_a_record_read_back_is_a_copy_at_millisecond_precision(store: Store) -> None:
    """What a reader changes in a record it got is never what the next reader gets."""
    assert await store.subscriptions.create(_record("a"))
    reset = {"id": "c0", "action": "reset", "start": {"kind": "seq", "seq": 4}}
    assert await store.subscriptions.push_command("a", reset)
    for got in (await store.subscriptions.get("a"), (await store.subscriptions.all())[0]):
        assert got is not None
        assert (got.created_at, got.updated_at) == (MS, MS)
        got.commands[0]["start"]["seq"] = 99
        got.commands.append({"id": "c9", "action": "skip"})
        got.config["sink"]["headers"]["X-Changed"] = "yes"
    again = await store.subscriptions.get("a")
    assert again is not None
    assert again.commands == [{"id": "c0", "action": "reset", "start": {"kind": "seq", "seq": 4}}]
    assert again.config == _record("a").config


async def test_commands_queue_in_order_and_are_dropped_by_id(store: Store) -> None:
    await store.subscriptions.create(_record("a"))
    for i in range(3):
        assert await store.subscriptions.push_command(
            "a", {"id": f"c{i}", "action": "skip", "seq": i}
        )
    assert not await store.subscriptions.push_command("missing", {"id": "x"})
    await store.subscriptions.drop_commands("a", ["c0", "c2"])
    got = await store.subscriptions.get("a")
    assert got is not None and got.commands == [{"id": "c1", "action": "skip", "seq": 1}]
    # a queued command is the command as it was pushed, whatever its sender does with it later
    start = {"kind": "seq", "seq": 4}
    assert await store.subscriptions.push_command(
        "a", {"id": "c3", "action": "reset", "start": start}
    )
    start["seq"] = 99
    got = await store.subscriptions.get("a")
    assert got is not None and got.commands[-1]["start"] == {"kind": "seq", "seq": 4}


async def test_settled_positions_above_a_checkpoint(store: Store) -> None:
    await store.deliveries.settle("a", [5, 3, 9])
    await store.deliveries.settle("a", [5])  # idempotent
    await store.deliveries.settle("b", [4])
    assert await store.deliveries.settled("a", above=3) == [5, 9]
    await store.deliveries.forget_settled("a", up_to=5)
    assert await store.deliveries.settled("a", above=0) == [9]
    assert await store.deliveries.settled("b", above=0) == [4]
    await store.deliveries.forget_settled("nobody", up_to=5)  # nothing settled: nothing to do
    assert await store.deliveries.settled("nobody", above=0) == []


async def test_parked_events_in_seq_order_paged_unparked_and_cleared(store: Store) -> None:
    parked = [
        ParkedEvent(
            name="a",
            seq=s,
            stream="orders",
            entity_key="k",
            type="updated",
            attempts=s,
            last_error="boom",
            parked_at=T + timedelta(seconds=s),
        )
        for s in (7, 2, 4)
    ]
    await store.deliveries.park(parked)
    await store.deliveries.settle("a", [8])
    assert [p.seq for p in await store.deliveries.parked("a")] == [2, 4, 7]
    assert [p.seq for p in await store.deliveries.parked("a", after_seq=2, limit=1)] == [4]
    assert [p.seq for p in await store.deliveries.parked("a", up_to=4)] == [2, 4]
    assert await store.deliveries.parked("a", after_seq=4, up_to=3) == []
    assert [p.seq for p in await store.deliveries.parked("a", after_seq=7)] == []
    # Parked again (a replay that failed again): replaced, not listed twice.
    await store.deliveries.park([msgspec.structs.replace(parked[0], attempts=9)])
    assert [(p.seq, p.attempts) for p in await store.deliveries.parked("a")] == [
        (2, 2),
        (4, 4),
        (7, 9),
    ]
    await store.deliveries.park([parked[0]])
    first = (await store.deliveries.parked("a"))[0]
    assert first.attempts == 2 and first.parked_at == MS + timedelta(seconds=2)
    assert await store.deliveries.count_parked("a") == 3
    assert await store.deliveries.unpark("a", [4, 99]) == 1
    assert [p.seq for p in await store.deliveries.parked("a")] == [2, 7]
    assert await store.deliveries.unpark("nobody", [2, 7]) == 0
    assert await store.deliveries.unpark("a", [2, 7, 7]) == 2
    assert await store.deliveries.count_parked("a") == 0
    await store.deliveries.park(parked)
    await store.deliveries.clear("a")
    assert await store.deliveries.count_parked("a") == 0
    assert await store.deliveries.settled("a", above=0) == []


async def test_many_parked_at_once_in_any_order_are_listed_in_seq_order(store: Store) -> None:
    """A batch of many (one sort) then a few (one insertion each), mixed with ones parked before."""
    seqs = [s * 7919 % 101 for s in range(1, 101)]  # 1..100, shuffled
    batch = [parked_event("b", s, parked_at=T) for s in seqs]
    await store.deliveries.park(batch[60:])  # 40 at once
    await store.deliveries.park(batch[:60])  # the other 60 at once
    await store.deliveries.park(batch[:3])  # a few, all again
    assert [p.seq for p in await store.deliveries.parked("b")] == sorted(seqs)
    assert [p.seq for p in await store.deliveries.parked("b", after_seq=50, limit=3)] == [
        51,
        52,
        53,
    ]
    assert await store.deliveries.count_parked("b") == 100


async def test_the_admin_trail_is_appended_and_paged_in_id_order(store: Store) -> None:
    for i in (2, 0, 1):
        await store.admin_actions.append(
            AdminAction(
                id=f"id{i}",
                at=T,
                actor="alice",
                action="pause",
                target="s",
                details={"n": i},
            )
        )
    page = await store.admin_actions.page(limit=2)
    assert [(a.id, a.details["n"]) for a in page] == [("id0", 0), ("id1", 1)]
    assert [a.id for a in await store.admin_actions.page(after="id1")] == ["id2"]
    assert page[0].at == MS and page[0].actor == "alice"
