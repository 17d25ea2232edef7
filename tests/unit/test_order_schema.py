"""The order read models over a shop's own schema (ORDER_STREAM, ORDER_FIELDS, PAID_STATUSES),
and money that is never silently zero: each edge case gives its value or its recorded problem."""

from __future__ import annotations

import io
import json
import math
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from bson import Binary, Decimal128, Int64, ObjectId

from eventstore.cli import main
from eventstore.model import Event
from eventstore.settings import ORDER_FIELDS, Settings, SettingsError, load
from projections.money import MAX_PROBLEMS, read_money, shown
from projections.orders import (
    ORDER_PROJECTIONS,
    Change,
    OrderSchema,
    Projection,
    order_projections,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def ev(seq: int, entity: str, version: int, at: datetime, stream: str = "orders") -> Event:
    return Event(
        id=str(seq),
        seq=seq,
        stream=stream,
        entity_id=entity,
        entity_key=entity,
        version=version,
        type="created" if version == 1 else "replaced",
        occurred_at=at,
        cluster_time=None,
        recorded_at=at,
    )


def run(projection: Projection, changes: list[Change]) -> dict[str, dict[str, Any]]:
    """Apply changes to an in-memory table, as the runner does."""
    table: dict[str, dict[str, Any]] = {}
    for change in changes:
        keys = projection.keys(change)
        rows = {k: table[k] for k in keys if k in table}
        for w in projection.apply(rows, change):
            assert w.key in keys
            if w.row is None:
                table.pop(w.key, None)
            else:
                table[w.key] = w.row
    return table


def by_name(schema: OrderSchema) -> dict[str, Projection]:
    return {p.name: p for p in order_projections(schema)}


def customer_rows(ids: list[Any]) -> dict[str, dict[str, Any]]:
    """customer_totals over one paid order per customer id, in this order."""
    changes = [
        Change(
            event=ev(n, f"o{n}", 1, T0),
            before=None,
            after={"status": "paid", "total": 1, "customer": {"id": cid}},
        )
        for n, cid in enumerate(ids, start=1)
    ]
    return run(by_name(OrderSchema())["customer_totals"], changes)


def test_only_an_id_names_a_customer() -> None:
    """A boolean, a document or an array is no customer id: counted as without one."""
    rows = customer_rows([True, False, {"id": 1}, [1], None, "", 42, Int64(42), "C-1"])
    assert {k: r["orders"] for k, r in rows.items()} == {"": 6, "42": 2, "C-1": 1}
    assert rows[""]["customer"] is None


def test_a_number_names_a_customer_by_its_value_as_mongodb_compares_numbers() -> None:
    """42, 42.0 and Decimal128("42.0") are one customer; NaN and infinity name none."""
    ids: list[Any] = [42, Int64(42), 42.0, Decimal128("42.0"), Decimal128("4.2E+1")]
    ids += [42.5, Decimal128("42.50"), 1e20, -0.0, 0, 1e-7, Decimal128("1.0E-7")]
    ids += [math.nan, math.inf, Decimal128("NaN"), Decimal128("-Infinity")]
    assert {k: r["orders"] for k, r in customer_rows(ids).items()} == {
        "42": 5,
        "42.5": 2,
        "100000000000000000000": 1,
        "0": 2,
        # the double nearest 1e-7 is not Decimal128 1E-7: two customers, each in plain digits
        "0.0000000999999999999999954748111825886258685613938723690807819366455078125": 1,
        "0.0000001": 1,
        "": 4,
    }


def test_a_customer_id_in_an_array_is_named_in_the_order_summary() -> None:
    # The id's parent is an array, not a document: the row's customer is {id, name}.
    paths = {**ORDER_FIELDS, "customer_id": "cust.ids.0", "customer_name": "cust.name"}
    projections = by_name(OrderSchema(paths=paths))
    after = {"status": "paid", "total": 3, "cust": {"ids": [7, 8], "name": "Ada"}}
    change = Change(event=ev(1, "o1", 1, T0), before=None, after=after)
    [row] = run(projections["order_summary"], [change]).values()
    assert row["customer"] == {"id": "7", "name": "Ada"}
    [customer] = run(projections["customer_totals"], [change]).values()
    assert (customer["customer"], customer["orders"]) == ("7", 1)
    # A document holding the id is the customer, as before.
    default = by_name(OrderSchema())["order_summary"]
    after = {"status": "paid", "total": 3, "customer": {"id": 7, "tier": "gold"}}
    [row] = run(default, [Change(event=ev(1, "o1", 1, T0), before=None, after=after)]).values()
    assert row["customer"] == {"id": 7, "tier": "gold"}


def test_a_top_level_customer_id_names_the_customer_by_id_and_name() -> None:
    # No document holds a top-level id: not even one under the field named "".
    paths = {**ORDER_FIELDS, "customer_id": "customerId", "customer_name": "customerName"}
    summary = by_name(OrderSchema(paths=paths))["order_summary"]
    after = {"status": "paid", "total": 3, "customerId": 7, "customerName": "Ada", "": {"x": 1}}
    [row] = run(summary, [Change(event=ev(1, "o1", 1, T0), before=None, after=after)]).values()
    assert row["customer"] == {"id": "7", "name": "Ada"}


def test_numbers_beyond_a_doubles_shortest_form_are_keyed_by_their_exact_value() -> None:
    # 2**60 as an Int64 and as a double are one value; 1152921504606847000 (the double's
    # shortest form) is another; -2**63 likewise; 1e300 is not Decimal128 1E+300.
    ids: list[Any] = [Int64(2**60), float(2**60), Decimal128("1152921504606847000")]
    ids += [Int64(-(2**63)), float(-(2**63)), 1e300, Decimal128("1E+300")]
    rows = customer_rows(ids)
    assert {k: r["orders"] for k, r in rows.items() if len(k) < 30} == {
        "1152921504606846976": 2,
        "1152921504606847000": 1,
        "-9223372036854775808": 2,
    }
    big = sorted(k for k in rows if len(k) >= 30)
    assert big == [str(10**300), str(int(1e300))]
    assert [rows[k]["orders"] for k in big] == [1, 1]


def test_other_ids_are_keyed_by_their_text_never_pythons() -> None:
    uuid = UUID("12345678-1234-5678-1234-567812345678")
    oid = ObjectId("65f000000000000000000001")
    when = datetime(2026, 1, 1, tzinfo=UTC)
    ids: list[Any] = [b"\x00\x01", Binary(uuid.bytes, 4), uuid, str(uuid), oid, when]
    rows = customer_rows(ids)
    assert {k: r["orders"] for k, r in rows.items()} == {
        'json:{"$binary":{"base64":"AAE=","subType":"00"}}': 1,
        "12345678-1234-5678-1234-567812345678": 3,  # as the string "42" is customer 42
        "65f000000000000000000001": 1,
        'json:{"$date":{"$numberLong":"1767225600000"}}': 1,
    }


# -- money ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "amount", "reason", "shown"),
    [
        (36.32, "36.32", None, None),
        (0.1 + 0.2, "0.30000000000000004", None, None),  # the double's own shortest form
        (1e21, "1E+21", None, None),
        (Decimal128("12.50"), "12.50", None, None),
        (12, "12", None, None),
        (Int64(7), "7", None, None),
        ("19.99", "19.99", None, None),
        (" 5 ", "5", None, None),
        ("+.5", "0.5", None, None),
        ("5.", "5", None, None),
        ("1e3", "1E+3", None, None),
        # what Python's Decimal reads but a numeric string is not: recorded, never a number
        ("1_000", "0", "not_a_number", "1_000"),
        ("\u0661\u0662", "0", "not_a_number", "\u0661\u0662"),  # Arabic-Indic digits
        ("\uff11\uff12", "0", "not_a_number", "\uff11\uff12"),  # fullwidth digits
        ("1 000", "0", "not_a_number", "1 000"),
        ("12,50", "0", "not_a_number", "12,50"),
        ("-Inf", "0", "not_finite", "-Inf"),
        ("sNaN", "0", "not_finite", "sNaN"),
        ("abc", "0", "not_a_number", "abc"),
        ("", "0", "not_a_number", ""),
        ("NaN", "0", "not_finite", "NaN"),
        ("Infinity", "0", "not_finite", "Infinity"),
        (math.nan, "0", "not_finite", "NaN"),
        (math.inf, "0", "not_finite", "Infinity"),
        (-math.inf, "0", "not_finite", "-Infinity"),
        (Decimal128("NaN"), "0", "not_finite", "NaN"),
        (Decimal128("-Infinity"), "0", "not_finite", "-Infinity"),
        (True, "0", "wrong_type", "true"),
        (False, "0", "wrong_type", "false"),
        ({"amount": 5}, "0", "wrong_type", '{"amount": 5}'),
        ({"a": Decimal128("1.5")}, "0", "wrong_type", '{"a": {"$numberDecimal": "1.5"}}'),
        ([5], "0", "wrong_type", "[5]"),
        (T0, "0", "wrong_type", '{"$date": "2026-03-02T08:00:00Z"}'),  # as inside a document
        (None, "0", "missing", None),
        # Beyond what a sum of Decimal128 can hold (|x| >= 10**6111): as good as infinite.
        ("1e999999999", "0", "not_finite", "1e999999999"),
        ("-1E+6111", "0", "not_finite", "-1E+6111"),
        # An exponent beyond what Python's Decimal holds: still a number, far beyond.
        ("1.5e+9999999999999999999", "0", "not_finite", "1.5e+9999999999999999999"),
        (" -2E9999999999999999999 ", "0", "not_finite", " -2E9999999999999999999 "),
        ("0e+9999999999999999999", "0E+6111", None, None),  # zero, whatever its exponent
        # (clamped by bson: its exponent is at most 6111)
        (Decimal128("9E+6144"), "0", "not_finite", "9.000000000000000000000000000000000E+6144"),
        (Decimal128("0E+6111"), "0E+6111", None, None),
        (
            "9.999999999999999999999999999999999E+6110",
            "9.999999999999999999999999999999999E+6110",
            None,
            None,
        ),
        # Smaller than Decimal128's least step: rounded to it, as MongoDB stores it.
        ("1e-7000", "0E-6176", None, None),
        ("1e-9999999999999999999", "0E-6176", None, None),
        ("1e9999999999999999999x", "0", "not_a_number", "1e9999999999999999999x"),
        # More than 34 significant digits: rounded half to even, as Decimal128 holds it.
        (
            "1.00000000000000000000000000000000050",
            "1.000000000000000000000000000000000",
            None,
            None,
        ),
    ],
)
def test_each_money_edge_case_gives_its_value_or_its_recorded_problem(
    value: Any, amount: str, reason: str | None, shown: str | None
) -> None:
    got, why = read_money(value)
    assert (got, why) == (Decimal(amount), reason)
    if reason is not None:
        assert got == 0
    summary, revenue, customers = (
        by_name(OrderSchema())[n] for n in ("order_summary", "revenue_by_day", "customer_totals")
    )
    doc = {"status": "paid", "total": value, "currency": "EUR", "customer": {"id": "c1"}}
    change = Change(event=ev(1, "o1", 1, T0), before=None, after=doc)
    row = run(summary, [change])["str:o1"]
    assert row["total"] == Decimal128(amount)
    expected = (
        [] if reason is None else [{"seq": 1, "field": "total", "value": shown, "reason": reason}]
    )
    assert row["problems"] == expected and row["problems_dropped"] == 0
    day = run(revenue, [change])["2026-03-02:EUR"]
    assert day["revenue"].to_decimal() == Decimal(amount) and day["orders"] == 1
    # an aggregate row's problem names its order too (erasure finds it by it; the API hides it)
    of_order = [{**p, "order": "str:o1"} for p in expected]
    assert day["problems"] == of_order
    assert day["held_from"] == (["str:o1"] if expected else [])
    spend = run(customers, [change])["c1"]
    assert {c: v.to_decimal() for c, v in spend["lifetime_spend"].items()} == {
        "EUR": Decimal(amount)
    }
    assert spend["problems"] == of_order


def test_sums_keep_the_34_digits_decimal128_holds() -> None:
    """Sums, and the reversal of a re-priced order's old total, are exact to 34 digits.

    (Python's default decimal context keeps 28: a re-priced order left a residue.)
    """
    summary, revenue, customers = (
        by_name(OrderSchema())[n] for n in ("order_summary", "revenue_by_day", "customer_totals")
    )
    a, b = "1234567890123456789012345678.91", "0.01"  # 30 significant digits
    doc = {"status": "paid", "total": a, "currency": "EUR", "customer": {"id": "c1"}}
    first = Change(event=ev(1, "o1", 1, T0), before=None, after=doc)
    other = Change(
        event=ev(2, "o2", 1, T0), before=None, after={**doc, "total": b, "customer": {"id": "c1"}}
    )
    repriced = Change(event=ev(3, "o1", 2, T0), before=doc, after={**doc, "total": "7.5"})
    both = Decimal("1234567890123456789012345678.92")
    assert run(revenue, [first, other])["2026-03-02:EUR"]["revenue"].to_decimal() == both
    spend = run(customers, [first, other])["c1"]["lifetime_spend"]["EUR"]
    assert spend.to_decimal() == both
    assert run(revenue, [first, other, repriced])["2026-03-02:EUR"]["revenue"].to_decimal() == (
        Decimal("7.51")
    )
    spend = run(customers, [first, other, repriced])["c1"]["lifetime_spend"]["EUR"]
    assert spend.to_decimal() == Decimal("7.51")
    assert run(summary, [first])["str:o1"]["total"] == Decimal128(a)


@pytest.fixture
def local_time_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+9 meanwhile (POSIX TZ: no zone database needed)."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    assert datetime(2026, 1, 1).astimezone().utcoffset() == timedelta(hours=9)
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("stored", "placed", "reason"),
    [
        (T0 - timedelta(days=3), T0 - timedelta(days=3), None),
        ((T0 - timedelta(days=3)).replace(tzinfo=None), T0 - timedelta(days=3), None),  # UTC
        (
            (T0 - timedelta(days=3)).astimezone(timezone(timedelta(hours=2))),
            T0 - timedelta(days=3),
            None,
        ),
        ("2026-02-27T08:00:00Z", T0 - timedelta(days=3), None),
        ("2026-02-27T10:00:00+02:00", T0 - timedelta(days=3), None),
        ("2026-02-27T08:00:00", T0 - timedelta(days=3), None),  # naive text: UTC
        ("2026-02-27", T0 - timedelta(days=3, hours=8), None),
        (None, T0, None),  # null (or absent): the first event's time, nothing to record
        # not a date: the time of the order's first event, and recorded
        ("last Tuesday", T0, "not_a_date"),
        ("", T0, "not_a_date"),
        (1772179200000, T0, "wrong_type"),  # a number is no date (seconds or milliseconds?)
        (1772179200.5, T0, "wrong_type"),
        (True, T0, "wrong_type"),
        ({"$date": "2026-02-27"}, T0, "wrong_type"),  # a sub-document, not a date
    ],
)
@pytest.mark.usefixtures("local_time_in_tokyo")  # naive times are UTC, never the machine's
def test_created_at_is_a_date_or_iso_text_else_the_first_events_time_and_recorded(
    stored: Any, placed: datetime, reason: str | None
) -> None:
    summary, customers = (by_name(OrderSchema())[n] for n in ("order_summary", "customer_totals"))
    doc = {"status": "new", "createdAt": stored, "customer": {"id": "c1"}, "total": "10"}
    first = Change(event=ev(1, "o1", 1, T0), before=None, after=doc)
    later = Change(
        event=ev(2, "o1", 2, T0 + timedelta(hours=5)), before=doc, after={**doc, "status": "paid"}
    )
    row = run(summary, [first, later])["str:o1"]
    assert row["created_at"] == placed and row["created_at"].tzinfo is UTC
    customer = run(customers, [first, later])["c1"]
    assert customer["last_order_at"] == placed
    # recorded at the change whose time stood in for it, and kept while the row's date is that
    expected = (
        []
        if reason is None
        else [{"seq": 1, "field": "created_at", "value": shown(stored), "reason": reason}]
    )
    assert row["problems"] == expected
    assert customer["problems"] == [{**p, "order": "str:o1"} for p in expected]
    assert row["problems_dropped"] == customer["problems_dropped"] == 0


def test_integer_status_codes_are_statuses_in_decimal() -> None:
    """A shop coding statuses 1 (new), 2 (paid), 3 (shipped): PAID_STATUSES=2,3."""
    coded = OrderSchema.from_settings(Settings(paid_statuses=("2", "3")))
    models = by_name(coded)
    a1 = {"status": 1, "total": "10", "currency": "EUR", "customer": {"id": "c1"}}
    a2 = {**a1, "status": Int64(2)}
    b = {"status": 3, "total": "5", "currency": "EUR", "customer": {"id": "c1"}}
    c = {"status": True, "total": "7", "currency": "EUR", "customer": {"id": "c1"}}  # not one
    d = {"status": 2, "currency": "EUR", "customer": {"id": "c1"}}  # paid, without a total
    changes = [
        Change(event=ev(1, "a", 1, T0), before=None, after=a1),
        Change(event=ev(2, "a", 2, T0), before=a1, after=a2),
        Change(event=ev(3, "b", 1, T0), before=None, after=b),
        Change(event=ev(4, "c", 1, T0), before=None, after=c),
        Change(event=ev(5, "d", 1, T0), before=None, after=d),
    ]
    summary = run(models["order_summary"], changes)
    assert {k: r["status"] for k, r in summary.items()} == {
        "str:a": "2",
        "str:b": "3",
        "str:c": None,
        "str:d": "2",
    }
    missing = [{"seq": 5, "field": "total", "value": None, "reason": "missing"}]
    assert summary["str:d"]["problems"] == missing and summary["str:a"]["problems"] == []
    # true is no status: c is not counted as paid, and that is recorded wherever it could count
    not_one = [{"seq": 4, "field": "status", "value": "true", "reason": "wrong_type"}]
    assert summary["str:c"]["problems"] == not_one
    by_status = run(models["orders_by_status"], changes)
    assert {k: r["count"] for k, r in by_status.items() if r["count"]} == {"2": 2, "3": 1}
    day = run(models["revenue_by_day"], changes)["2026-03-02:EUR"]
    assert (day["revenue"], day["orders"]) == (Decimal128("15"), 3)
    assert day["problems"] == [{**not_one[0], "order": "str:c"}, {**missing[0], "order": "str:d"}]
    assert day["held_from"] == ["str:c", "str:d"]
    spend = run(models["customer_totals"], changes)["c1"]["lifetime_spend"]
    assert spend == {"EUR": Decimal128("15")}


@pytest.mark.parametrize(
    ("stored", "shown"), [("ORD-7", "ORD-7"), (1001, "1001"), (Int64(42), "42"), (True, None)]
)
def test_an_order_number_is_text_or_an_integer_in_decimal(stored: Any, shown: str | None) -> None:
    summary = by_name(OrderSchema())["order_summary"]
    doc = {"status": "new", "number": stored}
    row = run(summary, [Change(event=ev(1, "o1", 1, T0), before=None, after=doc)])["str:o1"]
    assert row["number"] == shown


def test_a_missing_total_is_a_problem_only_in_a_paid_status() -> None:
    summary = by_name(OrderSchema())["order_summary"]
    pending = Change(event=ev(1, "o1", 1, T0), before=None, after={"status": "pending"})
    paid = Change(event=ev(2, "o1", 2, T0), before=pending.after, after={"status": "paid"})
    shipped = Change(event=ev(3, "o1", 3, T0), before=paid.after, after={"status": "shipped"})
    assert run(summary, [pending])["str:o1"]["problems"] == []
    missing = [{"seq": 2, "field": "total", "value": None, "reason": "missing"}]
    assert run(summary, [pending, paid])["str:o1"]["problems"] == missing
    # still missing: the record of seq 2 is kept, not a new one per event
    assert run(summary, [pending, paid, shipped])["str:o1"]["problems"] == missing


def test_a_row_keeps_the_newest_problems_and_counts_the_rest() -> None:
    revenue = by_name(OrderSchema())["revenue_by_day"]
    changes = [
        Change(
            event=ev(n, f"o{n}", 1, T0),
            before=None,
            after={"status": "paid", "total": f"bad{n}", "currency": "EUR"},
        )
        for n in range(1, MAX_PROBLEMS + 6)
    ]
    row = run(revenue, changes)["2026-03-02:EUR"]
    assert [p["seq"] for p in row["problems"]] == list(range(6, MAX_PROBLEMS + 6))
    assert row["problems"][-1] == {
        "seq": MAX_PROBLEMS + 5,
        "field": "total",
        "value": f"bad{MAX_PROBLEMS + 5}",
        "reason": "not_a_number",
        "order": f"str:o{MAX_PROBLEMS + 5}",
    }
    # the orders of the problems it holds, not of those it dropped
    assert row["held_from"] == sorted(f"str:o{n}" for n in range(6, MAX_PROBLEMS + 6))
    assert row["problems_dropped"] == 5 and row["orders"] == MAX_PROBLEMS + 5


# -- a second document shape ------------------------------------------------------------------
SHOP_FIELDS = {
    "status": "state",
    "total": "amount",
    "customer_id": "customerId",
    "customer_name": "buyer.name",
    "number": "ref",
    "created_at": "placedAt",
    "items": "lines",
}
SHOP = OrderSchema.from_settings(
    Settings(
        order_fields=tuple(SHOP_FIELDS.items()),
        paid_statuses=("settled", "sent"),
        order_stream="purchases",
    )
)
STATES = ("open", "settled", "sent", "void")


def shop_workload(seed: int) -> tuple[list[Change], dict[str, dict[str, Any]]]:
    """Orders shaped {state, lines: [{sku, qty, price}], amount: double, currency, customerId,
    buyer: {name, address}} in stream `purchases`, with customers in another stream."""
    rnd = random.Random(seed)
    docs: dict[str, dict[str, Any]] = {}
    versions: Counter[str] = Counter()
    changes: list[Change] = []
    at = T0
    for seq in range(1, 400):
        at += timedelta(hours=rnd.randint(1, 9))
        if rnd.random() < 0.1:  # a customer document: another stream, never an order
            versions["cust"] += 1
            changes.append(
                Change(
                    event=ev(seq, "cust", versions["cust"], at, stream="customers"),
                    before=None,
                    after={"state": "settled", "amount": 99.0, "customerId": "X"},
                )
            )
            continue
        oid = f"P-{rnd.randint(1, 30)}"
        before = docs.get(oid)
        bought = [
            (rnd.randint(1, 3), round(rnd.uniform(1, 50), 2)) for _ in range(rnd.randint(0, 3))
        ]
        lines = [{"sku": f"S{n}", "qty": q, "price": p} for n, (q, p) in enumerate(bought)]
        after = {
            "ref": oid,
            "state": rnd.choice(STATES) if before else "open",
            "lines": lines,
            "amount": round(sum(q * p for q, p in bought), 2),
            "currency": rnd.choice(["EUR", "USD"]),
            "customerId": rnd.choice([f"C{rnd.randint(1, 6)}", None]),
            "buyer": {"name": rnd.choice(["Ann", "Bo"]), "address": "1 Road"},
            "placedAt": T0,
        }
        versions[oid] += 1
        changes.append(
            Change(
                event=ev(seq, oid, versions[oid], at, stream="purchases"),
                before=before,
                after=after,
            )
        )
        docs[oid] = after
    return changes, docs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_order_models_over_a_second_document_shape_equal_direct_computations(
    seed: int,
) -> None:
    changes, finals = shop_workload(seed)
    models = by_name(SHOP)
    summary = run(models["order_summary"], changes)
    assert set(summary) == {f"str:{k}" for k in finals}  # never a customer document
    for key, doc in finals.items():
        row = summary[f"str:{key}"]
        assert row["total"] == Decimal128(repr(doc["amount"]))  # 36.32 stays 36.32
        assert (row["status"], row["number"], row["items"]) == (doc["state"], key, doc["lines"])
        assert row["created_at"] == T0 and row["problems"] == []
    by_status = run(models["orders_by_status"], changes)
    assert {k: r["count"] for k, r in by_status.items() if r["count"]} == dict(
        Counter(d["state"] for d in finals.values())
    )
    # revenue and spend: what each order counts for now (paid: its amount), summed
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    spend: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    placed: Counter[str] = Counter()
    for doc in finals.values():
        placed[doc["customerId"] or ""] += 1
        if doc["state"] in ("settled", "sent"):
            revenue[doc["currency"]] += Decimal(repr(doc["amount"]))
            spend[doc["customerId"] or ""][doc["currency"]] += Decimal(repr(doc["amount"]))
    days = run(models["revenue_by_day"], changes)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in days.values():
        totals[row["currency"]] += row["revenue"].to_decimal()
    assert {c: v for c, v in totals.items() if v} == {c: v for c, v in revenue.items() if v}
    customers = run(models["customer_totals"], changes)
    for cid, row in customers.items():
        assert row["orders"] == placed[cid], cid
        got = {c: v.to_decimal() for c, v in row["lifetime_spend"].items() if v.to_decimal()}
        assert got == {c: v for c, v in spend[cid].items() if v}, cid
        assert row["customer"] == (cid or None)
    assert "X" not in customers  # the customer document's customerId is no order's
    # the default mapping reads none of it: another stream
    assert all(run(p, changes) == {} for p in ORDER_PROJECTIONS)


def test_the_default_stream_is_orders_only() -> None:
    summary = by_name(OrderSchema())["order_summary"]
    order = Change(event=ev(1, "o1", 1, T0), before=None, after={"status": "paid", "total": 1})
    customer = Change(
        event=ev(2, "c1", 1, T0, stream="customers"), before=None, after={"status": "paid"}
    )
    assert list(run(summary, [order, customer])) == ["str:o1"]


def test_the_mapping_is_part_of_the_models_config() -> None:
    assert {p.config for p in ORDER_PROJECTIONS} == {OrderSchema().fingerprint()}
    assert {p.config for p in order_projections(SHOP)} == {SHOP.fingerprint()}
    assert SHOP.fingerprint() != OrderSchema().fingerprint()
    # the defaults given explicitly are the defaults
    same = Settings(
        order_fields=(("total", "total"),), paid_statuses=("shipped", "paid", "delivered")
    )
    assert OrderSchema.from_settings(same).fingerprint() == OrderSchema().fingerprint()


# -- settings -----------------------------------------------------------------------------------
def test_order_fields_from_json_or_a_file(tmp_path: Path) -> None:
    given = {"total": "amount", "customer_id": "customerId"}
    s = load({"EVENTSTORE_ORDER_FIELDS": json.dumps(given)})
    assert s.order_paths["total"] == "amount" and s.order_paths["status"] == "status"
    path = tmp_path / "fields.json"
    path.write_text(json.dumps(given))
    assert load({"EVENTSTORE_ORDER_FIELDS": f"@{path}"}).order_paths == s.order_paths
    s = load({"EVENTSTORE_PAID_STATUSES": "settled, sent", "EVENTSTORE_ORDER_STREAM": "purchases"})
    assert (s.paid_statuses, s.order_stream) == (("settled", "sent"), "purchases")


def test_a_path_step_of_digits_indexes_an_array_as_mongodb_dot_notation_does() -> None:
    schema = OrderSchema.from_settings(
        Settings(order_fields=(("total", "payments.1.amount"), ("number", "refs.0")))
    )
    summary = by_name(schema)["order_summary"]
    doc = {"status": "paid", "payments": [{"amount": "1.50"}, {"amount": "7.25"}], "refs": ["R-9"]}
    row = run(summary, [Change(event=ev(1, "o1", 1, T0), before=None, after=doc)])["str:o1"]
    assert (row["total"], row["number"], row["problems"]) == (Decimal128("7.25"), "R-9", [])
    # past the array's end, or a document where an array is named: missing, and recorded
    short = {"status": "paid", "payments": [{"amount": "1.50"}], "refs": {"0": "R-1"}}
    row = run(summary, [Change(event=ev(1, "o2", 1, T0), before=None, after=short)])["str:o2"]
    assert (row["total"], row["number"]) == (Decimal128("0"), "R-1")
    assert row["problems"] == [{"seq": 1, "field": "total", "value": None, "reason": "missing"}]
    # a step with a leading zero names a field, never an index (as in MongoDB)
    for path, number in (
        ("refs.01", None),
        ("refs.00", None),
        ("refs.10", None),
        ("refs.1", "R-1"),
    ):
        schema = OrderSchema.from_settings(Settings(order_fields=(("number", path),)))
        doc = {"status": "new", "refs": ["R-0", "R-1"]}
        change = Change(event=ev(1, "o3", 1, T0), before=None, after=doc)
        assert run(by_name(schema)["order_summary"], [change])["str:o3"]["number"] == number, path


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("ORDER_FIELDS", '{"amount": "total"}', 'has an unknown key "amount"'),
        ("ORDER_FIELDS", '{"total": "a..b"}', 'total: "a..b" is not a document path'),
        ("ORDER_FIELDS", '{"total": "$amount"}', 'total: "$amount" is not a document path'),
        ("ORDER_FIELDS", '{"total": ""}', 'total: "" is not a document path'),
        ("ORDER_FIELDS", '{"total": 5}', "total: 5 is not a document path"),
        ("ORDER_FIELDS", "[1, 2]", "must be a JSON object of input name -> document path"),
        ("ORDER_FIELDS", "total=amount", "is not a JSON object"),
        ("ORDER_FIELDS", "[" * 3000 + "]" * 3000, "is not a JSON object: JSON nested too deeply"),
        ("ORDER_FIELDS", "@/no/such/file.json", "cannot read '/no/such/file.json'"),
        (
            "ORDER_FIELDS",
            '{"total": "amount", "total": "sum"}',
            "is not a JSON object: the key 'total' appears twice in one object",
        ),
        ("PAID_STATUSES", " , ", "needs at least one status"),
        ("ORDER_STREAM", "a$b", "cannot hold '$' in a collection name, got 'a$b'"),
        # as COLLECTIONS: MongoDB's own collections are no stream (it was only a warning)
        (
            "ORDER_STREAM",
            "system.x",
            "cannot name a collection beginning with system. (MongoDB's own), got 'system.x'",
        ),
        ("PROJECTIONS", "no_colon", "takes module:attribute,...; got 'no_colon'"),
    ],
)
def test_a_bad_order_setting_is_one_clear_error_naming_it(
    name: str, value: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SettingsError, match=re.escape(f"EVENTSTORE_{name} {problem}")):
        load({f"EVENTSTORE_{name}": value})
    flag = "--" + name.lower().replace("_", "-")
    argv = ["projections", "status", "--uri", "memory://", flag, value]
    assert main(argv, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert f"{flag} {problem}" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
