"""The order read models' `merge`: partitions folded apart and merged equal one fold of all.

The models are built by the test (see test_order_rules.py: `make mutate` never runs a
mutant in models built at import).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import Decimal128

from projections.orders import Change, order_projections
from projections.partitioned import Rows, merge_partitions, partition_of
from tests.unit.test_order_projections import simulated
from tests.unit.test_order_rules import Orders, apply_all, one_change_each

MERGED = ("orders_by_status", "revenue_by_day", "customer_totals")


def untidy() -> list[Change]:
    """One customer's orders, paid with bad totals (more than a row keeps), on two days,
    renamed as they come, placed out of seq order (some at a time that is no date); some
    cancelled, one moved to c2."""
    orders = Orders()
    placed = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(90):
        doc = {
            "status": "paid",
            "total": f"bad{n}" if n % 3 else str(n),
            "currency": "EUR" if n % 10 else "USD",
            "customer": {"id": "c1", "name": f"name{n}"},
            # some say when they were placed unreadably: recorded in the customer's row
            "createdAt": "soon" if n % 11 == 0 else placed + timedelta(hours=(n * 7) % 90),
        }
        orders.put(f"o{n}", doc, days=n // 45)
    for n in range(0, 90, 5):
        before = orders.docs[f"o{n}"]
        assert before is not None
        orders.put(f"o{n}", {**before, "status": "cancelled"}, days=2)
    moved = orders.docs["o7"]
    assert moved is not None
    orders.put("o7", {**moved, "customer": {"id": "c2"}}, days=2)
    return orders.changes


def workloads() -> dict[str, list[Change]]:
    return {"simulated": simulated()[0], "untidy": untidy()}


@pytest.mark.parametrize("parts", [2, 3])
def test_partitions_merged_equal_one_fold(parts: int) -> None:
    for workload, changes in workloads().items():
        for projection in order_projections():
            if projection.name not in MERGED:
                continue
            whole = apply_all(projection, changes)
            shares: list[Rows] = [
                dict(
                    apply_all(projection, [c for c in changes if partition_of(c.event, parts) == n])
                )
                for n in range(parts)
            ]
            assert all(shares) and sum(map(len, shares)) > len(whole)  # some keys in several
            for order in (shares, shares[::-1]):
                merged = merge_partitions(projection, order)
                assert merged == whole, (workload, projection.name, parts)


def test_the_untidy_workload_fills_what_merge_combines() -> None:
    """The workload above reaches every field merge combines (or the test proves little)."""
    changes = untidy()
    models = {p.name: p for p in order_projections()}
    revenue = apply_all(models["revenue_by_day"], changes)
    assert any(r["problems_dropped"] > 0 for r in revenue.values())
    c1 = apply_all(models["customer_totals"], changes)["c1"]
    assert (
        c1["problems_dropped"] > 0 and c1["name"] == "name85"
    )  # the last change naming c1: a cancellation
    assert set(c1["lifetime_spend"]) == {"EUR", "USD"}


# figures of each model's rows that an empty partial row leaves as they are
FIGURES = {
    "orders_by_status": ("status", "count", "seq"),
    "revenue_by_day": ("revenue", "orders", "problems", "problems_dropped", "seq"),
    "customer_totals": (
        "name",
        "name_seq",
        "orders",
        "lifetime_spend",
        "last_order_at",
        "problems",
        "problems_dropped",
        "seq",
    ),
}


def test_a_partial_row_missing_its_fields_adds_nothing() -> None:
    """A missing count, sum, seq or problem list counts as zero (or none) on either side
    (one_change_each: a customer named by seq 1, the least a name_seq can be)."""
    for changes, projection in itertools.product(
        (untidy(), one_change_each()), order_projections()
    ):
        if projection.name not in MERGED:
            continue
        assert projection.merge is not None
        for key, row in apply_all(projection, changes).items():
            fields = FIGURES[projection.name]
            want = {f: row[f] for f in fields}
            for got in (projection.merge(key, row, {}), projection.merge(key, {}, row)):
                assert {f: got[f] for f in fields} == want, (projection.name, key)


def summary_row(seq: int, status: str) -> dict[str, Any]:
    return {"status": status, "total": Decimal128("1"), "seq": seq}


@pytest.mark.parametrize(
    ("a", "b", "winner"),
    [
        (summary_row(2, "paid"), summary_row(1, "pending"), "a"),
        (summary_row(1, "pending"), summary_row(2, "paid"), "b"),
        (summary_row(1, "pending"), summary_row(1, "paid"), "a"),  # the same seq: the first
        (summary_row(1, "paid"), {}, "a"),  # no seq: older than any change
        ({}, summary_row(1, "paid"), "b"),
    ],
)
def test_order_summary_merge_keeps_the_newer_row(
    a: dict[str, Any], b: dict[str, Any], winner: str
) -> None:
    summary = {p.name: p for p in order_projections()}["order_summary"]
    assert summary.merge is not None
    assert summary.merge("str:o1", a, b) is (a if winner == "a" else b)


def test_customer_merge_takes_the_later_order_time_naive_or_aware() -> None:
    """Rows read back from MongoDB hold naive UTC times, rows folded here aware ones."""
    customers = {p.name: p for p in order_projections()}["customer_totals"]
    assert customers.merge is not None
    early = datetime(2026, 1, 1, 9, tzinfo=UTC)
    late_naive = datetime(2026, 1, 1, 10)
    for a, b in ((early, late_naive), (late_naive, early)):
        got = customers.merge("c1", {"last_order_at": a, "seq": 1}, {"last_order_at": b, "seq": 2})
        assert got["last_order_at"] is late_naive
    only = customers.merge("c1", {"last_order_at": None, "seq": 1}, {"last_order_at": early})
    assert only["last_order_at"] is early
    assert customers.merge("c1", {"last_order_at": None}, {"seq": 2})["last_order_at"] is None
