"""The order read models: pure `apply(rows, change) -> writes` (no I/O).

A `Change` is an event with the entity's state just before and just after it
(an `updated` event carries only the changed fields; counting by status needs
the old status too). Every row remembers the last `seq` applied to it, so
applying a change twice changes nothing.

Money is Decimal128 in and out, added as Decimal with 34 digits; never a float.
Real shops' orders are untidy: a missing or malformed field never fails a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Context, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

import msgspec
from bson import Decimal128, ObjectId

from eventstore.codec import as_utc
from eventstore.keys import typed_key
from eventstore.model import Event

# Statuses in which an order's total counts as revenue (paid and what follows payment).
PAID_STATUSES: Final = frozenset({"paid", "shipped", "delivered"})
_MONEY = Context(prec=34)
_ZERO = Decimal(0)
# An absent document, read as one without fields (never edited).
_NOTHING: Final[Mapping[str, Any]] = MappingProxyType({})


class Change(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event and the entity's state just before and just after it.

    Both states are shared with the runner's cache and with each other (the fold
    is copy-on-write): read them, never edit them. (`gc=False`: a change is never
    part of a reference cycle, so the garbage collector need not track one per event.)
    """

    event: Event
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Write(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Upsert `row` under `key` (None deletes the row). Never part of a reference cycle."""

    key: str
    row: dict[str, Any] | None


Rows = Mapping[str, dict[str, Any]]


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    """A read model: its name, its collection, which rows a change touches, and apply."""

    name: str
    collection: str
    keys: Callable[[Change], list[str]]
    apply: Callable[[Rows, Change], list[Write]]
    # True when each row is one entity's, keyed by its typed key: an erasure deletes it.
    per_entity: bool = False


# -- money: Decimal128 <-> Decimal -----------------------------------------------------------
# Decimal128.to_decimal and Decimal128(Decimal) are slow (pure Python, bit by bit), and the
# same Decimal128 objects come back event after event: the fold shares a document's total
# from version to version, and a row's sum is the object this module made. Conversions are
# remembered by object (the entry keeps its object alive, so an id is never reused
# meanwhile); a bounded cache, cleared whole when full.
_DECIMALS: dict[int, tuple[Decimal128, Decimal]] = {}
_MAX_DECIMALS: Final = 32_768
_BIAS: Final = 6176  # the Decimal128 exponent bias
_MAX_EXPONENT: Final = 6111  # beyond it, a 34-digit Decimal128 needs clamping: left to bson
_LOW_BITS: Final = (1 << 64) - 1


def _remember(value: Decimal128, decimal: Decimal) -> None:
    if len(_DECIMALS) >= _MAX_DECIMALS:
        _DECIMALS.clear()
    _DECIMALS[id(value)] = (value, decimal)


def _to_decimal(value: Decimal128) -> Decimal:
    """`value.to_decimal()`, converted once per object."""
    known = _DECIMALS.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    decimal = value.to_decimal()
    _remember(value, decimal)
    return decimal


# -- reading untidy documents ---------------------------------------------------------------
def money(value: Any) -> Decimal:
    """A total as Decimal (Decimal128, int or numeric string); anything else counts as 0."""
    if isinstance(value, Decimal128):
        return _to_decimal(value)
    if isinstance(value, bool):
        return _ZERO
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return _ZERO
    return _ZERO


def dec128(value: Decimal) -> Decimal128:
    """Decimal -> Decimal128 (34 significant digits), bit for bit what `Decimal128()` makes."""
    rounded = _MONEY.create_decimal(value)
    if rounded.is_finite():
        sign, _, exponent = rounded.as_tuple()
        assert isinstance(exponent, int)  # finite
        if -_BIAS <= exponent <= _MAX_EXPONENT:
            # BID: sign, biased exponent, then the coefficient (< 10**34 < 2**113) in 113 bits
            coefficient = abs(int(_MONEY.scaleb(rounded, -exponent)))
            high = (sign << 63) | ((exponent + _BIAS) << 49) | (coefficient >> 64)
            # (high, low): the form bson's own Decimal128.from_bid builds with
            out = Decimal128((high, coefficient & _LOW_BITS))  # type: ignore[arg-type]
            _remember(out, rounded)
            return out
    return Decimal128(rounded)


def _as_money(value: Any) -> Decimal128:
    """A stored total as Decimal128: kept as is when it already is one (no round trip)."""
    return value if isinstance(value, Decimal128) else dec128(money(value))


def _text(doc: Mapping[str, Any] | None, field: str) -> str | None:
    value = doc.get(field) if doc else None
    return value if isinstance(value, str) else None


def _customer(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    value = doc.get("customer") if doc else None
    return value if isinstance(value, dict) else None


def _customer_id(doc: Mapping[str, Any] | None) -> str | None:
    customer = _customer(doc)
    cid = customer.get("id") if customer else None
    return str(cid) if cid is not None and not isinstance(cid, (dict, list)) else None


def _paid(doc: Mapping[str, Any] | None) -> bool:
    return _text(doc, "status") in PAID_STATUSES


def _fresh(rows: Rows, key: str, seq: int) -> bool:
    """True unless the row already has this change (idempotency)."""
    row = rows.get(key)
    return row is None or int(row.get("seq", 0)) < seq


_DAYS: dict[date, str] = {}


def _day(when: datetime) -> str:
    """The day of a time (a naive one is UTC), `YYYY-MM-DD`; remembered: events share few days."""
    on = as_utc(when).date()
    day = _DAYS.get(on)
    if day is None:
        day = on.strftime("%Y-%m-%d")
        if len(_DAYS) >= 4096:
            _DAYS.clear()
        _DAYS[on] = day
    return day


# -- order_summary ----------------------------------------------------------------------------
def summary_key(e: Event) -> str:
    """An order's row key: its typed key (`oid:<hex>`, `str:ORD-1`, `int:42`), unique per `_id`.

    The bare entity key is not: the string "42" and the integer 42 share it.
    """
    cls = e.entity_id.__class__
    if cls is ObjectId:
        return "oid:" + e.entity_key
    if cls is str:
        return "str:" + e.entity_key
    return typed_key(e.entity_id)


def _summary_keys(change: Change) -> list[str]:
    return [summary_key(change.event)]


def _summary_apply(rows: Rows, change: Change) -> list[Write]:
    e = change.event
    key = summary_key(e)
    old = rows.get(key)
    if old is not None and int(old.get("seq", 0)) >= e.seq:
        return []  # already applied
    after = change.after
    doc = after if after is not None else (change.before or _NOTHING)
    get = doc.get
    number, customer, status = get("number"), get("customer"), get("status")
    items, total, currency = get("items"), get("total"), get("currency")
    created = old.get("created_at") if old is not None else None
    row: dict[str, Any] = {
        "entity_key": e.entity_key,
        "number": number if isinstance(number, str) else None,
        "customer": customer if isinstance(customer, dict) else None,
        "status": status if isinstance(status, str) else None,
        "items": items if isinstance(items, list) else [],
        "total": total if isinstance(total, Decimal128) else dec128(money(total)),
        "currency": currency if isinstance(currency, str) else None,
        "created_at": created or _created_at(doc, e),
        "updated_at": e.occurred_at,
        "version": e.version,
        "deleted": after is None,
        "seq": e.seq,
    }
    return [Write(key=key, row=row)]


def _created_at(doc: Mapping[str, Any] | None, e: Event) -> datetime:
    value = doc.get("createdAt") if doc else None
    return as_utc(value) if isinstance(value, datetime) else e.occurred_at


# -- orders_by_status -------------------------------------------------------------------------
def _status_keys(change: Change) -> list[str]:
    keys = [_text(change.before, "status"), _text(change.after, "status")]
    return sorted({k for k in keys if k is not None})


def _status_apply(rows: Rows, change: Change) -> list[Write]:
    e = change.event
    old = _text(change.before, "status") if change.before is not None else None
    new = _text(change.after, "status") if change.after is not None else None
    if old == new:
        return []
    out = []
    for status, delta in ((old, -1), (new, +1)):
        if status is None or not _fresh(rows, status, e.seq):
            continue
        count = int((rows.get(status) or {}).get("count", 0)) + delta
        out.append(Write(key=status, row={"status": status, "count": count, "seq": e.seq}))
    return out


# -- revenue_by_day and customer_totals share the money rule -----------------------------------
def revenue_deltas(change: Change) -> list[tuple[str, Decimal, int]]:
    """(currency, amount, orders) to add on the change's day.

    An order adds its total when it becomes paid; leaving the paid statuses
    (cancellation) subtracts what it had added; a total or currency changed
    while paid adjusts; deleting a document changes no revenue.
    """
    global _last_deltas
    last = _last_deltas  # keys() then apply() ask for the same change's deltas in turn
    if last[0] is change:
        return list(last[1])
    out = _revenue_deltas(change)
    _last_deltas = (change, out)
    return list(out)


_last_deltas: tuple[Change | None, list[tuple[str, Decimal, int]]] = (None, [])


def _revenue_deltas(change: Change) -> list[tuple[str, Decimal, int]]:
    before, after = change.before, change.after
    if after is None:
        return []
    was, now = _paid(before), _paid(after)
    out: list[tuple[str, Decimal, int]] = []
    if was:
        out.append((_text(before, "currency") or "?", -money(before.get("total")), -1))  # type: ignore[union-attr]
    if now:
        out.append((_text(after, "currency") or "?", money(after.get("total")), +1))
    merged: dict[str, tuple[Decimal, int]] = {}
    for currency, amount, orders in out:
        a, o = merged.get(currency, (_ZERO, 0))
        merged[currency] = (a + amount, o + orders)
    return [(c, a, o) for c, (a, o) in merged.items() if a != 0 or o != 0]


def _revenue_keys(change: Change) -> list[str]:
    day = _day(change.event.occurred_at)
    return [f"{day}:{currency}" for currency, _, _ in revenue_deltas(change)]


def _revenue_apply(rows: Rows, change: Change) -> list[Write]:
    e = change.event
    day = _day(e.occurred_at)
    out = []
    for currency, amount, orders in revenue_deltas(change):
        key = f"{day}:{currency}"
        if not _fresh(rows, key, e.seq):
            continue
        row = rows.get(key) or {}
        out.append(
            Write(
                key=key,
                row={
                    "day": day,
                    "currency": currency,
                    "revenue": dec128(money(row.get("revenue")) + amount),
                    "orders": int(row.get("orders", 0)) + orders,
                    "seq": e.seq,
                },
            )
        )
    return out


def _customer_keys(change: Change) -> list[str]:
    ids = {_customer_id(change.before), _customer_id(change.after)}
    return sorted(i for i in ids if i is not None)


def _customer_apply(rows: Rows, change: Change) -> list[Write]:
    """Orders placed and lifetime spend (paid net of cancellations) per customer id."""
    e = change.event
    before_id, after_id = _customer_id(change.before), _customer_id(change.after)
    touched: dict[str, dict[str, Any]] = {}

    def row_of(cid: str) -> dict[str, Any]:
        if cid not in touched:
            old = rows.get(cid) or {}
            touched[cid] = {
                "customer": cid,
                "name": old.get("name"),
                "orders": int(old.get("orders", 0)),
                "lifetime_spend": money(old.get("lifetime_spend")),
                "last_order_at": old.get("last_order_at"),
            }
        return touched[cid]

    if change.after is not None and after_id is not None:
        row = row_of(after_id)
        name = (_customer(change.after) or {}).get("name")
        if isinstance(name, str):
            row["name"] = name
        if change.before is None or before_id != after_id:  # a new order for this customer
            row["orders"] += 1
            placed = _created_at(change.after, e)
            if row["last_order_at"] is None or placed > as_utc(row["last_order_at"]):
                row["last_order_at"] = placed
        if before_id is not None and before_id != after_id:
            row_of(before_id)["orders"] -= 1
    was, now = _paid(change.before), _paid(change.after)
    if change.after is not None:
        if was and before_id is not None:
            row_of(before_id)["lifetime_spend"] -= money(change.before.get("total"))  # type: ignore[union-attr]
        if now and after_id is not None:
            row_of(after_id)["lifetime_spend"] += money(change.after.get("total"))
    out = []
    for cid, row in touched.items():
        if _fresh(rows, cid, e.seq):
            out.append(
                Write(
                    key=cid,
                    row={**row, "lifetime_spend": dec128(row["lifetime_spend"]), "seq": e.seq},
                )
            )
    return out


ORDER_SUMMARY: Final = Projection(
    name="order_summary",
    collection="rm_order_summary",
    keys=_summary_keys,
    apply=_summary_apply,
    per_entity=True,
)
ORDERS_BY_STATUS: Final = Projection(
    name="orders_by_status",
    collection="rm_orders_by_status",
    keys=_status_keys,
    apply=_status_apply,
)
REVENUE_BY_DAY: Final = Projection(
    name="revenue_by_day", collection="rm_revenue_by_day", keys=_revenue_keys, apply=_revenue_apply
)
CUSTOMER_TOTALS: Final = Projection(
    name="customer_totals",
    collection="rm_customer_totals",
    keys=_customer_keys,
    apply=_customer_apply,
)
ORDER_PROJECTIONS: Final = (ORDER_SUMMARY, ORDERS_BY_STATUS, REVENUE_BY_DAY, CUSTOMER_TOTALS)
