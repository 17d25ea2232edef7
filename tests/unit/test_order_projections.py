"""The order read models' pure apply: against direct computations, and idempotent."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal, Overflow
from typing import Any

import msgspec
import pytest
from bson import Decimal128, Int64, ObjectId
from hypothesis import given
from hypothesis import strategies as st

import projections.orders as orders_module
from eventstore.capture import Capture
from eventstore.clock import FakeClock
from eventstore.fold import Fold
from eventstore.history import History
from eventstore.keys import entity_key
from eventstore.memory.store import MemoryStore
from eventstore.model import ChangeEvent, Event, Head
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from projections.money import money128, read_money
from projections.orders import (
    _MONEY,
    ORDER_PROJECTIONS,
    PAID_STATUSES,
    Change,
    Projection,
    _day,
    dec128,
    money,
    order_projections,
    summary_key,
)
from projections.runner import StateCache
from tests.helpers import LogBuilder

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def models() -> dict[str, Projection]:
    """The four read models, built by the test itself.

    Not the module's ORDER_PROJECTIONS: `make mutate` forks each mutant's run from a
    process that imported projections.orders already, so models built at import
    never run a mutant of order_projections (tests/mutation/README.md).
    """
    return {p.name: p for p in order_projections()}


def run(
    projection: Projection, changes: list[Change], *, twice: bool = False
) -> dict[str, dict[str, Any]]:
    """Apply changes to an in-memory table, as the runner will (optionally each twice)."""
    table: dict[str, dict[str, Any]] = {}
    for change in changes:
        for _ in range(2 if twice else 1):
            keys = projection.keys(change)
            rows = {k: table[k] for k in keys if k in table}
            for w in projection.apply(rows, change):
                assert w.key in keys, (projection.name, w.key, keys)
                if w.row is None:
                    table.pop(w.key, None)
                else:
                    table[w.key] = w.row
    return table


def changes_of(events: list[Event]) -> list[Change]:
    states: dict[str, Fold] = {}
    out = []
    for e in events:
        f = states.setdefault(e.entity_key, Fold())
        before = f.state
        after = f.apply(e)
        out.append(Change(event=e, before=before, after=after))
    return out


def simulated() -> tuple[list[Change], list[dict[str, Any]]]:
    async def go() -> tuple[list[Event], list[dict[str, Any]]]:
        clock = FakeClock(T0)
        feed = MemoryChangeFeed(clock=clock)
        sim = Simulator(feed, seed=21, clock=clock)
        await sim.create_orders(25)
        for _ in range(400):
            clock.advance(60 * 37)  # changes spread over several days
            await sim.step()
        capture = Capture(Settings(), Head())
        events = []
        for p in range(1, feed.position + 1):
            entry = feed.entry_at(p)
            assert entry is not None
            change = ChangeEvent.from_bson(entry.event)
            key = change.documentKey["_id"] if change.documentKey else None
            if capture.needs_heads("orders", [key]):
                capture.add_heads("orders", [key], {})
            events.append(capture.entity_change(change, now=clock.now()))
        return events, await feed.collection("orders").find({})

    events, final = asyncio.run(go())
    return changes_of(events), final


def test_incremental_models_equal_direct_computations_from_final_documents() -> None:
    changes, final = simulated()
    assert len(changes) > 400
    summary = run(models()["order_summary"], changes)
    live = {r["entity_key"]: r for r in summary.values() if not r["deleted"]}
    assert {str(d["_id"]) for d in final} == set(live)
    for d in final:
        row = live[str(d["_id"])]
        assert (row["status"], row["number"], row["currency"], row["items"]) == (
            d["status"],
            d["number"],
            d["currency"],
            d["items"],
        )
        assert row["total"] == d["total"] and isinstance(row["total"], Decimal128)

    by_status = run(models()["orders_by_status"], changes)
    expected = Counter(d["status"] for d in final)
    assert {k: r["count"] for k, r in by_status.items() if r["count"]} == dict(expected)

    customers = run(models()["customer_totals"], changes)
    names = {d["customer"]["id"]: d["customer"]["name"] for d in final}
    for cid, name in names.items():
        assert customers[cid]["name"] == name


def test_revenue_equals_an_independent_computation_from_the_log() -> None:
    changes, _ = simulated()
    # independently: per order, what it currently counts for; every event books the difference
    counted: dict[str, tuple[str, Decimal] | None] = {}
    book: dict[str, Decimal] = Counter()  # type: ignore[assignment]
    for c in changes:
        if c.after is None:  # deleting a document changes no revenue
            continue
        now = (
            (c.after.get("currency"), money(c.after.get("total")))
            if c.after.get("status") in PAID_STATUSES
            else None
        )
        was = counted.get(c.event.entity_key)
        if c.before is None:
            was = None
        day = c.event.occurred_at.strftime("%Y-%m-%d")
        if was is not None:
            book[f"{day}:{was[0]}"] -= was[1]
        if now is not None:
            book[f"{day}:{now[0]}"] += now[1]
        counted[c.event.entity_key] = now  # type: ignore[assignment]
    revenue = run(models()["revenue_by_day"], changes)
    got = {k: r["revenue"].to_decimal() for k, r in revenue.items()}
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in book.items() if v}
    assert len(got) >= 3  # spread over several days


def test_redelivering_every_change_changes_nothing() -> None:
    changes, _ = simulated()
    for projection, built_at_import in zip(order_projections(), ORDER_PROJECTIONS, strict=True):
        once = run(projection, changes)
        assert run(projection, changes, twice=True) == once, projection.name
        assert run(built_at_import, changes) == once, projection.name


def ev(seq: int, version: int, type_: str, at: datetime) -> Event:
    return Event(
        id=str(seq),
        seq=seq,
        stream="orders",
        entity_id="o1",
        entity_key="o1",
        version=version,
        type=type_,
        occurred_at=at,
        cluster_time=None,
        recorded_at=at,
    )


def order(status: str, total: str = "10.00", currency: str = "EUR", **extra: Any) -> dict[str, Any]:
    return {
        "_id": "o1",
        "status": status,
        "total": Decimal128(total),
        "currency": currency,
        "customer": {"id": "c1", "name": "Ann"},
        **extra,
    }


def test_cancel_delete_and_adjustment_follow_the_rules() -> None:
    d1, d2, d3, d4 = (T0 + timedelta(days=n) for n in range(4))
    seq = [
        Change(event=ev(1, 1, "created", d1), before=None, after=order("pending")),
        Change(event=ev(2, 2, "updated", d1), before=order("pending"), after=order("paid")),
        Change(
            event=ev(3, 3, "updated", d2), before=order("paid"), after=order("shipped", "12.50")
        ),
        Change(
            event=ev(4, 4, "updated", d3),
            before=order("shipped", "12.50"),
            after=order("cancelled", "12.50"),
        ),
        Change(event=ev(5, 5, "deleted", d4), before=order("cancelled", "12.50"), after=None),
    ]
    revenue = run(models()["revenue_by_day"], seq)
    assert {k: (str(r["revenue"]), r["orders"]) for k, r in revenue.items()} == {
        "2026-11-26:EUR": ("10.00", 1),
        "2026-11-27:EUR": ("2.50", 0),
        "2026-11-28:EUR": ("-12.50", -1),
    }
    customers = run(models()["customer_totals"], seq)
    assert customers["c1"]["orders"] == 1
    assert {c: str(v) for c, v in customers["c1"]["lifetime_spend"].items()} == {"EUR": "0.00"}
    by_status = run(models()["orders_by_status"], seq)
    assert {k: r["count"] for k, r in by_status.items()} == {
        "pending": 0,
        "paid": 0,
        "shipped": 0,
        "cancelled": 0,
    }
    summary = run(models()["order_summary"], seq)
    assert summary["str:o1"]["deleted"] is True and summary["str:o1"]["version"] == 5


def test_untidy_documents_never_fail_a_row() -> None:
    odd = {"_id": "o1", "status": "paid", "total": "abc", "customer": "not a document"}
    out = {
        p.name: run(p, [Change(event=ev(1, 1, "created", T0), before=None, after=odd)])
        for p in order_projections()
    }
    assert out["order_summary"]["str:o1"]["total"] == Decimal128("0")
    assert out["order_summary"]["str:o1"]["customer"] is None
    abc = [{"seq": 1, "field": "total", "value": "abc", "reason": "not_a_number"}]
    assert out["order_summary"]["str:o1"]["problems"] == abc
    assert out["revenue_by_day"]["2026-11-26:?"]["orders"] == 1
    # an aggregate row's problem names its order (what an erasure finds it by)
    assert out["revenue_by_day"]["2026-11-26:?"]["problems"] == [{**abc[0], "order": "str:o1"}]
    # an order without a customer id is counted in the no-customer row, never lost
    assert list(out["customer_totals"]) == [""]
    assert out["customer_totals"][""]["orders"] == 1
    assert out["customer_totals"][""]["customer"] is None


# (an integer status is its decimal text: test_order_schema's status codes)
@pytest.mark.parametrize(
    ("status", "shown"),
    [({"code": "paid"}, '{"code": "paid"}'), (["paid"], '["paid"]'), (True, "true")],
)
def test_a_status_that_cannot_be_read_is_a_problem_in_every_row_it_could_count_in(
    status: Any, shown: str
) -> None:
    """Such an order may be paid: counted as not paid, and recorded (it was silently left out)."""
    odd = {"_id": "o1", "status": status, "total": "10", "currency": "EUR"}
    out = {
        p.name: run(p, [Change(event=ev(1, 1, "created", T0), before=None, after=odd)])
        for p in order_projections()
    }
    found = [{"seq": 1, "field": "status", "value": shown, "reason": "wrong_type"}]
    row = out["order_summary"]["str:o1"]
    assert (row["status"], row["total"], row["problems"]) == (None, Decimal128("10"), found)
    of_order = [{**found[0], "order": "str:o1"}]
    day = out["revenue_by_day"]["2026-11-26:EUR"]
    assert (day["revenue"], day["orders"], day["problems"]) == (Decimal128("0"), 0, of_order)
    nobody = out["customer_totals"][""]
    assert (nobody["lifetime_spend"], nobody["problems"]) == ({}, of_order)
    assert out["orders_by_status"] == {}


@pytest.mark.parametrize(("status", "label"), [(2.5, "2.5"), (2.0, "2"), (None, None)])
def test_a_status_that_is_a_number_or_missing_is_no_problem(status: Any, label: str | None) -> None:
    odd = {"_id": "o1", "status": status, "currency": "EUR"}
    out = {
        p.name: run(p, [Change(event=ev(1, 1, "created", T0), before=None, after=odd)])
        for p in order_projections()
    }
    row = out["order_summary"]["str:o1"]
    assert row["status"] == label and row["problems"] == []
    assert row["total"] == Decimal128("0")
    assert out["revenue_by_day"] == {}


def test_a_status_problem_is_recorded_once_and_keeps_the_seq_it_came_at() -> None:
    new = {"_id": "o1", "status": "new", "total": "10", "currency": "EUR"}
    odd = {**new, "status": True}
    later = {**odd, "note": "x"}
    paid = {**odd, "status": "paid"}
    changes = [
        Change(event=ev(1, 1, "created", T0), before=None, after=new),
        Change(event=ev(2, 2, "updated", T0), before=new, after=odd),
        Change(event=ev(3, 3, "updated", T0), before=odd, after=later),
        Change(event=ev(4, 4, "updated", T0), before=later, after=paid),
    ]
    models = {p.name: p for p in order_projections()}
    found = [{"seq": 2, "field": "status", "value": "true", "reason": "wrong_type"}]
    after3 = {name: run(m, changes[:3]) for name, m in models.items()}
    assert after3["order_summary"]["str:o1"]["problems"] == found  # seq 2, not 3
    of_order = [{**found[0], "order": "str:o1"}]
    assert after3["revenue_by_day"]["2026-11-26:EUR"]["problems"] == of_order  # once
    assert after3["customer_totals"][""]["problems"] == of_order
    # Paid at last: counted; the row of the order is its state now, with no problem.
    after4 = {name: run(m, changes) for name, m in models.items()}
    assert after4["order_summary"]["str:o1"]["problems"] == []
    day = after4["revenue_by_day"]["2026-11-26:EUR"]
    assert (day["revenue"], day["orders"], day["problems"]) == (Decimal128("10"), 1, of_order)


# -- the runner's state cache and the money conversions ------------------------------------------


def test_the_state_cache_keeps_ids_of_different_types_apart() -> None:
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    ids: list[Any] = [oid, str(oid), 5, "5", {"a": 1}, True]
    log = LogBuilder()
    events = [log.next(i, document={"n": n}) for n, i in enumerate(ids)]
    events += [
        log.next(i, changes={"updatedFields": {"m": n}, "removedFields": [], "truncatedArrays": []})
        for n, i in enumerate(ids)
    ]
    # Int64(5) is the int 5 (one typed key): its event continues that entity's versions
    events.append(log.next(Int64(5), changes={"updatedFields": {"k": 1}, "removedFields": []}))
    cache = StateCache(History(MemoryStore()))
    changes = asyncio.run(cache.changes(events))
    for n, change in enumerate(changes[len(ids) : 2 * len(ids)]):
        assert change.before == {"n": n} and change.after == {"n": n, "m": n}
    assert changes[-1].before == {"n": 2, "m": 2} and changes[-1].after == {"n": 2, "m": 2, "k": 1}


_DECIMALS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(
        lambda c, e, s: Decimal((s, tuple(int(d) for d in str(c)), e)),
        st.integers(0, 10**40),
        st.integers(-6200, 6200),
        st.integers(0, 1),
    ),
)


@given(_DECIMALS)
def test_dec128_is_bit_for_bit_what_bson_makes_and_money_reads_it_back(value: Decimal) -> None:
    try:  # Decimal128's 34 digits and exponent range (below its least step: rounded to it)
        rounded = _MONEY.create_decimal(value)
    except Overflow:  # beyond Decimal128 altogether: dec128 refuses it the same way
        with pytest.raises(Overflow):
            dec128(value)
        return
    expected = Decimal128(rounded)
    got = dec128(value)
    assert got.bid == expected.bid, value
    amount, reason = read_money(got)
    if rounded.is_finite() and (rounded.is_zero() or rounded.adjusted() < 6111):
        assert reason is None and amount.as_tuple() == expected.to_decimal().as_tuple()
        assert money128(got)
    else:  # NaN, infinity and 10**6111 or more are not money: 0 (the row records the problem)
        assert (amount, reason) == (Decimal(0), "not_finite") and not money128(got)


def test_money_of_a_decimal128_is_its_decimal_every_time() -> None:
    values = [Decimal128("12.50"), Decimal128("-0.00"), Decimal128("1E+6110")]
    for _ in range(2):  # converted, then remembered
        for v in values:
            assert money(v).as_tuple() == v.to_decimal().as_tuple()
        assert money(Decimal128("NaN")) == 0 and money(Decimal128("-Infinity")) == 0
        assert money(Decimal128("1E+6111")) == 0 and money(Decimal128("-1E+6144")) == 0


def test_days_are_the_utc_calendar_day() -> None:
    for when in (T0, T0.replace(tzinfo=None), T0 + timedelta(hours=20), datetime(999, 1, 2)):
        for _ in range(2):
            assert _day(when) == when.replace(tzinfo=when.tzinfo or UTC).strftime("%Y-%m-%d")


def test_the_state_cache_keeps_the_most_recently_used_states_up_to_its_size() -> None:
    """`fold` answers without I/O only for a cached state of the version just before;
    past `size` entities the least recently used is forgotten and read back from history."""
    log = LogBuilder()

    def upd(entity: str, n: int) -> Event:
        return log.next(
            entity, changes={"updatedFields": {"n": n}, "removedFields": [], "truncatedArrays": []}
        )

    a1 = log.next("a", document={"n": 1})
    b1 = log.next("b", document={"n": 1})
    a2 = upd("a", 2)
    c1 = log.next("c", document={"n": 1})
    b2, a3, c2, a4 = upd("b", 2), upd("a", 3), upd("c", 2), upd("a", 4)
    store = MemoryStore()
    asyncio.run(store.events.append([a1, b1, a2, c1, b2, a3, c2, a4]))
    cache = StateCache(History(store), size=2)
    assert cache.fold(a1) == Change(event=a1, before=None, after={"n": 1})
    assert cache.fold(b1) is not None
    assert cache.fold(a3) is None  # not the version after the cached one
    assert cache.fold(a2) == Change(event=a2, before={"n": 1}, after={"n": 2})  # a used last
    assert cache.fold(c1) is not None  # a third entity: b, the least recently used, goes
    assert cache.fold(b2) is None
    assert cache.fold(a3) is not None and cache.fold(c2) is not None
    # b read back from history; a, now the least recently used, goes
    assert asyncio.run(cache.change(b2)) == Change(event=b2, before={"n": 1}, after={"n": 2})
    assert cache.fold(a4) is None
    cache.clear()
    assert cache.fold(c2) is None and cache.fold(b2) is None


def test_order_summary_applies_each_change_to_its_own_key_whatever_keys_asked_last() -> None:
    """keys() remembers the key it computed for apply(): a change applied after the keys of
    another (the runner asks for a whole batch's keys first) still writes its own row."""
    first = Change(event=ev(1, 1, "created", T0), before=None, after=order("pending"))
    other = msgspec.structs.replace(ev(2, 1, "created", T0), entity_id="o2", entity_key="o2")
    second = Change(event=other, before=None, after=order("paid", "7.00", _id="o2"))
    summary = models()["order_summary"]
    assert [summary.keys(c) for c in (first, second)] == [["str:o1"], ["str:o2"]]
    writes = summary.apply({}, first) + summary.apply({}, second)
    assert [(w.key, w.row and w.row["status"]) for w in writes] == [
        ("str:o1", "pending"),
        ("str:o2", "paid"),
    ]
    assert writes[1].row is not None and writes[1].row["total"] == Decimal128("7.00")


def test_order_summary_keys_are_typed_and_one_object_per_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key of an ObjectId or string order is built once and handed out again (the row
    look-ups then match by identity); other ids, and a full memory, still key it right."""
    monkeypatch.setattr(orders_module, "_KEYS_KEPT", 2)
    summary = models()["order_summary"]
    oid = ObjectId("6b16d1e6a3ff9a776b94134d")

    def key_of(entity_id: Any, version: int = 1) -> str:
        e = msgspec.structs.replace(
            ev(version, version, "created", T0),
            entity_id=entity_id,
            entity_key=entity_key(entity_id),
        )
        (key,) = summary.keys(Change(event=e, before=None, after=order("pending")))
        assert key == summary_key(e)
        return key

    first = key_of(oid)
    assert first == "oid:6b16d1e6a3ff9a776b94134d" and key_of(oid, 2) is first
    assert key_of("42") == "str:42" and key_of(42) == "int:42" and key_of(42) == "int:42"
    assert key_of("42", 2) is key_of("42", 3)
    # past `_KEYS_KEPT` orders of one class it starts again: the same text, a new object
    key_of(ObjectId("6b16d1e6a3ff9a776b94134e"))
    assert key_of(oid, 3) is first  # two kept
    key_of(ObjectId("6b16d1e6a3ff9a776b94134f"))  # the third: the two go
    again = key_of(oid, 4)
    assert again == first and again is not first and key_of(oid, 5) is again


def test_a_state_read_back_from_history_is_cached_as_the_most_recently_used() -> None:
    log = LogBuilder()

    def upd(entity: str, n: int) -> Event:
        return log.next(
            entity, changes={"updatedFields": {"n": n}, "removedFields": [], "truncatedArrays": []}
        )

    a1, b1 = log.next("a", document={"n": 1}), log.next("b", document={"n": 1})
    a2, a3, c1, a4 = upd("a", 2), upd("a", 3), log.next("c", document={"n": 1}), upd("a", 4)
    store = MemoryStore()
    asyncio.run(store.events.append([a1, b1, a2, a3, c1, a4]))
    cache = StateCache(History(store), size=2)
    assert cache.fold(a1) is not None and cache.fold(b1) is not None  # a is the older
    # a's cached version is 1, a3 needs 2: read from history, and a becomes the newest
    assert asyncio.run(cache.change(a3)) == Change(event=a3, before={"n": 2}, after={"n": 3})
    assert cache.fold(c1) is not None  # a third entity: b, now the least recently used, goes
    assert cache.fold(a4) == Change(event=a4, before={"n": 3}, after={"n": 4})
    # a cached state answers `change` without history (an empty store has none)
    offline = StateCache(History(MemoryStore()), size=2)
    assert offline.fold(a1) is not None
    assert asyncio.run(offline.change(a2)) == Change(event=a2, before={"n": 1}, after={"n": 2})
