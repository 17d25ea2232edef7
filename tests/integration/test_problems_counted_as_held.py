"""A projection's `problems` (its status, `/metrics`) counts the problems its rows hold now:
following the log, rebuilding with one worker or several, and reading back from the store.

A problem recorded and later replaced (a total that could not be read, then could) is no
longer counted: the status and the rows agree, as the explorer's badge promises.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.ports import Store
from eventstore.row_problems import held_problems
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.worker_state import FAILED
from projections import Change, Projection, Write
from projections.orders import OrderSchema, order_projections
from projections.runner import STATE_COLLECTION, ProjectionFailed, ProjectionRunner
from tests.integration.ingest_helpers import ingester, start_from_the_beginning
from tests.integration.test_erasure import erase
from tests.integration.test_rebuild_skipping import PAID, _run, op, opening


def _models() -> tuple[Projection, ...]:
    return order_projections(OrderSchema(paid_statuses=PAID))


async def _held(store: Store, projection: Projection) -> int:
    rows = await store.read_models.query(projection.collection, filters={}, limit=1_000_000)
    return sum(held_problems(r) for r in rows)


async def _counted(store: Store, clock: FakeClock, projection: Projection) -> list[int]:
    """The status count and the rows' count: following, one-worker and 2-worker rebuilds."""
    seen = []
    follow = ProjectionRunner(store, projection, clock=clock, batch_size=3)
    await follow.catch_up()
    seen += [follow.status.problems, await _held(store, projection)]
    for workers in (1, 2):
        rebuilt = ProjectionRunner(store, projection, clock=clock, batch_size=4)
        rebuilt.processes = False
        rebuilt.rebuild_rows = 2  # rows read back from the fresh collection past two
        assert await rebuilt.lease.try_acquire()
        await rebuilt.rebuild(workers=workers)
        await rebuilt.hand_back()
        seen += [rebuilt.status.problems, await _held(store, projection)]
    return seen


def test_a_problem_replaced_is_no_longer_counted() -> None:
    """The outside probe's orders: X's total unreadable then fixed, then paid; Y paid with a
    total, then an unreadable one, then another. No order_summary row holds a problem."""

    async def go() -> None:
        clock, store = FakeClock(), MemoryStore()
        ops: list[tuple[Any, ...]] = [
            ("insert", 1, "abc", "pending", 0),
            ("total", 1, "12.5", "", 0),
            ("status", 1, None, "paid", 0),
            ("insert", 2, 5, "paid", 0),
            ("total", 2, "oops", "", 0),
            ("total", 2, 6, "", 0),
        ]
        await _run(ops, store, clock)
        summary = _models()[0]
        assert await _counted(store, clock, summary) == [0] * 6
        recorded = await store.read_models.get_many(STATE_COLLECTION, [summary.name])
        assert recorded[summary.name]["problems"] == 0
        assert recorded[summary.name]["problems_held"] is True

    asyncio.run(go())


@settings(deadline=None, max_examples=60)
@given(first=st.lists(opening, min_size=1, max_size=2), ops=st.lists(op, max_size=25))
def test_every_model_counts_what_its_rows_hold(
    first: list[tuple[Any, ...]], ops: list[tuple[Any, ...]]
) -> None:
    async def go() -> None:
        clock, store = FakeClock(), MemoryStore()
        await _run(first + ops, store, clock)
        for projection in _models():
            seen = await _counted(store, clock, projection)
            assert len(set(seen)) == 1, (projection.name, seen)

    asyncio.run(go())


def test_a_status_recorded_before_counts_again_from_the_rows() -> None:
    """A status recorded by an older runner (records ever written, no `problems_held`) is
    counted again from the live rows when a runner takes the projection over."""

    async def go() -> None:
        clock, store = FakeClock(), MemoryStore()
        await _run([("insert", 1, "abc", "paid", 0), ("total", 1, 5, "", 0)], store, clock)
        summary = _models()[0]
        first = ProjectionRunner(store, summary, clock=clock)
        await asyncio.wait_for(first.run(until_caught_up=True), 5)
        [(key, row)] = (await store.read_models.get_many(STATE_COLLECTION, [summary.name])).items()
        old = {k: v for k, v in row.items() if k not in ("_id", "problems_held")}
        await store.read_models.write(STATE_COLLECTION, [(key, {**old, "problems": 7})])
        again = ProjectionRunner(store, summary, clock=clock)
        await asyncio.wait_for(again.run(until_caught_up=True), 5)
        assert again.status.problems == 0 == await _held(store, summary)
        # recorded as counted so: the next runner takes the count over as it is (no pass)
        await store.read_models.write(
            STATE_COLLECTION, [(key, {**old, "problems": 3, "problems_held": True})]
        )
        kept = ProjectionRunner(store, summary, clock=clock)
        await asyncio.wait_for(kept.run(until_caught_up=True), 5)
        assert kept.status.problems == 3

    asyncio.run(go())


def _two_problems_per_customer() -> Projection:
    """A plugin keeping, per customer, the order that named it and two problem records; an
    erased order's row keeps only the first record (`forget`)."""

    def keys(change: Change) -> list[str]:
        doc = change.after or {}
        return [str(doc["customer"])] if "customer" in doc else []

    def apply(rows: Any, change: Change) -> list[Write]:
        seq = change.event.seq
        problems = [{"seq": seq, "field": "a"}, {"seq": seq, "field": "b"}]
        row = {"name_from": change.event.entity_key, "problems": problems}
        return [Write(key=k, row=row) for k in keys(change)]

    def forget(stream: str, entity_key: str) -> Any:
        return {"name_from": entity_key}, lambda row: {**row, "problems": row["problems"][:1]}

    return Projection(name="named", collection="rm_named", keys=keys, apply=apply, forget=forget)


def test_an_erasure_that_rewrites_a_rows_problems_is_counted() -> None:
    async def go() -> None:
        clock, store = FakeClock(), MemoryStore()
        await start_from_the_beginning(store)
        feed = MemoryChangeFeed(clock=clock)
        orders = feed.collection("orders")
        await orders.insert_one({"_id": "A", "customer": "c1"})
        await orders.insert_one({"_id": "B", "customer": "c2"})
        await ingester(store, feed, clock).run(until_idle=True)
        named = _two_problems_per_customer()
        runner = ProjectionRunner(store, named, clock=clock)
        await runner.catch_up()
        assert runner.status.problems == 4 == await _held(store, named)
        await erase(store, "A", clock)
        await ingester(store, feed, clock).run(until_idle=True)
        await runner.catch_up()
        assert runner.status.problems == 3 == await _held(store, named)  # c1 kept one of two

    asyncio.run(go())


def test_a_recount_reads_every_page_of_rows() -> None:
    """More rows than a page (1,000): each page's problems are added, none twice."""

    async def go() -> None:
        clock, store = FakeClock(), MemoryStore()
        await _run([("insert", 1, "abc", "paid", 0)], store, clock)
        summary = _models()[0]
        first = ProjectionRunner(store, summary, clock=clock)
        await asyncio.wait_for(first.run(until_caught_up=True), 5)
        extra = [
            (f"zz{n:05d}", {"problems": [{"seq": 1}] * (n % 3), "problems_dropped": n % 2})
            for n in range(2_345)
        ]
        await store.read_models.write(summary.collection, extra)
        [(key, row)] = (await store.read_models.get_many(STATE_COLLECTION, [summary.name])).items()
        old = {k: v for k, v in row.items() if k not in ("_id", "problems_held")}
        await store.read_models.write(STATE_COLLECTION, [(key, old)])
        again = ProjectionRunner(store, summary, clock=clock)
        await asyncio.wait_for(again.run(until_caught_up=True), 5)
        expected = 1 + sum(n % 3 + (n % 2 if n % 3 else 0) for n in range(2_345))
        assert again.status.problems == expected == await _held(store, summary)

    asyncio.run(go())


def test_changes_held_and_released_at_the_end_count_what_their_rows_hold() -> None:
    """A skipping rebuild applies the entities' last changes at the end (`release`): each
    writes a row holding seq % 3 problems over one holding its first change's."""
    from tests.integration.test_partitioned_rebuild import simulated
    from tests.integration.test_rebuild_skipping import LATEST, _latest_apply

    def apply(rows: Any, change: Change) -> list[Write]:
        (w,) = _latest_apply(rows, change)
        assert w.row is not None
        problems = [{"seq": change.event.seq}] * (change.event.seq % 3)
        return [Write(key=w.key, row={**w.row, "problems": problems})]

    varying = msgspec.structs.replace(LATEST, apply=apply)

    async def go() -> None:
        store = await simulated(seed=5, orders=6, steps=60)
        runner = ProjectionRunner(store, varying, clock=FakeClock(), batch_size=7)
        await runner.rebuild_now()
        held = await _held(store, varying)
        assert held > 3 and runner.status.problems == held

    asyncio.run(go())


async def _erased_after_following(projection: Projection) -> tuple[MemoryStore, ProjectionRunner]:
    """A store with order A (customer c1), `projection` followed to its head, then A erased
    (the `erased` record stored, not yet followed): the store and its runner."""
    clock, store = FakeClock(), MemoryStore()
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    await feed.collection("orders").insert_one({"_id": "A", "customer": "c1"})
    await ingester(store, feed, clock).run(until_idle=True)
    runner = ProjectionRunner(store, projection, clock=clock)
    await runner.catch_up()
    await erase(store, "A", clock)
    await ingester(store, feed, clock).run(until_idle=True)
    return store, runner


@pytest.mark.parametrize(
    ("where", "raised", "error"),
    [
        ("forget", RuntimeError("forget boom"), "RuntimeError: forget boom"),
        ("rewrite", RuntimeError("forget boom"), "RuntimeError: forget boom"),
        # no Exception: it ended the whole `run` (exit 5), capture and API with it
        ("forget", SystemExit(5), "PluginExited: forget raised SystemExit: 5"),
        ("rewrite", SystemExit(5), "PluginExited: forget's rewrite raised SystemExit: 5"),
        # filters that are neither one equality filter nor a list of them
        (
            "filters",
            None,
            "TypeError: forget's filters: expected a mapping or a list of mappings, not str",
        ),
        (
            "filters in a list",
            None,
            "TypeError: forget's filters: item 1 is str, not a mapping",
        ),
        # what the rewrite gives is checked as apply's rows are (it had been written as is)
        (
            "rewrite gives text",
            None,
            "PluginOutputError: forget's rewrite returned for 'c1' the row 'gone' (str):"
            " a row is a dict, or None to delete it",
        ),
        (
            "rewrite gives a set",
            None,
            "PluginOutputError: forget's rewrite returned for 'c1' a row MongoDB cannot store:"
            " InvalidDocument: Invalid document: cannot encode object: {1, 2},"
            " of type: <class 'set'>",
        ),
    ],
)
def test_a_forget_that_raises_fails_the_projection_at_the_erasure(
    where: str, raised: BaseException | None, error: str
) -> None:
    """As a failing apply does: `failed`, with the erased event's seq and the error (an
    outside tester found `failed_seq: null`)."""

    def raising(*_: Any) -> Any:
        assert raised is not None  # the cases without one fail before any call
        raise raised

    def forget(stream: str, entity_key: str) -> Any:
        if where == "forget":
            raising()
        if where == "filters":
            return "name_from", raising
        if where == "filters in a list":
            return [{"name_from": entity_key}, "name_from"], raising
        if where == "rewrite gives text":
            return {"name_from": entity_key}, lambda row: "gone"
        if where == "rewrite gives a set":
            return {"name_from": entity_key}, lambda row: {**row, "bad": {1, 2}}
        return {"name_from": entity_key}, raising

    async def go() -> None:
        failing = msgspec.structs.replace(_two_problems_per_customer(), forget=forget)
        store, runner = await _erased_after_following(failing)
        erased = (await store.events.head()).seq
        with pytest.raises(ProjectionFailed) as failed:
            await runner.catch_up()
        assert failed.value.seq == erased
        assert runner.status.state == FAILED and runner.status.failed_seq == erased
        assert runner.status.error == error

    asyncio.run(go())


@pytest.mark.parametrize(("typed", "given"), [(False, "A"), (True, "str:A")])
def test_forget_is_given_the_typed_key_when_the_projection_asks(typed: bool, given: str) -> None:
    """`forget_typed`: the erased entity's typed key (`str:A`), which names it alone, in the
    place of its entity key (`A`, which an integer `_id` could share as `5` and `"5"` do)."""
    asked: list[tuple[str, str]] = []

    def forget(stream: str, key: str) -> Any:
        asked.append((stream, key))
        return None

    async def go() -> None:
        named = msgspec.structs.replace(
            _two_problems_per_customer(), forget=forget, forget_typed=typed
        )
        _, runner = await _erased_after_following(named)
        await runner.catch_up()

    asyncio.run(go())
    assert asked == [("orders", given)]
