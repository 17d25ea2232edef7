"""The order read models: pure `apply(rows, change) -> writes` (no I/O).

A `Change` is an event with the entity's state just before and just after it
(an `updated` event carries only the changed fields; counting by status needs
the old status too). Every row remembers the last `seq` applied to it, so
applying a change twice changes nothing.

They read one stream (`ORDER_STREAM`, default `orders`) and each input from the
document path the shop's schema keeps it at (`ORDER_FIELDS`), as an `OrderSchema`
says; `order_projections(schema)` builds the four of them. Money follows
`projections.money`: never a float, and a value that is not money counts as 0
and is recorded in the row's `problems` (the newest 20 by seq, the rest counted
in `problems_dropped`). Real shops' orders are untidy: a missing or malformed
field never fails a row.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final
from uuid import UUID

import msgspec
from bson import Binary, Decimal128, ObjectId
from bson.binary import UUID_SUBTYPE

from eventstore.codec import as_utc
from eventstore.keys import entity_key, parse_typed, typed_key
from eventstore.model import Event
from eventstore.settings import DEFAULT_PAID_STATUSES, ORDER_FIELDS, Settings, shown_in_log
from projections.api import Change as Change  # re-exported: the runner's and tests' import
from projections.api import Projection as Projection
from projections.api import Rewrite
from projections.api import Rows as Rows
from projections.api import Write as Write
from projections.money import _MONEY as _MONEY  # re-exported for the tests
from projections.money import (
    MISSING,
    WRONG_TYPE,
    ZERO,
    add,
    money128,
    negated,
    problem,
    read_money,
    shown,
    with_problems,
)
from projections.money import dec128 as dec128
from projections.money import money as money

# Statuses in which an order's total counts as revenue by default (paid and what follows).
PAID_STATUSES: Final = frozenset(DEFAULT_PAID_STATUSES)
# An absent document, read as one without fields (never edited).
_NOTHING: Final[Mapping[str, Any]] = MappingProxyType({})
# customer_totals' row of the orders that have no customer id (never a real id: ids are
# non-empty); its `orders` show in the projection's status as orders_without_customer.
NO_CUSTOMER: Final = ""
# The field of an aggregate row's problem naming the order it came from (its typed key), the
# customer row's field naming the order its name came from (typed: `name_from` is the entity
# key the API shows), and the row field listing the orders whose data the row holds (typed
# keys): its problems' and its name's. An erasure finds the rows by `HELD_FROM`.
PROBLEM_ORDER: Final = "order"
NAME_KEY: Final = "name_key"
HELD_FROM: Final = "held_from"
Problem = dict[str, Any]


# How the order models compute rows from the log: bumped when the same log and schema give
# other rows, so that rows built before say `rebuild needed`. 2 (2026-12-06): created_at from
# ISO 8601 text, integer order numbers and statuses, array steps in paths, amounts of 10**6111 and more
# not money, sums in Decimal128's 34 digits. 3 (2026-12-06): a numeric customer id by its value
# (42.0 and Decimal128 42 are customer `42`), a NaN or infinite one no customer. 4 (2026-12-07):
# a numeric status or order number by its value (2.0 and Decimal128 2 are status `2`), and a
# status that is there but neither text nor a number is a problem (`wrong_type`), not silently
# an unpaid order; a customer's row names the order its name came from (`name_from`), so that
# erasing that order takes the name out of it. 5 (2026-12-07): a `created_at` that is there
# but cannot be read as a date is recorded (`not_a_date` for text, else `wrong_type`) where it
# gave the time of the order's first event instead: its order_summary row, and the customer
# row whose `last_order_at` it would have set; a numeric string is ASCII digits (with a sign,
# a point, an exponent): "1_000" and other scripts' digits are `not_a_number`, not money;
# an order's key is its `_id`'s value (`int:1` for 1.0 and Decimal128 1: eventstore.keys).
# 6 (2026-12-07): a double customer id, status or order number is its exact value (2**60 is
# the Int64's `1152921504606846976`, not its shortest form's `…847000`; the double nearest
# 0.1 is not Decimal128 0.1); a customer id that is neither text nor a number has its entity
# key's text (never Python's), a UUID its canonical text; an id in an array names the
# order_summary row's customer; a money string with an exponent beyond Python's Decimal is
# `not_finite`. 7 (2026-12-07): a problem's value that is neither text nor a number (a date,
# an ObjectId, binary, a UUID) shows as relaxed Extended JSON at the top of its field too, as
# it does inside a sub-document (`{"$date": …}`, not Python's `2026-01-01 00:00:00+00:00`).
# 8 (2026-12-08): a `revenue_by_day` or `customer_totals` problem names its order by typed
# key (`order`, which the API leaves out), a customer row the order its name came from too
# (`name_key`), and the row lists the orders whose data it holds (`held_from`), so that
# erasing an order takes its offending values and name out of those rows as it is followed
# (never those of another order whose entity key reads the same: `int:5` and `str:5`).
ORDER_RULES: Final = 8
# The reason of a `created_at` given as text that is not an ISO 8601 date ("yesterday").
NOT_A_DATE: Final = "not_a_date"


class OrderSchema(msgspec.Struct, frozen=True, kw_only=True):
    """Where the order read models find their inputs: stream, field paths, paid statuses."""

    stream: str = "orders"
    paths: dict[str, str] = msgspec.field(default_factory=lambda: dict(ORDER_FIELDS))
    paid_statuses: tuple[str, ...] = DEFAULT_PAID_STATUSES

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderSchema:
        """The schema `ORDER_STREAM`, `ORDER_FIELDS` and `PAID_STATUSES` describe.

        An `ORDER_STREAM` that is none of `COLLECTIONS` is a warning, not an error: another
        instance may capture it (or this one, later), but a misspelt one (`Orders`) leaves
        the order read models empty with nothing else to say why.
        """
        if settings.order_stream not in settings.collections:
            _warn_uncaptured(settings.order_stream, tuple(settings.collections))
        return cls(
            stream=settings.order_stream,
            paths=settings.order_paths,
            paid_statuses=settings.paid_statuses,
        )

    def fingerprint(self, rules: int | None = None) -> str:
        """What the rows depend on beyond the log, as text: rows built with another need a rebuild.

        With the rules the rows are computed by (`ORDER_RULES`; `rules=1`: the text rows
        built before rules were counted recorded, which named none).
        """
        rules = ORDER_RULES if rules is None else rules
        return json.dumps(
            {
                "stream": self.stream,
                "paths": dict(sorted(self.paths.items())),
                "paid": sorted(self.paid_statuses),
                **({"rules": rules} if rules > 1 else {}),
            },
            separators=(",", ":"),
        )


DEFAULT_SCHEMA: Final = OrderSchema()


@functools.cache  # once per process and value: the schema is built by every command that starts
def _warn_uncaptured(stream: str, collections: tuple[str, ...]) -> None:
    logging.getLogger(__name__).warning(
        "EVENTSTORE_ORDER_STREAM %s is none of the captured collections"
        " (EVENTSTORE_COLLECTIONS: %s): the order read models count no order until a"
        " stream %s is captured (stream names are case-sensitive)",
        json.dumps(stream),
        ",".join(shown_in_log(name) for name in collections),  # a name may hold an ESC, a newline
        json.dumps(stream),
    )


_DAYS: dict[date, str] = {}


def _placed(value: Any) -> datetime | None:
    """A date as stored, or ISO 8601 text as many shops store one, in UTC (naive: UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _number_text(value: Any) -> str | None:
    """A number as text by its exact value, as MongoDB compares numbers; None for anything else.

    Values MongoDB holds equal have one text, and no two others share one: 42, Int64 42,
    42.0 and Decimal128("42.0") are `42`; 42.5 and Decimal128("42.50") are `42.5`; the
    double 2**60 is `1152921504606846976`, as the Int64 is (its shortest form,
    1.152921504606847e18, is another value); the double nearest 0.1 is its exact binary
    value, not Decimal128("0.1")'s `0.1`. A boolean is not a number; a NaN or an infinity
    names nothing.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal128)):
        number = Decimal(value) if isinstance(value, float) else value.to_decimal()
        if not number.is_finite():
            return None
        text = format(number, "f")  # every digit, never rounded (no context applies)
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("0", "-0") else text
    return None


def _id_text(value: Any) -> str | None:
    """A customer id as text; None (no customer) for one that names nobody.

    A string is itself (the empty string names nobody), a number its value
    (`_number_text`), an ObjectId its 24 hex digits, a UUID (standard binary subtype 4)
    its canonical text; any other value its entity key (`json:` and canonical Extended
    JSON, as for `_id`s). A boolean, a document, an array, a NaN or an infinity names
    nobody.
    """
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float, Decimal128)):
        return _number_text(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Binary) and value.subtype == UUID_SUBTYPE and len(value) == 16:
        return str(UUID(bytes=bytes(value)))
    return entity_key(value)


def _readable(status: Any) -> bool:
    """True unless a status is there and cannot be read (what `status_problem` records)."""
    return status is None or _label(status) is not None


def _label(value: Any) -> str | None:
    """An order number or status as text: a string as it is, a number by its value (not a bool).

    Shops number orders 1001, 1002, ... and code statuses 1, 2, ...: `PAID_STATUSES=2,3`
    (a driver that writes every number as a double stores 2.0: still status `2`).
    """
    if isinstance(value, str):
        return value
    return _number_text(value)


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


def _fresh(rows: Rows, key: str, seq: int) -> bool:
    """True unless the row already has this change (idempotency)."""
    row = rows.get(key)
    return row is None or int(row.get("seq", 0)) < seq


_ABSENT: Final = object()
# How many orders' row keys order_summary remembers (then it starts again).
_KEYS_KEPT: Final = 1 << 16


def _index(part: str) -> bool:
    """True for a path step that is an array index: ASCII digits, no leading zero."""
    return part.isascii() and part.isdigit() and (part == "0" or part[0] != "0")


def _getter(path: str) -> Callable[[Mapping[str, Any] | None], Any]:
    """A reader of one document path (None when a step is missing, or not a document or array)."""
    parts = path.split(".")
    if len(parts) == 1:
        field = parts[0]

        def get_one(doc: Mapping[str, Any] | None) -> Any:
            return doc.get(field) if doc else None

        return get_one

    # A step of digits also indexes an array, as MongoDB's dot notation does (`lines.0.price`);
    # as there, not with a leading zero (`lines.01` names a field "01" only).
    steps = [(part, int(part) if _index(part) else None) for part in parts]

    def get_path(doc: Mapping[str, Any] | None) -> Any:
        value: Any = doc
        for part, index in steps:
            if isinstance(value, (dict, MappingProxyType)):
                value = value.get(part)
            elif index is not None and isinstance(value, list):
                value = value[index] if index < len(value) else None
            else:
                return None
        return value

    return get_path


def _many_getter(paths: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A reader of several document paths at once: their values, in order (None where missing).

    Top-level paths (the usual case) are read with one `map` over the document's
    `get`; order_summary reads six inputs per change, so this is its hot path.
    """
    if all("." not in p for p in paths):
        names = tuple(paths)

        def get_top(doc: Mapping[str, Any]) -> tuple[Any, ...]:
            return tuple(map(doc.get, names))

        return get_top
    getters = tuple(_getter(p) for p in paths)

    def get_each(doc: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(get(doc) for get in getters)

    return get_each


def _parent_getter(path: str) -> Callable[[Mapping[str, Any] | None], Any] | None:
    """A reader of the document holding a nested path's last step (None for a top-level path)."""
    parent, _, _ = path.rpartition(".")
    return _getter(parent) if parent else None


class OrderReader:
    """Reads an order's inputs through a schema; computes what the read models share."""

    def __init__(self, schema: OrderSchema) -> None:
        self.stream = schema.stream
        self.paid = frozenset(schema.paid_statuses)
        p = schema.paths
        self.status = _getter(p["status"])
        self.total = _getter(p["total"])
        self.currency = _getter(p["currency"])
        self.customer_id_value = _getter(p["customer_id"])
        self.customer_name = _getter(p["customer_name"])
        self.created_value = _getter(p["created_at"])
        self.customer_doc = _parent_getter(p["customer_id"])
        self._last: tuple[Change | None, list[tuple[str, Decimal, int]], Problem | None] = (
            None,
            [],
            None,
        )

    def text(self, get: Callable[[Any], Any], doc: Mapping[str, Any] | None) -> str | None:
        value = get(doc)
        return value if isinstance(value, str) else None

    def customer_id(self, doc: Mapping[str, Any] | None) -> str | None:
        """The customer id as text; None (no customer) for a missing, boolean or compound one.

        A number is its value, as MongoDB compares numbers: 42, 42.0 and
        Decimal128("42.0") are one customer, `42`; 42.5 and Decimal128("42.50") are
        `42.5`. A NaN or infinite number names no customer.
        """
        return _id_text(self.customer_id_value(doc))

    def customer(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """order_summary's `customer`: the document holding the customer id, else {id, name}.

        Else: the id at the top level, or in an array (`customer_ids.0`), or no document.
        """
        if self.customer_doc is not None:
            found = self.customer_doc(doc)
            if isinstance(found, dict):
                return found
        cid, name = self.customer_id(doc), self.text(self.customer_name, doc)
        return {"id": cid, "name": name} if cid is not None or name is not None else None

    def status_text(self, doc: Mapping[str, Any] | None) -> str | None:
        """The order's status as text (see `_label`): None when missing or of another type."""
        return _label(self.status(doc))

    def is_paid(self, doc: Mapping[str, Any] | None) -> bool:
        return self.status_text(doc) in self.paid

    def status_problem(self, seq: int, doc: Mapping[str, Any] | None) -> Problem | None:
        """The problem of a status that is there but cannot be read (`wrong_type`), else None.

        Such an order (status `true`, a sub-document, NaN) may well be paid: it is counted
        as not paid, and recorded, never silently left out of revenue. A missing status
        is an order not (yet) in any status, as a missing total outside the paid ones.
        """
        value = self.status(doc)
        if _readable(value):
            return None
        return problem(seq, "status", value, WRONG_TYPE)

    def new_status_problem(self, change: Change) -> Problem | None:
        """The status problem `change` brings, unless its order already had that value."""
        found = self.status_problem(change.event.seq, change.after)
        if found is None or (
            change.before is not None
            and _same(self.status(change.before), self.status(change.after))
        ):
            return None
        return found

    def created_at(
        self, doc: Mapping[str, Any] | None, e: Event
    ) -> tuple[datetime, Problem | None]:
        """When the order was placed (its date, or ISO 8601 text; else the event's time), and
        the problem of a `created_at` that is there but is no date (absent or null: none).

        Text that is not ISO 8601 is `not_a_date`; a number (seconds or milliseconds since
        1970? the value cannot say), a bool or a document is `wrong_type`.
        """
        value = self.created_value(doc)
        placed = _placed(value)
        if placed is not None:
            return placed, None
        if value is None:
            return e.occurred_at, None
        reason = NOT_A_DATE if isinstance(value, str) else WRONG_TYPE
        return e.occurred_at, problem(e.seq, "created_at", value, reason)

    def mine(self, change: Change) -> bool:
        """True for the order stream's changes (the read models read no other stream)."""
        return change.event.stream == self.stream

    def deltas(self, change: Change) -> tuple[list[tuple[str, Decimal, int]], Problem | None]:
        """(currency, amount, orders) to add on the change's day, and the problem of the total.

        An order adds its total when it becomes paid; leaving the paid statuses
        (cancellation) subtracts what it had added; a total or currency changed
        while paid adjusts; deleting a document changes no revenue. The problem is
        that of the total added (a paid order's total that is not money, or missing).
        """
        last = self._last  # keys() then apply() ask for the same change's deltas in turn
        if last[0] is change:
            return list(last[1]), last[2]
        out, found = self._deltas(change)
        self._last = (change, out, found)
        return list(out), found

    def _deltas(self, change: Change) -> tuple[list[tuple[str, Decimal, int]], Problem | None]:
        before, after = change.before, change.after
        if after is None or not self.mine(change):
            return [], None
        was, now = self.is_paid(before), self.is_paid(after)
        out: list[tuple[str, Decimal, int]] = []
        found: Problem | None = None
        if was:
            out.append(
                (self.text(self.currency, before) or "?", negated(money(self.total(before))), -1)
            )
        if now:
            value = self.total(after)
            amount, reason = read_money(value)
            out.append((self._after_currency(after), amount, +1))
            if reason is not None and not self.unchanged_while_paid(before, after):
                found = problem(change.event.seq, "total", value, reason)
        else:
            found = self.new_status_problem(change)
        merged: dict[str, tuple[Decimal, int]] = {}
        for currency, amount, orders in out:
            a, o = merged.get(currency, (ZERO, 0))
            merged[currency] = (add(a, amount), o + orders)
        # A new bad total is recorded on its row even when it changes no figure there.
        booked = self._after_currency(after) if found is not None else None
        if booked is not None and booked not in merged:  # a status problem books nothing
            merged[booked] = (ZERO, 0)
        deltas = [(c, a, o) for c, (a, o) in merged.items() if a != 0 or o != 0 or c == booked]
        return deltas, found

    def unchanged_while_paid(
        self, before: Mapping[str, Any] | None, after: Mapping[str, Any]
    ) -> bool:
        """True when a paid order stays paid with the same total and currency (nothing new to book)."""
        return (
            self.is_paid(before)
            and _same(self.total(before), self.total(after))
            and self.text(self.currency, before) == self.text(self.currency, after)
        )

    def _after_currency(self, after: Mapping[str, Any]) -> str:
        return self.text(self.currency, after) or "?"


def _same(a: Any, b: Any) -> bool:
    """The same stored value (NaN included: the same double that is not a number)."""
    return a is b or (a.__class__ is b.__class__ and shown(a) == shown(b))


def _ordered(found: Problem, e: Event) -> Problem:
    """An aggregate row's problem, naming the order it came from (an erasure's look-up)."""
    return {**found, PROBLEM_ORDER: typed_key(e.entity_id)}


def held_from(row: Mapping[str, Any]) -> list[str]:
    """The orders whose data an aggregate row holds, by typed key: its problems' and its
    name's, sorted."""
    found = {
        p[PROBLEM_ORDER]
        for p in row.get("problems") or ()
        if isinstance(p, dict) and isinstance(p.get(PROBLEM_ORDER), str)
    }
    if isinstance(name_key := row.get(NAME_KEY), str):
        found.add(name_key)
    return sorted(found)


def _erased_rewrite(erased: str) -> Rewrite:
    """An aggregate row without what the order of typed key `erased` gave it: its problems,
    its name (a row built before rules 8 names that order by entity key alone)."""
    bare = entity_key(parse_typed(erased))

    def rewrite(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        named = row.get(NAME_KEY)
        if named == erased or (named is None and row.get("name_from") == bare):
            # a customer's, until another order names it
            out.update({"name": None, "name_seq": 0, "name_from": None, NAME_KEY: None})
        out["problems"] = [
            p
            for p in row.get("problems") or ()
            if not (isinstance(p, dict) and p.get(PROBLEM_ORDER) == erased)
        ]
        out[HELD_FROM] = held_from(out)
        return out

    return rewrite


def _kept(found: Problem, kept: Sequence[Problem], seq: int) -> Problem:
    """`found`, or the record of the same problem `kept` already holds (its first seq)."""
    for record in kept:
        if {**record, "seq": seq} == found:
            return record
    return found


def _date_problem(row: Mapping[str, Any] | None) -> Problem | None:
    """The `created_at` problem an order_summary row holds, if any."""
    for record in (row or {}).get("problems") or ():
        if isinstance(record, dict) and record.get("field") == "created_at":
            return record
    return None


def _problem_fields(old: Mapping[str, Any] | None, new: list[Problem]) -> tuple[list[Problem], int]:
    """A row's `problems` and `problems_dropped` with `new` added."""
    if old is None:
        return with_problems(None, 0, new)
    return with_problems(old.get("problems"), int(old.get("problems_dropped", 0)), new)


def order_projections(schema: OrderSchema = DEFAULT_SCHEMA) -> tuple[Projection, ...]:
    """The four order read models over `schema`: summary, by status, revenue by day, customers."""
    r = OrderReader(schema)
    config = schema.fingerprint()

    # -- order_summary ------------------------------------------------------------------------
    stream = schema.stream

    # order_summary's inputs, read with one call per change: number, status, items, total,
    # currency (the customer comes from `OrderReader.customer`).
    p = schema.paths
    read_inputs = _many_getter((p["number"], p["status"], p["items"], p["total"], p["currency"]))
    customer_of_doc = r.customer
    paid = r.paid
    # keys() then apply() ask for the same change's key in turn: the last one is remembered.
    last_key: list[Any] = [None, ""]
    # The row keys of orders with ObjectId and string ids, by class and entity key: one
    # string object per order, so the look-ups of its row (and of a rebuild's held change)
    # find it by identity, not by comparing text; a new one was built for every change.
    known: dict[type, dict[str, str]] = {ObjectId: {}, str: {}}
    prefix = {ObjectId: "oid:", str: "str:"}

    def summary_keys(change: Change) -> list[str]:
        e = change.event
        if e.stream != stream:
            return []
        cls = e.entity_id.__class__
        keys = known.get(cls)
        found = keys.get(e.entity_key) if keys is not None else None
        if found is not None:
            key = found
        elif keys is None:
            key = summary_key(e)
        else:
            if len(keys) >= _KEYS_KEPT:
                keys.clear()
            key = keys[e.entity_key] = prefix[cls] + e.entity_key
        last_key[0], last_key[1] = e, key
        return [key]

    def summary_apply(rows: Rows, change: Change) -> list[Write]:
        e = change.event
        if e.stream != stream:
            return []
        key = last_key[1] if last_key[0] is e else summary_key(e)
        old = rows.get(key)
        if old is not None and int(old.get("seq", 0)) >= e.seq:
            return []  # already applied
        if e.erased_by is not None:
            # Its payload is gone, and with it what the order was: the erasure deleted the
            # row, and neither a lagging runner nor a rebuild writes it back from here.
            return [Write(key=key, row=None)]
        after = change.after
        doc = after if after is not None else (change.before or _NOTHING)
        number, status, items, value, currency = read_inputs(doc)
        created = old.get("created_at") if old is not None else None
        # The order's first change sets `created_at` for good, and with it the problem of a
        # value that could not be read (the row's date is then that change's time).
        if created is None:
            created, date_problem = r.created_at(doc, e)
        else:
            date_problem = _date_problem(old)
        if value.__class__ is Decimal128 and money128(value):
            total, reason = value, None
        else:
            amount, reason = read_money(value)
            total = dec128(amount)
        problems: list[Problem] = []
        label = _label(status)
        if reason is not None and (reason != MISSING or label in paid):
            problems.append(problem(e.seq, "total", value, reason))
        if label is None and status is not None:  # there, but neither text nor a number
            problems.insert(0, problem(e.seq, "status", status, WRONG_TYPE))
        if problems and old is not None and (kept := old.get("problems")):
            # the same bad value as before keeps its record (and the seq it first appeared at)
            problems = [_kept(found, kept, e.seq) for found in problems]
        if date_problem is not None:  # the first change's: no other is older
            problems.insert(0, date_problem)
        status = label
        return [
            Write(
                key=key,
                row={
                    "entity_key": e.entity_key,
                    "number": _label(number),
                    "customer": customer_of_doc(doc),
                    "status": status,
                    "items": items if isinstance(items, list) else [],
                    "total": total,
                    "currency": currency if isinstance(currency, str) else None,
                    "created_at": created,
                    "updated_at": e.occurred_at,
                    "version": e.version,
                    "deleted": after is None,
                    "problems": problems,
                    "problems_dropped": 0,
                    "seq": e.seq,
                },
            )
        ]

    total_of, status_of, status_text = r.total, r.status, r.status_text

    def summary_skippable(change: Change) -> bool:
        # A row is its order's latest state and last event, but for two things its history
        # sets: `created_at` (by the order's first change: a skipped change's row exists) and
        # the seq a bad total was first seen at, which only a change of the total (or, for a
        # missing one, of the status as the row reads it: "paid" or not) can move, and the
        # seq a status that cannot be read was first seen at, which a change to or from
        # such a status moves (away and back again is a new record). The fold shares what
        # an update leaves alone, so an unchanged total or status is the same object. Only
        # a delete's row reads `before`, and a delete is never skipped.
        before, after = change.before, change.after
        if before is None or after is None or change.event.stream != stream:
            return False
        total, status, was = total_of(after), status_of(after), status_of(before)
        return (
            total is total_of(before)
            and (total is not None or status_text(before) == status_text(after))
            and (status is was or (_readable(status) and _readable(was)))
        )

    if "." not in p["total"] and "." not in p["status"]:
        # The usual top-level fields: read with the states' own `get` (this runs once per
        # event of a rebuild; a call per field read cost it a tenth of its work beyond the fold).
        total_field, status_field = p["total"], p["status"]

        def summary_skippable(change: Change) -> bool:  # the same test, fields read inline
            before, after = change.before, change.after
            if before is None or after is None or change.event.stream != stream:
                return False
            total, status, was = (
                after.get(total_field),
                after.get(status_field),
                before.get(status_field),
            )
            return (
                total is before.get(total_field)
                and (total is not None or _label(was) == _label(status))
                and (
                    status is was
                    # text is always readable (the usual status: no call for it)
                    or (status.__class__ is str and was.__class__ is str)
                    or (_readable(status) and _readable(was))
                )
            )

    def summary_merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        # A key is one entity's, so its rows come from one partition; the newer one wins anyway.
        return a if int(a.get("seq", 0)) >= int(b.get("seq", 0)) else b

    # -- orders_by_status ---------------------------------------------------------------------
    def status_keys(change: Change) -> list[str]:
        if not r.mine(change):
            return []
        keys = [r.status_text(change.before), r.status_text(change.after)]
        return sorted({k for k in keys if k is not None})

    def status_apply(rows: Rows, change: Change) -> list[Write]:
        e = change.event
        if not r.mine(change):
            return []
        old, new = r.status_text(change.before), r.status_text(change.after)  # None: no doc
        if old == new:
            return []
        out = []
        for status, delta in ((old, -1), (new, +1)):
            if status is None or not _fresh(rows, status, e.seq):
                continue
            count = int((rows.get(status) or {}).get("count", 0)) + delta
            out.append(Write(key=status, row={"status": status, "count": count, "seq": e.seq}))
        return out

    def status_merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": key,
            "count": int(a.get("count", 0)) + int(b.get("count", 0)),
            "seq": max(int(a.get("seq", 0)), int(b.get("seq", 0))),
        }

    # -- revenue_by_day -----------------------------------------------------------------------
    def revenue_keys(change: Change) -> list[str]:
        deltas, _ = r.deltas(change)
        if not deltas:
            return []
        day = _day(change.event.occurred_at)
        return [f"{day}:{currency}" for currency, _, _ in deltas]

    def revenue_apply(rows: Rows, change: Change) -> list[Write]:
        e = change.event
        deltas, found = r.deltas(change)
        if not deltas:
            return []
        day = _day(e.occurred_at)
        after_currency = r._after_currency(change.after) if change.after is not None else None
        out = []
        for currency, amount, orders in deltas:
            key = f"{day}:{currency}"
            if not _fresh(rows, key, e.seq):
                continue
            row = rows.get(key)
            new = [_ordered(found, e)] if found is not None and currency == after_currency else []
            problems, dropped = _problem_fields(row, new)
            old = row or {}
            written = {
                "day": day,
                "currency": currency,
                "revenue": dec128(add(money(old.get("revenue")), amount)),
                "orders": int(old.get("orders", 0)) + orders,
                "problems": problems,
                "problems_dropped": dropped,
                "seq": e.seq,
            }
            written[HELD_FROM] = held_from(written)
            out.append(Write(key=key, row=written))
        return out

    def revenue_merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        problems, dropped = with_problems(
            a.get("problems"),
            int(a.get("problems_dropped", 0)) + int(b.get("problems_dropped", 0)),
            list(b.get("problems") or []),
        )
        merged = {
            **a,
            "revenue": dec128(add(money(a.get("revenue")), money(b.get("revenue")))),
            "orders": int(a.get("orders", 0)) + int(b.get("orders", 0)),
            "problems": problems,
            "problems_dropped": dropped,
            "seq": max(int(a.get("seq", 0)), int(b.get("seq", 0))),
        }
        merged[HELD_FROM] = held_from(merged)
        return merged

    # -- customer_totals ----------------------------------------------------------------------
    def customer_of(doc: Mapping[str, Any] | None) -> str:
        return r.customer_id(doc) or NO_CUSTOMER

    def customer_keys(change: Change) -> list[str]:
        if not r.mine(change):
            return []
        ids = {customer_of(change.after)} if change.after is not None else set()
        if change.before is not None:
            ids.add(customer_of(change.before))
        return sorted(ids)

    def customer_apply(rows: Rows, change: Change) -> list[Write]:
        """Orders placed and lifetime spend per currency (paid net of cancellations) per customer."""
        e = change.event
        if not r.mine(change):
            return []
        before, after = change.before, change.after
        before_id = customer_of(before) if before is not None else None
        after_id = customer_of(after) if after is not None else None
        touched: dict[str, dict[str, Any]] = {}
        new_problems: dict[str, list[Problem]] = {}

        def row_of(cid: str) -> dict[str, Any]:
            if cid not in touched:
                old = rows.get(cid) or {}
                spend = old.get("lifetime_spend")
                touched[cid] = {
                    "customer": cid if cid != NO_CUSTOMER else None,
                    "name": old.get("name"),
                    "name_seq": int(old.get("name_seq", 0)),
                    "name_from": old.get("name_from"),
                    NAME_KEY: old.get(NAME_KEY),
                    "orders": int(old.get("orders", 0)),
                    "lifetime_spend": {
                        c: money(v) for c, v in (spend.items() if isinstance(spend, dict) else ())
                    },
                    "last_order_at": old.get("last_order_at"),
                }
            return touched[cid]

        if after is not None and after_id is not None:
            row = row_of(after_id)
            name = r.text(r.customer_name, after)
            if name is not None and after_id != NO_CUSTOMER:
                row["name"], row["name_seq"], row["name_from"] = name, e.seq, e.entity_key
                row[NAME_KEY] = typed_key(e.entity_id)
            if before is None or before_id != after_id:  # a new order for this customer
                row["orders"] += 1
                placed, found = r.created_at(after, e)
                if found is not None:
                    new_problems.setdefault(after_id, []).append(_ordered(found, e))
                if row["last_order_at"] is None or placed > as_utc(row["last_order_at"]):
                    row["last_order_at"] = placed
            if before_id is not None and before_id != after_id:
                row_of(before_id)["orders"] -= 1
        if after is not None:
            if r.is_paid(before) and before_id is not None:
                spend = row_of(before_id)["lifetime_spend"]
                currency = r.text(r.currency, before) or "?"
                spend[currency] = add(spend.get(currency, ZERO), negated(money(r.total(before))))
            if r.is_paid(after) and after_id is not None:
                spend = row_of(after_id)["lifetime_spend"]
                currency = r.text(r.currency, after) or "?"
                value = r.total(after)
                amount, reason = read_money(value)
                spend[currency] = add(spend.get(currency, ZERO), amount)
                # a bad total kept while paid (the same stored value, not only the same
                # object: a replaced document holds new ones) was recorded when it came
                if reason is not None and not (
                    r.is_paid(before) and before_id == after_id and _same(r.total(before), value)
                ):
                    new_problems.setdefault(after_id, []).append(
                        _ordered(problem(e.seq, "total", value, reason), e)
                    )
            elif after_id is not None and (found := r.new_status_problem(change)) is not None:
                new_problems.setdefault(after_id, []).append(_ordered(found, e))
        out = []
        for cid, row in touched.items():
            if _fresh(rows, cid, e.seq):
                problems, dropped = _problem_fields(rows.get(cid), new_problems.get(cid, []))
                written = {
                    **row,
                    "lifetime_spend": {
                        c: dec128(v) for c, v in sorted(row["lifetime_spend"].items())
                    },
                    "problems": problems,
                    "problems_dropped": dropped,
                    "seq": e.seq,
                }
                written[HELD_FROM] = held_from(written)
                out.append(Write(key=cid, row=written))
        return out

    def customer_merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Two partial rows of one customer: sums, the newest name, the latest order."""
        spend: dict[str, Decimal] = {}
        for part in (a, b):
            for currency, value in (part.get("lifetime_spend") or {}).items():
                spend[currency] = add(spend.get(currency, ZERO), money(value))
        named = a if int(a.get("name_seq", 0)) >= int(b.get("name_seq", 0)) else b
        times = [t for t in (a.get("last_order_at"), b.get("last_order_at")) if t is not None]
        problems, dropped = with_problems(
            a.get("problems"),
            int(a.get("problems_dropped", 0)) + int(b.get("problems_dropped", 0)),
            list(b.get("problems") or []),
        )
        merged = {
            **a,
            "name": named.get("name"),
            "name_seq": named.get("name_seq", 0),
            "name_from": named.get("name_from"),
            NAME_KEY: named.get(NAME_KEY),
            "orders": int(a.get("orders", 0)) + int(b.get("orders", 0)),
            "lifetime_spend": {c: dec128(v) for c, v in sorted(spend.items())},
            "last_order_at": max(times, key=as_utc) if times else None,
            "problems": problems,
            "problems_dropped": dropped,
            "seq": max(int(a.get("seq", 0)), int(b.get("seq", 0))),
        }
        merged[HELD_FROM] = held_from(merged)
        return merged

    # -- erasure (revenue_by_day, customer_totals) ---------------------------------------------
    def order_forget(erased_stream: str, erased: str) -> tuple[Mapping[str, Any], Rewrite] | None:
        """An erased order's data (`erased`: its typed key, `forget_typed`) leaves the
        aggregate rows holding it (`held_from`): its offending values in their problems."""
        if erased_stream != stream:
            return None
        return {HELD_FROM: erased}, _erased_rewrite(erased)

    def customer_forget(
        erased_stream: str, erased: str
    ) -> tuple[list[Mapping[str, Any]], Rewrite] | None:
        """As `order_forget`, and the customer name the order gave; by `name_from` too: a
        row built before rules 8 has no `held_from`, and must not keep an erased order's
        name until it is rebuilt (the rewrite tells such a row's order by `name_from`)."""
        if erased_stream != stream:
            return None
        bare = entity_key(parse_typed(erased))
        return [{HELD_FROM: erased}, {"name_from": bare}], _erased_rewrite(erased)

    return (
        Projection(
            name="order_summary",
            collection="rm_order_summary",
            keys=summary_keys,
            apply=summary_apply,
            merge=summary_merge,
            skippable=summary_skippable,
            tracks_seq=True,
            config=config,
            per_entity=stream,
            # an order by its number or bare key; the rarer statuses, currencies, deletes
            indexes=("number", "entity_key", "status", "currency", "deleted"),
        ),
        Projection(
            name="orders_by_status",
            collection="rm_orders_by_status",
            keys=status_keys,
            apply=status_apply,
            merge=status_merge,
            tracks_seq=True,
            config=config,
        ),
        Projection(
            name="revenue_by_day",
            collection="rm_revenue_by_day",
            keys=revenue_keys,
            apply=revenue_apply,
            merge=revenue_merge,
            tracks_seq=True,
            config=config,
            forget=order_forget,
            forget_typed=True,
            # `held_from`: an erased order's rows, found by `order_forget`
            indexes=("day", "currency", HELD_FROM),
        ),
        Projection(
            name="customer_totals",
            collection="rm_customer_totals",
            keys=customer_keys,
            apply=customer_apply,
            merge=customer_merge,
            tracks_seq=True,
            config=config,
            forget=customer_forget,
            forget_typed=True,
            # `held_from`, `name_from`: an erased order's rows, found by `customer_forget`
            indexes=("customer", "name", "name_from", HELD_FROM),
        ),
    )


ORDER_PROJECTIONS: Final = order_projections(DEFAULT_SCHEMA)
ORDER_SUMMARY, ORDERS_BY_STATUS, REVENUE_BY_DAY, CUSTOMER_TOTALS = ORDER_PROJECTIONS
_DEFAULT_READER: Final = OrderReader(DEFAULT_SCHEMA)


def revenue_deltas(change: Change) -> list[tuple[str, Decimal, int]]:
    """(currency, amount, orders) the default schema adds on the change's day (see OrderReader)."""
    return _DEFAULT_READER.deltas(change)[0]
