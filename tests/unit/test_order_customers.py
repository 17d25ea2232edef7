"""customer_totals and order_summary against direct computations over random untidy histories:
orders that change customer, currency, status and total, lose fields, get deleted and come back.

The models are built by the test (see test_order_rules.py for why).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128

from projections.money import money, read_money, shown
from projections.orders import PAID_STATUSES, Change, order_projections
from tests.unit.test_order_merge import untidy
from tests.unit.test_order_projections import simulated
from tests.unit.test_order_rules import Orders, apply_all

STATUSES = ("pending", "paid", "shipped", "cancelled", None)
PLACED = datetime(2025, 6, 1, tzinfo=UTC)


def random_document(rnd: random.Random) -> dict[str, Any]:
    """A whole order document, any field possibly missing or odd."""
    doc: dict[str, Any] = {}
    for field in FIELDS:
        value = random_field(rnd, field)
        if value is not _GONE:
            doc[field] = value
    return doc


_GONE = object()
FIELDS = ("status", "total", "currency", "customer", "createdAt")


def random_field(rnd: random.Random, field: str) -> Any:
    if field == "status":
        status = rnd.choice(STATUSES)
        return _GONE if status is None else status
    if field == "total":
        return rnd.choice(
            [Decimal128(f"{rnd.randint(0, 99)}.{rnd.randint(0, 99):02d}"), "bad", None, 7, 2.5]
        )
    if field == "currency":
        return rnd.choice(["EUR", "USD"]) if rnd.random() < 0.9 else _GONE
    if field == "customer":
        who = rnd.choice([f"c{rnd.randint(1, 4)}", None, 3])
        customer: dict[str, Any] = {}
        if who is not None:
            customer["id"] = who
        if rnd.random() < 0.7:
            customer["name"] = rnd.choice(["Ann", "Bo", "Cy"])
        return customer
    # some orders say when they were placed, out of seq order; a few say it unreadably
    if rnd.random() < 0.1:
        return rnd.choice(BAD_DATES)
    return PLACED + timedelta(hours=rnd.randint(0, 500)) if rnd.random() < 0.5 else _GONE


# createdAt values that are no date: the order's time is then its event's, and recorded
BAD_DATES = ("soon", 1748736000, True)


def placed_at(c: Change) -> datetime:
    """When `c.after`'s order was placed: its createdAt if a date, else the event's time."""
    assert c.after is not None
    at = c.after.get("createdAt")
    return at if isinstance(at, datetime) else c.event.occurred_at


def bad_date(doc: dict[str, Any] | None) -> bool:
    return doc is not None and doc.get("createdAt") in BAD_DATES


def copy_of(value: Any) -> Any:
    """An equal value in a new object, as decoding a replaced document gives."""
    if isinstance(value, str):
        return "".join(list(value))
    if isinstance(value, Decimal128):
        return Decimal128(str(value))
    if isinstance(value, float):
        return float(repr(value))
    return value


def random_history(seed: int) -> list[Change]:
    """Orders created whole, then mostly updated one field at a time (the other values are
    the same objects, as a fold shares them), sometimes replaced whole or deleted."""
    rnd = random.Random(seed)
    orders = Orders()
    for _ in range(400):
        oid = f"o{rnd.randint(1, 25)}"
        before = orders.docs.get(oid)
        days = rnd.randint(0, 3)
        if before is not None and rnd.random() < 0.06:
            orders.put(oid, None, days=days)
        elif before is None or rnd.random() < 0.15:
            doc = random_document(rnd)
            if before is not None and rnd.random() < 0.5:  # the same total, a new object
                doc["total"] = copy_of(before.get("total"))
            orders.put(oid, doc, days=days)
        else:
            doc = dict(before)
            field = rnd.choice(FIELDS)
            value = random_field(rnd, field)
            if value is _GONE:
                doc.pop(field, None)
            else:
                doc[field] = value
            orders.put(oid, doc, days=days)
    return orders.changes


def customer_of(doc: dict[str, Any]) -> str:
    cid = doc.get("customer", {}).get("id") if isinstance(doc.get("customer"), dict) else None
    return "" if cid is None or isinstance(cid, (dict, list)) else str(cid)


def expected_customers(changes: list[Change]) -> dict[str, dict[str, Any]]:
    """Per customer: orders placed (each order counts for the customer of its last document;
    deleting changes nothing, one created again is another), spend per currency of those
    whose last document is paid, the newest name, the latest
    placement (createdAt, else the time of the event that gave the customer the order)."""
    last: dict[tuple[str, int], dict[str, Any]] = {}  # by (order, life): deleting keeps it
    lives: dict[str, int] = defaultdict(int)
    name: dict[str, tuple[str, int]] = {}
    placed: dict[str, datetime] = {}
    for c in changes:
        if c.after is None:
            continue
        if c.before is None:  # created, or created again after a delete: a new order
            lives[c.event.entity_key] += 1
        cid = customer_of(c.after)
        last[(c.event.entity_key, lives[c.event.entity_key])] = c.after
        who = c.after.get("customer", {})
        if cid and isinstance(who.get("name"), str):
            name[cid] = (who["name"], c.event.seq)
        if c.before is None or customer_of(c.before) != cid:
            at = placed_at(c)
            placed[cid] = max(placed.get(cid, at), at)
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"orders": 0, "spend": defaultdict(Decimal)}
    )
    for doc in last.values():
        row = out[customer_of(doc)]
        row["orders"] += 1
        if doc.get("status") in PAID_STATUSES:
            currency = doc.get("currency") if isinstance(doc.get("currency"), str) else "?"
            row["spend"][currency] += money(doc.get("total"))
    for cid, row in out.items():
        row["spend"] = {c: v for c, v in row["spend"].items() if v}
        row["name"] = name.get(cid, (None, 0))
        row["last_order_at"] = placed.get(cid)
    return dict(out)


def same_value(a: Any, b: Any) -> bool:
    """The same stored value: of one type and shown alike (NaN is the same NaN)."""
    return a is b or (type(a) is type(b) and shown(a) == shown(b))


def workloads() -> dict[str, list[Change]]:
    return {
        **{f"random {seed}": random_history(seed) for seed in (1, 2, 3)},
        "simulated": simulated()[0],
        "untidy": untidy(),
    }


def test_customer_totals_equal_a_direct_computation() -> None:
    for workload, changes in workloads().items():
        got = apply_all({p.name: p for p in order_projections()}["customer_totals"], changes)
        expected = expected_customers(changes)
        rows = {k: r for k, r in got.items() if r["orders"] or k in expected}
        assert set(rows) == set(expected), workload
        for cid, row in rows.items():
            want = expected[cid]
            spend = {c: v.to_decimal() for c, v in row["lifetime_spend"].items()}
            assert row["orders"] == want["orders"], (workload, cid)
            assert {c: v for c, v in spend.items() if v} == want["spend"], (workload, cid)
            assert all(isinstance(v, Decimal128) for v in row["lifetime_spend"].values())
            assert list(row["lifetime_spend"]) == sorted(row["lifetime_spend"])
            assert (row["name"], row["name_seq"]) == want["name"], (workload, cid)
            assert row["last_order_at"] == want["last_order_at"], (workload, cid)
            assert row["customer"] == (cid or None)


def test_customer_totals_touch_the_customers_of_the_documents_before_and_after() -> None:
    customers = {p.name: p for p in order_projections()}["customer_totals"]
    for workload, changes in workloads().items():
        for c in changes:
            docs = [d for d in (c.before, c.after) if d is not None]
            assert customers.keys(c) == sorted({customer_of(d) for d in docs}), workload


def test_customer_problems_are_the_new_bad_totals_of_paid_orders_and_unreadable_dates() -> None:
    """A problem per change that makes a paid order's total a bad one for its customer: a new
    value, or an order newly paid or newly that customer's; never one kept as it was. And one
    per order placed with a customer (new, or newly that customer's) whose createdAt is no
    date, ahead of the total's."""
    for workload, changes in workloads().items():
        got = apply_all({p.name: p for p in order_projections()}["customer_totals"], changes)
        expected: dict[str, list[int]] = defaultdict(list)
        for c in changes:
            after = c.after
            if after is None:
                continue
            placed = c.before is None or customer_of(c.before) != customer_of(after)
            if placed and bad_date(after):
                expected[customer_of(after)].append(c.event.seq)
            if after.get("status") not in PAID_STATUSES:
                continue
            value = after.get("total")
            if read_money(value)[1] is None:
                continue
            before = c.before
            kept = (
                before is not None
                and before.get("status") in PAID_STATUSES
                and customer_of(before) == customer_of(after)
                and same_value(before.get("total"), value)
            )
            if not kept:
                expected[customer_of(after)].append(c.event.seq)
        for cid, row in got.items():
            seqs = expected.get(cid, [])
            assert [p["seq"] for p in row["problems"]] == seqs[-20:], (workload, cid)
            assert row["problems_dropped"] == max(len(seqs) - 20, 0), (workload, cid)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_order_summary_equals_each_orders_last_document(seed: int) -> None:
    changes = random_history(seed)
    summary = apply_all({p.name: p for p in order_projections()}["order_summary"], changes)
    last: dict[str, Change] = {}
    first: dict[str, Change] = {}
    for c in changes:
        last[c.event.entity_key] = c
        first.setdefault(c.event.entity_key, c)
    assert set(summary) == {f"str:{k}" for k in last}
    for key, c in last.items():
        row = summary[f"str:{key}"]
        doc = c.after if c.after is not None else c.before
        assert doc is not None
        status = doc.get("status")
        assert row["deleted"] is (c.after is None)
        assert (row["version"], row["seq"], row["updated_at"]) == (
            c.event.version,
            c.event.seq,
            c.event.occurred_at,
        )
        assert row["status"] == status
        assert row["currency"] == doc.get("currency")
        assert row["customer"] == doc.get("customer")
        amount, reason = read_money(doc.get("total"))
        assert row["total"].to_decimal() == amount
        problems = row["problems"]
        # the first document's time of placement (else its event's), kept by later versions,
        # and the first document's createdAt recorded for good when it was no date
        placed = first[key].after
        assert placed is not None
        assert row["created_at"] == placed_at(first[key])
        if bad_date(placed):
            assert problems[0] == {
                "seq": first[key].event.seq,
                "field": "created_at",
                "value": shown(placed["createdAt"]),
                "reason": "not_a_date" if isinstance(placed["createdAt"], str) else "wrong_type",
            }
            problems = problems[1:]
        if reason is None or (reason == "missing" and status not in PAID_STATUSES):
            assert problems == []
        else:
            assert [p["reason"] for p in problems] == [reason]
