"""Projection runners sharing one cache of entity states (`SharedStates`): each event is
folded once for all of them, and every model equals what runners with caches of their own
compute, whatever their positions, whatever the cache's size (misses come from history)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import projections.states as states_module
from eventstore.clock import FakeClock
from eventstore.fold import apply_event
from eventstore.model import STREAM_TYPES, Checkpoint
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from projections.orders import ORDER_PROJECTIONS
from projections.runner import ProjectionRunner
from projections.states import SharedStates
from tests.integration.test_projector import rows, workload


async def models(store: Store) -> dict[str, dict[str, Any]]:
    return {p.name: await rows(store, p) for p in ORDER_PROJECTIONS}


async def reset(store: Store) -> None:
    for p in ORDER_PROJECTIONS:
        await store.read_models.drop(p.collection)
        await store.checkpoints.put(Checkpoint(name=f"projection:{p.name}"))


async def test_runners_sharing_states_fold_each_event_once_and_equal_runners_alone(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await workload(store, clock, seed=21, changes=150)
    for p in ORDER_PROJECTIONS:  # every model from runners with caches of their own
        await ProjectionRunner(store, p, clock=clock, batch_size=9).catch_up()
    alone = await models(store)
    assert all(alone.values())
    await reset(store)
    folds: list[int] = []
    real = apply_event

    def counted(state: Any, event: Any, **kwargs: Any) -> Any:
        folds.append(event.seq)
        return real(state, event, **kwargs)

    monkeypatch.setattr(states_module, "apply_event", counted)
    shared = SharedStates(entities=10_000)
    runners = [
        ProjectionRunner(store, p, clock=clock, batch_size=9, states=shared)
        for p in ORDER_PROJECTIONS
    ]
    await asyncio.gather(*(r.catch_up() for r in runners))
    assert await models(store) == alone
    events = await store.events.read(after_seq=0, limit=100_000)
    entity_events = [e.seq for e in events if e.type not in STREAM_TYPES]
    assert sorted(folds) == entity_events  # once each, for the four projections
    assert shared.folded == len(entity_events) and shared.found == 3 * len(entity_events)


@pytest.mark.parametrize("entities", [1, 3, 50])
async def test_runners_at_different_positions_with_a_small_shared_cache_lose_nothing(
    store: Store, clock: FakeClock, entities: int
) -> None:
    # One runner runs ahead by many batches, another follows; with room for one entity
    # most states the second needs are gone, and come from history.
    await workload(store, clock, seed=22, changes=120)
    for p in ORDER_PROJECTIONS:
        await ProjectionRunner(store, p, clock=clock, batch_size=7).catch_up()
    alone = await models(store)
    await reset(store)
    shared = SharedStates(entities=entities)
    runners = [
        ProjectionRunner(store, p, clock=clock, batch_size=7, states=shared)
        for p in ORDER_PROJECTIONS
    ]
    await runners[0].catch_up()
    for _ in range(5):
        await runners[1].step()
    await asyncio.gather(*(r.catch_up() for r in runners[1:]))
    assert await models(store) == alone
    assert len(shared._states) <= shared.size


async def test_a_runner_rebuilds_with_its_own_states_and_follows_on_with_the_shared_ones(
    store: Store, clock: FakeClock
) -> None:
    await workload(store, clock, seed=23, changes=60)
    shared = SharedStates()
    runner = ProjectionRunner(store, ORDER_PROJECTIONS[0], clock=clock, states=shared)
    await runner.catch_up()
    following = runner.cache
    await runner.rebuild_now()
    assert runner.cache is following  # back to the shared states
    rebuilt = await rows(store, ORDER_PROJECTIONS[0])
    await reset(store)
    await ProjectionRunner(store, ORDER_PROJECTIONS[0], clock=clock).catch_up()
    assert await rows(store, ORDER_PROJECTIONS[0]) == rebuilt


def test_the_service_s_workers_share_one_cache_sized_by_state_cache() -> None:
    from eventstore.cli.bootstrap import Service, Wiring
    from eventstore.clock import SystemClock
    from eventstore.memory.store import MemoryStore
    from eventstore.settings import Settings
    from eventstore.sources.memory import MemoryChangeFeed
    from projections.states import SharedStateCache

    settings = Settings(uri="memory://", source="simulator", state_cache=123)
    feed = MemoryChangeFeed(clock=FakeClock())
    source = feed.source(["orders"], batch_size=10, max_await=0.01)
    service = Service(settings, MemoryStore(), clock=SystemClock(), wiring=Wiring(source=source))
    workers = service.workers(owner="me")
    caches = [r.cache for r in workers.runners]
    assert len(caches) == len(ORDER_PROJECTIONS)
    assert all(isinstance(c, SharedStateCache) for c in caches)
    assert {id(c.shared) for c in caches if isinstance(c, SharedStateCache)} == {id(workers.states)}
    assert workers.states.size == 2 * 123


@pytest.mark.parametrize("shared", [False, True])
async def test_a_state_folded_before_an_erasure_never_brings_the_data_back(
    store: Store, clock: FakeClock, shared: bool
) -> None:
    # The runner folded A's state before A was erased; the shop then updates A. Its row
    # must be what a rebuild computes from the erased log: never the erased name. (The
    # aggregate models keep their sums and go on from the states they had: README.)
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning
    from tests.integration.test_erasure import erase

    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    customer = {"id": "c1", "name": "Ann Secret"}
    await orders.insert_one({"_id": "A", "status": "paid", "total": 5, "customer": customer})
    await orders.insert_one({"_id": "B", "status": "paid", "total": 7, "customer": customer})
    await ingester(store, feed, clock).run(until_idle=True)
    states = SharedStates() if shared else None
    runners = [ProjectionRunner(store, p, clock=clock, states=states) for p in ORDER_PROJECTIONS]
    for r in runners:
        await r.catch_up()
    assert "Ann Secret" in repr(await rows(store, ORDER_PROJECTIONS[0]))
    await erase(store, "A", clock)
    await ingester(store, feed, clock, entity_rows=[("rm_order_summary", "orders")]).run(
        until_idle=True
    )
    await orders.update_one({"_id": "A"}, {"$set": {"status": "shipped"}})
    await ingester(store, feed, clock).run(until_idle=True)
    for r in runners:
        await r.catch_up()
    followed = await models(store)
    summary_a = followed["order_summary"]["str:A"]
    assert summary_a["status"] == "shipped" and summary_a["customer"] is None
    assert "Ann Secret" not in repr(summary_a)
    await runners[0].rebuild_now()  # the per-entity model equals a rebuild of the erased log
    assert (await models(store))["order_summary"] == followed["order_summary"]


async def test_an_erased_order_has_no_row_followed_late_or_rebuilt(
    store: Store, clock: FakeClock
) -> None:
    # The erasure deletes A's order_summary row. A rebuild, and a runner that reaches A's
    # (now erased) events only after the erasure, read them without payload: they must not
    # write a row of nulls back, which would differ from what following the log gave.
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning
    from tests.integration.test_erasure import erase

    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "A", "status": "paid", "total": 5})
    await orders.update_one({"_id": "A"}, {"$set": {"status": "shipped"}})
    await orders.insert_one({"_id": "B", "status": "paid", "total": 7})
    await ingester(store, feed, clock).run(until_idle=True)
    summary = ORDER_PROJECTIONS[0]
    runner = ProjectionRunner(store, summary, clock=clock)
    await runner.catch_up()
    assert set(await rows(store, summary)) == {"str:A", "str:B"}
    await erase(store, "A", clock)
    await ingester(store, feed, clock, entity_rows=[(summary.collection, "orders")]).run(
        until_idle=True
    )
    await runner.catch_up()
    followed = await rows(store, summary)
    assert set(followed) == {"str:B"}

    await runner.rebuild_now()
    assert await rows(store, summary) == followed
    await store.checkpoints.put(Checkpoint(name=runner.role))
    await ProjectionRunner(store, summary, clock=clock).catch_up()  # a runner behind it all
    assert await rows(store, summary) == followed


async def test_erasing_the_order_a_customer_s_name_came_from_takes_the_name_out(
    store: Store, clock: FakeClock
) -> None:
    """customer_totals keeps sums across an erasure (README), but not the erased order's
    name: the row records which order named the customer (`name_from`), and the runner
    clears it at the erasure, in log order."""
    from eventstore.erasure import request_erasure
    from eventstore.history import History
    from eventstore.settings import Settings
    from projections.orders import OrderSchema, order_projections
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning
    from tests.integration.test_erasure import erase

    # built here, not at import: `make mutate` then knows this test reaches its code
    customer_totals = order_projections(OrderSchema())[3]
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")

    def order(key: str, cid: str, name: str) -> dict[str, Any]:
        return {"_id": key, "status": "paid", "total": 5, "customer": {"id": cid, "name": name}}

    await orders.insert_one(order("A", "c1", "Ann Secret"))
    await orders.insert_one(order("C", "c2", "Carl"))
    # a document of another stream with the key of order C: erasing it names no order
    await feed.collection("customers").insert_one({"_id": "C", "name": "Carl"})
    both = ("orders", "customers")
    await ingester(store, feed, clock, collections=both).run(until_idle=True)
    runner = ProjectionRunner(store, customer_totals, clock=clock, batch_size=1000)
    await runner.catch_up()
    before = await rows(store, customer_totals)
    assert (before["c1"]["name"], before["c1"]["name_from"]) == ("Ann Secret", "A")

    await erase(store, "A", clock)
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    await request_erasure(
        store,
        history,
        stream="customers",
        key="C",
        reason="GDPR art. 17",
        actor="dpo",
        now=clock.now(),
    )
    await ingester(store, feed, clock, collections=both).run(until_idle=True)
    await runner.catch_up()
    after = await rows(store, customer_totals)
    assert "Ann Secret" not in repr(after)
    cleared = after["c1"]
    assert (cleared["name"], cleared["name_seq"], cleared["name_from"]) == (None, 0, None)
    assert after["c1"]["lifetime_spend"] == before["c1"]["lifetime_spend"]  # sums are kept
    assert after["c2"] == before["c2"]  # left alone: its order C is not erased, customers/C is

    # One batch: F names c5 (a change before the erasures, applied as any other), c3 named
    # by D (followed before), D erased, then E names c3; and G, which names c4, is erased
    # before the runner reads it (its payload is gone already: it names nobody, as a
    # rebuild finds).
    await orders.insert_one(order("D", "c3", "Dora Secret"))
    await ingester(store, feed, clock).run(until_idle=True)
    await runner.catch_up()
    await orders.insert_one(order("F", "c5", "Fay"))
    await orders.insert_one(order("G", "c4", "Gus Secret"))
    await ingester(store, feed, clock).run(until_idle=True)
    await erase(store, "D", clock)
    await erase(store, "G", clock)
    await ingester(store, feed, clock).run(until_idle=True)
    await orders.insert_one(order("E", "c3", "Dora"))
    await ingester(store, feed, clock).run(until_idle=True)
    await runner.catch_up()
    last = await rows(store, customer_totals)
    assert (last["c3"]["name"], last["c3"]["name_from"]) == ("Dora", "E")
    assert (last["c5"]["name"], last["c5"]["orders"]) == ("Fay", 1)
    assert "c4" not in last and "Secret" not in repr(last)


async def test_a_rebuild_after_an_erasure_counts_what_the_log_still_holds(
    store: Store, clock: FakeClock
) -> None:
    """Following keeps the aggregates' sums across an erasure and clears the erased
    order's name; a rebuild reads the erased log, where that order has no payload: its
    amounts leave the sums, and the customer's name is the newest a remaining order
    gives (README, "Erasure")."""
    from projections.orders import OrderSchema, order_projections
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning
    from tests.integration.test_erasure import erase

    _, _, revenue, customers = order_projections(OrderSchema())
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    for key, name, total in (("B", "Ann", 7), ("A", "Ann Secret", 5)):
        await orders.insert_one(
            {
                "_id": key,
                "status": "paid",
                "total": total,
                "currency": "EUR",
                "customer": {"id": "c1", "name": name},
            }
        )
    await ingester(store, feed, clock).run(until_idle=True)
    runners = [ProjectionRunner(store, p, clock=clock) for p in (revenue, customers)]
    for r in runners:
        await r.catch_up()
    await erase(store, "A", clock)
    await ingester(store, feed, clock).run(until_idle=True)
    for r in runners:
        await r.catch_up()
    followed = await rows(store, customers)
    assert (followed["c1"]["name"], followed["c1"]["name_from"]) == (None, None)
    assert followed["c1"]["orders"] == 2
    assert str(followed["c1"]["lifetime_spend"]["EUR"]) == "12"
    [day] = (await rows(store, revenue)).values()
    assert (str(day["revenue"]), day["orders"]) == ("12", 2)

    for r in runners:
        await r.rebuild_now()
    rebuilt = await rows(store, customers)
    assert (rebuilt["c1"]["name"], rebuilt["c1"]["name_from"]) == ("Ann", "B")
    assert rebuilt["c1"]["orders"] == 1
    assert str(rebuilt["c1"]["lifetime_spend"]["EUR"]) == "7"
    [day] = (await rows(store, revenue)).values()
    assert (str(day["revenue"]), day["orders"]) == ("7", 1)
    assert "Secret" not in repr(rebuilt)


async def test_erasing_an_order_takes_its_offending_values_out_of_the_aggregate_rows(
    store: Store, clock: FakeClock
) -> None:
    """A value an order held that was not money (or no status) is copied into the problems
    of its day's and customer's rows: it is the order's data, and leaves them when the
    order is erased, in log order, as the customer name it gave does. Each problem names
    its order (`order`) and each row the orders whose data it holds (`held_from`), which
    the erasure finds them by; the other orders' problems stay, and the count follows."""
    from eventstore.row_problems import held_problems
    from projections.orders import OrderSchema, order_projections
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning
    from tests.integration.test_erasure import erase

    _, _, revenue, customers = order_projections(OrderSchema())
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")

    def order(key: str, cid: str, **fields: Any) -> dict[str, Any]:
        doc = {"_id": key, "status": "paid", "total": 5, "currency": "EUR"}
        return {**doc, "customer": {"id": cid, "name": f"name {key}"}, **fields}

    await orders.insert_one(order("A", "c1", total="call Ann Secret on 555"))
    await orders.insert_one(order("B", "c1", total="12,50"))
    await orders.insert_one(order("C", "c2", status={"held by": "Carl Secret"}))
    await orders.insert_one(order("D", "c2"))
    await ingester(store, feed, clock).run(until_idle=True)
    runners = [
        ProjectionRunner(store, p, clock=clock, batch_size=1000) for p in (revenue, customers)
    ]
    for r in runners:
        await r.catch_up()
    before = {p.name: await rows(store, p) for p in (revenue, customers)}
    [day] = before["revenue_by_day"].values()
    assert [(p["order"], p["field"]) for p in day["problems"]] == [
        ("str:A", "total"),
        ("str:B", "total"),
        ("str:C", "status"),
    ]
    assert day["held_from"] == ["str:A", "str:B", "str:C"]
    c1, c2 = before["customer_totals"]["c1"], before["customer_totals"]["c2"]
    # by typed key: D gave c2 its name
    assert c1["held_from"] == ["str:A", "str:B"] and c2["held_from"] == ["str:C", "str:D"]

    await erase(store, "A", clock)
    await erase(store, "C", clock)
    await ingester(store, feed, clock).run(until_idle=True)
    for r in runners:
        await r.catch_up()
    after = {p.name: await rows(store, p) for p in (revenue, customers)}
    assert "Secret" not in repr(after)
    [day] = after["revenue_by_day"].values()
    assert day["problems"] == [
        {"seq": 2, "field": "total", "value": "12,50", "reason": "not_a_number", "order": "str:B"}
    ]
    assert day["held_from"] == ["str:B"]
    # the sums are kept (README, "Erasure"): only the erased orders' data goes
    before_day = next(iter(before["revenue_by_day"].values()))
    assert (day["revenue"], day["orders"]) == (before_day["revenue"], before_day["orders"])
    c1, c2 = after["customer_totals"]["c1"], after["customer_totals"]["c2"]
    assert [p["order"] for p in c1["problems"]] == ["str:B"] and c1["held_from"] == ["str:B"]
    assert c1["name"] == "name B"  # B named c1 last: its name stays
    assert c2["problems"] == [] and c2["held_from"] == ["str:D"] and c2["name"] == "name D"
    assert c1["lifetime_spend"] == before["customer_totals"]["c1"]["lifetime_spend"]
    for r, p in zip(runners, (revenue, customers), strict=True):
        held = sum(held_problems(row) for row in (await rows(store, p)).values())
        assert r.status.problems == held == 1


async def test_erasing_another_stream_s_entity_of_the_same_key_leaves_the_order_s_row(
    store: Store, clock: FakeClock
) -> None:
    """The erasure deletes the per-entity rows of the erased entity: an order's
    `order_summary` row when an order is erased, never when a customer with the same `_id`
    is (the row is keyed by the typed key, which both share)."""
    from eventstore.erasure import request_erasure
    from eventstore.history import History
    from eventstore.settings import Settings
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning

    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    await feed.collection("orders").insert_one({"_id": "C", "status": "paid", "total": "five"})
    await feed.collection("customers").insert_one({"_id": "C", "name": "Carl Secret"})
    both = ("orders", "customers")
    summary = ORDER_PROJECTIONS[0]
    entity_rows = [(summary.collection, "orders")]
    await ingester(store, feed, clock, collections=both).run(until_idle=True)
    runner = ProjectionRunner(store, summary, clock=clock)
    await runner.catch_up()
    before = await rows(store, summary)
    assert set(before) == {"str:C"}
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    await request_erasure(
        store, history, stream="customers", key="C", reason="GDPR", actor="dpo", now=clock.now()
    )
    await ingester(store, feed, clock, collections=both, entity_rows=entity_rows).run(
        until_idle=True
    )
    await runner.catch_up()
    assert await rows(store, summary) == before
    assert runner.status.problems == 1  # order C's total: still held, still counted


async def test_an_erased_order_s_problems_leave_order_summary_s_count(
    store: Store, clock: FakeClock
) -> None:
    """The erasure deletes the order's own row, and notes the problems it held
    (`row_problems`); the runner takes them off the count at the `erased` event, so the
    count stays the rows' (it kept them until a rebuild). A row written back after the
    erasure by a batch read before it (with the erased data) is deleted again there."""
    from eventstore.row_problems import held_problems
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning
    from tests.integration.test_erasure import erase

    summary = ORDER_PROJECTIONS[0]
    entity_rows = [(summary.collection, "orders")]
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "A", "status": "paid", "total": "call Ann"})
    await orders.insert_one({"_id": "B", "status": True, "total": "x", "created_at": "soon"})
    await orders.insert_one({"_id": "C", "status": "paid", "total": 5})
    await ingester(store, feed, clock).run(until_idle=True)
    runner = ProjectionRunner(store, summary, clock=clock)
    await runner.catch_up()

    async def held() -> int:
        return sum(held_problems(row) for row in (await rows(store, summary)).values())

    assert runner.status.problems == await held() == 3  # A's total; B's status and date

    request = await erase(store, "A", clock)
    await ingester(store, feed, clock, entity_rows=entity_rows).run(until_idle=True)
    done = await store.erasures.get(request)
    assert done is not None and done.row_problems == {"rm_order_summary": 1}
    await runner.catch_up()
    assert set(await rows(store, summary)) == {"str:B", "str:C"}
    assert runner.status.problems == await held() == 2

    # B's row as a batch read before the erasure writes it back after the erasure deleted it
    row_b = (await store.read_models.get_many(summary.collection, ["str:B"]))["str:B"]
    await erase(store, "B", clock)
    await ingester(store, feed, clock, entity_rows=entity_rows).run(until_idle=True)
    await store.read_models.write(summary.collection, [("str:B", row_b)])
    await runner.catch_up()
    assert set(await rows(store, summary)) == {"str:C"}
    assert runner.status.problems == await held() == 0


async def test_a_customer_row_built_before_held_from_still_loses_an_erased_order_s_name(
    store: Store, clock: FakeClock
) -> None:
    """Rows built before ORDER_RULES 8 have no `held_from`; until they are rebuilt (their
    status says so), an erasure still finds a customer row by the `name_from` it has."""
    from projections.orders import OrderSchema, order_projections
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning
    from tests.integration.test_erasure import erase

    customers = order_projections(OrderSchema())[3]
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    await feed.collection("orders").insert_one(
        {"_id": "A", "status": "paid", "total": 5, "customer": {"id": "c1", "name": "Ann Secret"}}
    )
    await ingester(store, feed, clock).run(until_idle=True)
    runner = ProjectionRunner(store, customers, clock=clock)
    await runner.catch_up()
    row = (await store.read_models.get_many(customers.collection, ["c1"]))["c1"]
    assert (row["held_from"], row["name_key"]) == (["str:A"], "str:A")
    old = {k: v for k, v in row.items() if k not in ("_id", "held_from", "name_key")}  # rules 7
    await store.read_models.write(customers.collection, [("c1", old)])
    await erase(store, "A", clock)
    await ingester(store, feed, clock).run(until_idle=True)
    await runner.catch_up()
    after = (await rows(store, customers))["c1"]
    assert (after["name"], after["name_from"], after["held_from"]) == (None, None, [])
    assert after["name_key"] is None
    assert "Secret" not in repr(after)


async def test_erasing_order_5_leaves_what_the_order_with_the_string_id_5_gave(
    store: Store, clock: FakeClock
) -> None:
    """The orders `5` and `"5"` share the entity key `5`: the aggregate rows name each by
    its typed key, so erasing `int:5` takes out its problem and never the other's, nor the
    customer name `str:5` gave (an outside tester: both went, and a rebuild brought the
    other's back)."""
    from eventstore.erasure import request_erasure
    from eventstore.history import History
    from eventstore.settings import Settings
    from projections.orders import OrderSchema, order_projections
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning

    _, _, revenue, customers = order_projections(OrderSchema())
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    for key, total, name in ((5, "intbad", "IntFive"), ("5", "strbad", "StrFive")):
        doc = {"_id": key, "status": "paid", "total": total, "currency": "EUR"}
        await orders.insert_one({**doc, "customer": {"id": "c1", "name": name}})
    await ingester(store, feed, clock).run(until_idle=True)
    runners = [ProjectionRunner(store, p, clock=clock) for p in (revenue, customers)]
    for r in runners:
        await r.catch_up()
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    await request_erasure(
        store, history, stream="orders", key="int:5", reason="GDPR", actor="dpo", now=clock.now()
    )
    await ingester(store, feed, clock).run(until_idle=True)
    for r in runners:
        await r.catch_up()
    [day] = (await rows(store, revenue)).values()
    assert [(p["order"], p["value"]) for p in day["problems"]] == [("str:5", "strbad")]
    c1 = (await rows(store, customers))["c1"]
    assert [p["value"] for p in c1["problems"]] == ["strbad"]
    assert (c1["name"], c1["name_from"], c1["name_key"]) == ("StrFive", "5", "str:5")
    assert "intbad" not in repr(day) + repr(c1)
    assert [r.status.problems for r in runners] == [1, 1]
