"""The order read models' rules, one small history each: what a row must hold after it.

Each model is built by the test (`order_projections()`), never taken from the module's
ORDER_PROJECTIONS: `make mutate` forks each mutant's run from a process that imported
projections.orders already, so models built at import never run a mutant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128

from eventstore.model import Event
from eventstore.settings import Settings
from projections.orders import (
    Change,
    OrderReader,
    OrderSchema,
    Projection,
    order_projections,
    revenue_deltas,
)
from projections.status import DEFAULT_CONFIGS
from tests.unit.test_order_projections import run

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
D0, D1 = "2026-05-04", "2026-05-05"


def models(schema: OrderSchema | None = None) -> dict[str, Projection]:
    return {p.name: p for p in order_projections(schema or OrderSchema())}


class Orders:
    """A history of order documents: each `put` is the next event (None deletes the order)."""

    def __init__(self, stream: str = "orders") -> None:
        self.stream = stream
        self.docs: dict[str, dict[str, Any] | None] = {}
        self.versions: dict[str, int] = {}
        self.changes: list[Change] = []

    def put(self, oid: str, doc: dict[str, Any] | None, days: int = 0) -> Change:
        seq = len(self.changes) + 1
        version = self.versions.get(oid, 0) + 1
        self.versions[oid] = version
        at = T0 + timedelta(days=days, minutes=seq)
        event = Event(
            id=f"e{seq}",
            seq=seq,
            stream=self.stream,
            entity_id=oid,
            entity_key=oid,
            version=version,
            type="created" if version == 1 else ("deleted" if doc is None else "replaced"),
            occurred_at=at,
            cluster_time=None,
            recorded_at=at,
        )
        change = Change(event=event, before=self.docs.get(oid), after=doc)
        self.docs[oid] = doc
        self.changes.append(change)
        return change


def apply_all(projection: Projection, changes: list[Change]) -> dict[str, dict[str, Any]]:
    """Apply changes to an in-memory table, as the runner does."""
    return run(projection, changes)


def paid(total: Any, currency: str | None = "EUR", status: str = "paid") -> dict[str, Any]:
    doc = {"status": status, "total": total, "customer": {"id": "c1", "name": "Ann"}}
    if currency is not None:
        doc["currency"] = currency
    return doc


NAN_A, NAN_B = float("nan"), float("nan")  # equal values, two objects (a fold shares one)

# (order, days after D0, document): the history; then each revenue_by_day row as
# (revenue, orders, seqs of the problems recorded on it).
REVENUE_CASES: dict[str, tuple[list[tuple[str, int, dict[str, Any]]], dict[str, Any]]] = {
    "a cancellation is booked on the currency the order was paid in, '?' when it had none": (
        [("o1", 0, paid("10", None)), ("o1", 1, paid("10", None, "cancelled"))],
        {f"{D0}:?": ("10", 1, []), f"{D1}:?": ("-10", -1, [])},
    ),
    "a paid order moving on (paid -> shipped) books nothing on its day": (
        [("o1", 0, paid("5")), ("o1", 1, paid("5", status="shipped"))],
        {f"{D0}:EUR": ("5", 1, [])},
    ),
    "a paid total changed by exactly 1 is booked": (
        [("o1", 0, paid("5")), ("o1", 1, paid("6"))],
        {f"{D0}:EUR": ("5", 1, []), f"{D1}:EUR": ("1", 0, [])},
    ),
    "a paid order of total 0 is an order": (
        [("o1", 0, paid("0"))],
        {f"{D0}:EUR": ("0", 1, [])},
    ),
    "a bad total is recorded once, not again on each later change while paid": (
        [("o1", 0, paid("abc")), ("o1", 0, paid("abc", status="shipped")), ("o1", 1, paid("abc"))],
        {f"{D0}:EUR": ("0", 1, [1])},
    ),
    "a bad total kept from before payment is recorded when the order is paid": (
        [("o1", 0, paid("abc", status="pending")), ("o1", 0, paid("abc"))],
        {f"{D0}:EUR": ("0", 1, [2])},
    ),
    "a new bad total is recorded even when it changes no figure (0 -> abc)": (
        [("o1", 0, paid("0")), ("o1", 0, paid("abc"))],
        {f"{D0}:EUR": ("0", 1, [2])},
    ),
    "one bad total replaced by another is a new problem": (
        [("o1", 0, paid("abc")), ("o1", 0, paid("xyz"))],
        {f"{D0}:EUR": ("0", 1, [1, 2])},
    ),
    "the same NaN in another object is not a new problem": (
        [("o1", 0, paid(NAN_A)), ("o1", 0, paid(NAN_B, status="shipped"))],
        {f"{D0}:EUR": ("0", 1, [1])},
    ),
    "the same Decimal128 NaN in another object is not a new problem": (
        [("o1", 0, paid(Decimal128("NaN"))), ("o1", 0, paid(Decimal128("NaN"), status="shipped"))],
        {f"{D0}:EUR": ("0", 1, [1])},
    ),
    "NaN as text after NaN as a double is a new problem (another stored value)": (
        [("o1", 0, paid(NAN_A)), ("o1", 0, paid("NaN"))],
        {f"{D0}:EUR": ("0", 1, [1, 2])},
    ),
    "a bad total moved to another currency is recorded on the new currency's row": (
        [("o1", 0, paid("abc")), ("o1", 0, paid("abc", "USD"))],
        {f"{D0}:EUR": ("0", 0, [1]), f"{D0}:USD": ("0", 1, [2])},
    ),
}


@pytest.mark.parametrize("case", list(REVENUE_CASES))
def test_revenue_by_day_books_and_records_by_its_rules(case: str) -> None:
    history, expected = REVENUE_CASES[case]
    orders = Orders()
    for oid, days, doc in history:
        orders.put(oid, doc, days)
    table = apply_all(models()["revenue_by_day"], orders.changes)
    got = {
        key: (str(row["revenue"]), row["orders"], [p["seq"] for p in row["problems"]])
        for key, row in table.items()
    }
    assert got == expected
    for key, row in table.items():
        assert (row["day"], row["currency"], row["problems_dropped"]) == (*key.split(":"), 0)


def test_revenue_deltas_sum_to_the_default_revenue_rows() -> None:
    for case, (history, expected) in REVENUE_CASES.items():
        orders = Orders()
        booked: dict[str, tuple[Decimal, int]] = {}
        for oid, days, doc in history:
            change = orders.put(oid, doc, days)
            for currency, amount, count in revenue_deltas(change):
                key = change.event.occurred_at.strftime("%Y-%m-%d") + ":" + currency
                total, n = booked.get(key, (Decimal(0), 0))
                booked[key] = (total + amount, n + count)
        assert {k: (str(a), n) for k, (a, n) in booked.items()} == {
            k: (revenue, n) for k, (revenue, n, _) in expected.items()
        }, case
    other = Orders(stream="customers")
    assert revenue_deltas(other.put("c1", paid("5"))) == []


def test_order_summary_keeps_the_first_time_and_reads_only_well_typed_inputs() -> None:
    orders = Orders()
    orders.put("o1", {"status": "pending", "number": "N-1", "currency": "EUR", "items": [1]})
    odd = {"status": {"code": "paid"}, "number": 5, "currency": 3, "items": "x", "total": 2}
    orders.put("o1", odd, days=1)
    summary = models()["order_summary"]
    first = apply_all(summary, orders.changes[:1])["str:o1"]
    row = apply_all(summary, orders.changes)["str:o1"]
    # no created_at field: the time of the order's first event, kept by later versions
    assert first["created_at"] == row["created_at"] == orders.changes[0].event.occurred_at
    assert row["updated_at"] == orders.changes[1].event.occurred_at
    # an integer order number is shown in decimal (shops number orders 1001, 1002, ...)
    assert (row["status"], row["number"], row["currency"], row["items"]) == (None, "5", None, [])
    assert (row["total"], row["version"], row["seq"], row["deleted"]) == (
        Decimal128("2"),
        2,
        2,
        False,
    )
    # a created_at of the document's own wins over the event's time
    placed = datetime(2025, 1, 2, 3, 4, 5)  # naive: UTC
    orders.put("o2", {"status": "paid", "createdAt": placed})
    row = apply_all(summary, orders.changes)["str:o2"]
    assert row["created_at"] == placed.replace(tzinfo=UTC)


def one_change_each() -> list[Change]:
    """A history touching every model: a paid order with a bad total and a customer."""
    orders = Orders()
    orders.put("o1", paid("abc"))
    return orders.changes


def test_a_change_already_in_a_row_writes_nothing() -> None:
    changes = one_change_each()
    for projection in order_projections():
        table = apply_all(projection, changes)
        assert table, projection.name
        keys = projection.keys(changes[-1])
        assert projection.apply({k: table[k] for k in keys}, changes[-1]) == [], projection.name


def test_a_row_without_a_seq_or_problem_counts_has_seen_no_change() -> None:
    """Rows written before a field existed (or by hand) lack it: a missing `seq` is older
    than every change, missing problem fields are none, never an error."""
    changes = one_change_each()
    bookkeeping = ("seq", "problems", "problems_dropped")
    for projection in order_projections():
        table = apply_all(projection, changes)
        bare = {
            k: {f: v for f, v in row.items() if f not in bookkeeping} for k, row in table.items()
        }
        writes = projection.apply(bare, changes[-1])
        assert sorted(w.key for w in writes) == sorted(table), projection.name
        for w in writes:
            assert w.row is not None and w.row["seq"] == 1, projection.name
            if projection.name != "orders_by_status":  # the one model without problems
                assert w.row["problems_dropped"] == 0, projection.name
                assert [p["seq"] for p in w.row["problems"]] == [1], projection.name


def half_applied_cases() -> dict[str, tuple[str, list[Change]]]:
    """Per model, a history whose last change writes two rows."""
    status = Orders()
    status.put("o1", paid("5", status="pending"))
    status.put("o1", paid("5"))
    currency = Orders()
    currency.put("o1", paid("5"))
    currency.put("o1", paid("abc", "USD"))
    customer = Orders()
    customer.put("o1", paid("5"))
    customer.put("o1", {**paid("7"), "customer": {"id": "c2", "name": "Bo"}})
    return {
        "status": ("orders_by_status", status.changes),
        "currency": ("revenue_by_day", currency.changes),
        "customer": ("customer_totals", customer.changes),
    }


@pytest.mark.parametrize("case", ["status", "currency", "customer"])
def test_a_change_half_applied_completes_its_other_rows(case: str) -> None:
    """A crash between the rows of one change leaves some at its seq: redelivered, the
    change writes exactly the others, the same rows as in one go."""
    name, changes = half_applied_cases()[case]
    projection = models()[name]
    before = apply_all(projection, changes[:-1])
    last = changes[-1]
    keys = projection.keys(last)
    whole = {
        w.key: w.row for w in projection.apply({k: before[k] for k in keys if k in before}, last)
    }
    assert len(whole) == 2
    for done in whole:
        rows = {k: before[k] for k in keys if k in before}
        rows[done] = whole[done]  # type: ignore[assignment]
        rest = projection.apply(rows, last)
        assert {w.key: w.row for w in rest} == {k: r for k, r in whole.items() if k != done}


def test_by_status_counts_each_move_once() -> None:
    orders = Orders()
    orders.put("o1", paid("5", status="pending"))
    orders.put("o1", paid("5"))
    orders.put("o1", {"total": 5})  # a status that is gone is no status
    orders.put("o1", paid("5", status="shipped"))
    orders.put("o1", None)
    counts = [
        {
            k: r["count"]
            for k, r in apply_all(models()["orders_by_status"], orders.changes[:n]).items()
        }
        for n in range(1, 6)
    ]
    assert counts == [
        {"pending": 1},
        {"pending": 0, "paid": 1},
        {"pending": 0, "paid": 0},
        {"pending": 0, "paid": 0, "shipped": 1},
        {"pending": 0, "paid": 0, "shipped": 0},
    ]


# -- the schema ---------------------------------------------------------------------------------
def test_a_schema_from_settings_takes_every_setting() -> None:
    settings = Settings(
        order_fields=(("total", "amount"), ("customer_id", "buyer.ref")),
        paid_statuses=("settled",),
        order_stream="purchases",
    )
    schema = OrderSchema.from_settings(settings)
    assert schema.stream == "purchases"
    assert schema.paths == settings.order_paths
    assert (schema.paths["total"], schema.paths["customer_id"]) == ("amount", "buyer.ref")
    assert schema.paid_statuses == ("settled",)


NESTED = OrderSchema(
    stream="orders",
    paths={
        "status": "state.code",
        "total": "money.amount",
        "currency": "money.currency",
        "customer_id": "buyer.ref.id",
        "customer_name": "buyer.ref.name",
        "number": "ref",
        "created_at": "dates.placed",
        "items": "lines",
    },
    paid_statuses=("settled",),
)


def test_order_models_read_nested_paths_and_never_fail_on_a_missing_or_odd_step() -> None:
    doc = {
        "state": {"code": "settled"},
        "money": {"amount": "12.50", "currency": "USD"},
        "buyer": {"ref": {"id": 7, "name": "Cy"}, "note": "x"},
        "ref": "R-1",
        "lines": [{"sku": "a"}],
    }
    odd = {"state": "settled", "money": ["12.50"], "buyer": {"ref": None}, "ref": "R-2"}
    orders = Orders()
    orders.put("o1", doc)
    orders.put("o2", odd)
    m = models(NESTED)
    summary = apply_all(m["order_summary"], orders.changes)
    one, two = summary["str:o1"], summary["str:o2"]
    assert (one["status"], one["total"], one["currency"]) == ("settled", Decimal128("12.50"), "USD")
    assert one["customer"] == {"id": 7, "name": "Cy"}  # the document holding the id
    assert (one["number"], one["items"]) == ("R-1", [{"sku": "a"}])
    assert (two["status"], two["total"], two["currency"], two["customer"]) == (
        None,
        Decimal128("0"),
        None,
        None,
    )
    assert two["problems"] == []  # not paid (no readable status): a missing total is no problem
    revenue = apply_all(m["revenue_by_day"], orders.changes)
    assert {k: (str(r["revenue"]), r["orders"]) for k, r in revenue.items()} == {
        f"{D0}:USD": ("12.50", 1)
    }
    customers = apply_all(m["customer_totals"], orders.changes)
    assert {k: (r["name"], r["orders"]) for k, r in customers.items()} == {
        "7": ("Cy", 1),
        "": (None, 1),
    }


@pytest.mark.parametrize(
    ("customer_id", "doc", "expected"),
    [
        ("customerId", {"customerId": "c1", "name": "Ann"}, {"id": "c1", "name": None}),
        ("customerId", {"customerId": "c1", "buyer": {"name": "Ann"}}, {"id": "c1", "name": "Ann"}),
        ("customerId", {"buyer": {"name": "Ann"}}, {"id": None, "name": "Ann"}),
        ("customerId", {"customerId": 5}, {"id": "5", "name": None}),
        ("customerId", {"customerId": ""}, None),
        ("customerId", {"customerId": {"a": 1}}, None),
        ("customerId", {}, None),
        ("who.id", {"who": {"id": "c1", "x": 1}}, {"id": "c1", "x": 1}),
        ("who.id", {"who": "c1"}, None),
        ("a.b.id", {"a": {"b": {"id": "c1"}, "c": 2}}, {"id": "c1"}),
    ],
)
def test_order_summary_names_the_customer_as_the_schema_places_it(
    customer_id: str, doc: dict[str, Any], expected: Any
) -> None:
    schema = OrderSchema(
        paths={**OrderSchema().paths, "customer_id": customer_id, "customer_name": "buyer.name"}
    )
    orders = Orders()
    orders.put("o1", doc)
    row = apply_all(models(schema)["order_summary"], orders.changes)["str:o1"]
    assert row["customer"] == expected
    assert OrderReader(schema).customer(doc) == expected


def test_days_are_never_a_cached_guess() -> None:
    """More distinct days than the day cache holds: every one is computed, none is lost."""
    start = datetime(1990, 1, 1, 12, tzinfo=UTC)
    orders = Orders()
    revenue = models()["revenue_by_day"]
    for n in range(5000):
        at = start + timedelta(days=n)
        change = orders.put(f"o{n}", paid("1"))
        change = Change(
            event=Event(**{**_fields(change.event), "occurred_at": at}),
            before=None,
            after=change.after,
        )
        assert revenue.keys(change) == [at.strftime("%Y-%m-%d") + ":EUR"]


def _fields(e: Event) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__struct_fields__}


def test_the_fingerprint_is_the_stored_text_whatever_the_order_of_paths_and_statuses() -> None:
    """Rows record the fingerprint they were built with: any other text for the same schema
    would make every deployment's status say `rebuild needed`."""
    before_rules = (
        '{"stream":"orders","paths":{"created_at":"createdAt","currency":"currency",'
        '"customer_id":"customer.id","customer_name":"customer.name","items":"items",'
        '"number":"number","status":"status","total":"total"},'
        '"paid":["delivered","paid","shipped"]'
    )
    stored = before_rules + ',"rules":8}'
    # rows built by rules 2 (before a numeric customer id counted by its value), 3 (before
    # a numeric status by its value, and an unreadable one recorded) and 4 (before an
    # unreadable created_at was recorded), 5, 6 (before a problem's top-level date,
    # ObjectId or binary value showed as Extended JSON) and 7 (before an aggregate row's
    # problems named their orders, which an erasure finds them by) need a rebuild
    for rules in (2, 3, 4, 5, 6, 7):
        assert OrderSchema().fingerprint(rules=rules) == before_rules + f',"rules":{rules}}}'
        assert OrderSchema().fingerprint(rules=rules) != stored
    default = OrderSchema()
    # what rows built before rules were counted recorded (and what rows recording nothing
    # are taken to have been built with): another text, so they say `rebuild needed`
    assert default.fingerprint(rules=1) == before_rules + "}"
    assert set(DEFAULT_CONFIGS.values()) == {before_rules + "}"}
    shuffled = OrderSchema(
        paths=dict(reversed(list(default.paths.items()))),
        paid_statuses=tuple(reversed(default.paid_statuses)),
    )
    assert default.fingerprint() == shuffled.fingerprint() == stored
    assert {p.config for p in order_projections(shuffled)} == {stored}
    for other in (
        OrderSchema(stream="purchases"),
        OrderSchema(paths={**default.paths, "total": "amount"}),
        OrderSchema(paid_statuses=("paid",)),
    ):
        assert other.fingerprint() != stored


def test_only_order_summary_rows_are_one_entitys() -> None:
    """`per_entity`: an erasure deletes the erased order's own row (an order's: of the
    order stream); the other models' rows are sums over many orders and stay."""
    assert {p.name: p.per_entity for p in order_projections()} == {
        "order_summary": "orders",
        "orders_by_status": None,
        "revenue_by_day": None,
        "customer_totals": None,
    }
    shop = order_projections(OrderSchema(stream="purchases"))
    assert shop[0].per_entity == "purchases"


def test_a_bad_total_kept_in_a_replaced_document_is_no_new_problem_in_any_model() -> None:
    """A replace carries a whole new document: the same bad total is then an equal value in
    a new object, and no model records it again (customer_totals once compared objects)."""
    orders = Orders()
    orders.put("o1", paid("abc"))
    orders.put("o1", paid("".join(["a", "bc"]), status="shipped"))  # equal, not the same object
    orders.put("o1", paid("xyz", status="shipped"))  # a new bad value: a new problem
    m = models()

    def found(upto: int) -> dict[str, list[int]]:
        return {
            name: [
                p["seq"]
                for row in apply_all(m[name], orders.changes[:upto]).values()
                for p in row["problems"]
            ]
            for name in ("order_summary", "revenue_by_day", "customer_totals")
        }

    assert found(2) == {"order_summary": [1], "revenue_by_day": [1], "customer_totals": [1]}
    # order_summary holds the current total's problem only; the others keep the history
    assert found(3) == {"order_summary": [3], "revenue_by_day": [1, 3], "customer_totals": [1, 3]}
