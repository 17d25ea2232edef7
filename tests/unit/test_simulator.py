"""The order simulator: deterministic, well-formed orders, legal status changes, consistent totals."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Decimal128, ObjectId, Timestamp

from eventstore.clock import FakeClock
from eventstore.model import ResumePoint
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import ACTORS, Simulator, total_of
from eventstore.sources.update_description import apply_update_description

START = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
LEGAL = {
    ("pending", "paid"),
    ("pending", "cancelled"),
    ("paid", "shipped"),
    ("paid", "cancelled"),
    ("shipped", "delivered"),
}


def new_feed() -> MemoryChangeFeed:
    return MemoryChangeFeed(clock=FakeClock(START))


async def all_changes(feed: MemoryChangeFeed) -> list[dict[str, Any]]:
    start = ResumePoint(start_at_operation_time=Timestamp(0, 0))
    changes: list[dict[str, Any]] = []
    async with feed.source(["orders"], max_await=0.001).watch(start) as stream:
        while (batch := await stream.next_batch()) is not None and batch.changes:
            changes += batch.changes
    return changes


async def simulate(seed: int, steps: int, orders: int = 5) -> tuple[MemoryChangeFeed, list[Any]]:
    clock = FakeClock(START)
    feed = MemoryChangeFeed(clock=clock)
    sim = Simulator(feed, seed=seed)
    numbers = await sim.create_orders(orders)
    ops = [("create", n) for n in numbers]
    for _ in range(steps):
        clock.advance(1)
        op = await sim.step()
        ops.append((op.kind, op.number))
    return feed, ops


async def test_same_seed_gives_the_same_operations_and_numbers() -> None:
    _, first = await simulate(seed=42, steps=150)
    _, again = await simulate(seed=42, steps=150)
    _, other = await simulate(seed=43, steps=150)
    assert first == again
    assert first != other
    assert first[0] == ("create", "ORD-000001")


async def test_every_kind_of_operation_happens() -> None:
    _, ops = await simulate(seed=7, steps=400)
    kinds = Counter(kind for kind, _ in ops)
    expected = {
        "create",
        "add_item",
        "remove_item",
        "change_qty",
        "edit_shipping",
        "pay",
        "ship",
        "deliver",
        "cancel",
        "delete",
        "replace",
    }
    assert expected <= set(kinds), kinds


async def test_orders_are_well_formed_with_totals_matching_items() -> None:
    feed, _ = await simulate(seed=3, steps=200)
    docs = await feed.collection("orders").find({})
    assert docs
    for doc in docs:
        assert isinstance(doc["_id"], ObjectId)
        assert doc["number"].startswith("ORD-") and len(doc["number"]) == 10
        assert set(doc["customer"]) == {"id", "name", "email"}
        assert doc["status"] in {"pending", "paid", "shipped", "delivered", "cancelled"}
        assert doc["currency"] in {"EUR", "USD", "GBP"}
        assert set(doc["shipping"]) == {"name", "street", "city", "zip", "country"}
        assert doc["items"], doc
        skus = [item["sku"] for item in doc["items"]]
        assert len(skus) == len(set(skus))
        for item in doc["items"]:
            assert isinstance(item["qty"], int) and item["qty"] >= 1
            assert isinstance(item["unit_price"], Decimal128)
        expected = sum(
            (i["unit_price"].to_decimal() * i["qty"] for i in doc["items"]), Decimal("0")
        )
        assert doc["total"] == Decimal128(expected.quantize(Decimal("0.01")))
        assert doc["updatedBy"] in ACTORS
        assert doc["createdAt"].tzinfo is not None and doc["updatedAt"] >= doc["createdAt"]


async def test_every_write_sets_the_actor_and_status_changes_are_legal() -> None:
    feed, _ = await simulate(seed=11, steps=250)
    status: dict[Any, str] = {}
    state: dict[Any, dict[str, Any]] = {}
    for change in await all_changes(feed):
        key = change["documentKey"]["_id"]
        op = change["operationType"]
        if op in ("insert", "replace"):
            doc = change["fullDocument"]
            assert doc["updatedBy"] in ACTORS
            if op == "insert":
                assert doc["status"] == "pending"
        elif op == "update":
            assert "updatedAt" in change["updateDescription"]["updatedFields"]
            doc = apply_update_description(state[key], change["updateDescription"])
            assert doc["updatedBy"] in ACTORS
            assert doc["total"] == total_of(doc["items"])
        else:
            assert op == "delete"
            state.pop(key)
            continue
        if key in status and doc["status"] != status[key]:
            assert (status[key], doc["status"]) in LEGAL
        status[key], state[key] = doc["status"], doc
    # Folding the changes gives the collection's documents.
    live = {d["_id"]: d for d in await feed.collection("orders").find({})}
    assert state == live


async def test_item_changes_use_element_paths_and_pulls() -> None:
    feed, _ = await simulate(seed=5, steps=300)
    shapes: Counter[str] = Counter()
    for change in await all_changes(feed):
        if change["operationType"] != "update":
            continue
        fields = change["updateDescription"]["updatedFields"]
        for path in fields:
            if path.startswith("items."):
                parts = path.split(".")
                shapes["qty" if parts[-1] == "qty" else "append"] += 1
                assert "total" in fields
            elif path == "items":
                shapes["whole"] += 1
                assert "total" in fields
    assert shapes["qty"] and shapes["append"] and shapes["whole"], shapes


async def test_run_paces_steps_with_the_clock() -> None:
    clock = FakeClock(START)
    feed = MemoryChangeFeed(clock=clock)
    sim = Simulator(feed, seed=1, clock=clock)
    assert await sim.run(orders=3, rate=0) == 0
    assert await feed.collection("orders").count_documents({}) == 3
    assert await sim.run(orders=2, changes=20, rate=4.0) == 20
    assert (clock.now() - START).total_seconds() == 5.0
    assert await sim.run(orders=0, changes=7, rate=0) == 7  # unpaced: the clock stays
    assert (clock.now() - START).total_seconds() == 5.0
    assert sim.steps == 27


async def test_an_unpaced_run_yields_to_the_event_loop_after_every_write() -> None:
    # The memory feed's writes never suspend: without a yield, nothing else in the process
    # (a served API, capture, a stop signal's handler) ran until the last change was made.
    feed = new_feed()
    sim = Simulator(feed, seed=1)
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)  # it has started
    started = turns
    assert await sim.run(orders=20, changes=60, rate=0) == 60
    other.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await other
    # A turn for the other task after each of the 80 writes.
    assert turns - started >= 80


async def test_a_new_simulator_continues_the_numbering() -> None:
    feed = new_feed()
    await Simulator(feed, seed=1).create_orders(3)
    assert await Simulator(feed, seed=2).create_orders(2) == ["ORD-000004", "ORD-000005"]
