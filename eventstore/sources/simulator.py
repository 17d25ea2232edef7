"""An order workload written through the memory change feed (the demo's traffic, and test data).

Orders look like DESIGN.md's order document. Every write sets `updatedAt` and
`updatedBy`; `total` always equals the sum of `qty * unit_price` of the items,
in the same write that changes the items. Choices come from `random.Random(seed)`
and from the orders' own state, so the same seed against the same starting
collection gives the same sequence of operations (ids and times may differ).
"""

from __future__ import annotations

import asyncio
import random
import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import msgspec
from bson import Decimal128, ObjectId

from eventstore.codec import utc_ms
from eventstore.ports import Clock
from eventstore.sources.feed_documents import id_key
from eventstore.sources.memory import MemoryChangeFeed

ACTORS: Final = ("alice", "bob", "carol", "dave", "erin", "checkout-service")
CURRENCIES: Final = ("EUR", "USD", "GBP")
PRODUCTS: Final = (
    ("SKU-1001", "Espresso beans 1 kg", "18.90"),
    ("SKU-1002", "Milk frother", "34.50"),
    ("SKU-1003", "Ceramic cup", "7.25"),
    ("SKU-1004", "Grinder", "89.00"),
    ("SKU-1005", "Descaler", "5.99"),
    ("SKU-1006", "Tamper", "22.00"),
    ("SKU-1007", "Filter papers (100)", "3.49"),
    ("SKU-1008", "Kettle", "49.95"),
)
FIRST_NAMES: Final = ("Ada", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines")
LAST_NAMES: Final = ("Lovelace", "Okafor", "Martin", "Petrov", "Schmidt", "Haddad", "Hopper")
CITIES: Final = (
    ("Amsterdam", "NL"),
    ("Berlin", "DE"),
    ("Lyon", "FR"),
    ("Leeds", "GB"),
    ("Austin", "US"),
    ("Porto", "PT"),
)
STREETS: Final = ("Main Street", "Station Road", "Canal Walk", "Market Square", "Hill Lane")

# status -> the operations that make sense for an order in it, with their weights.
PLAN: Final[dict[str, tuple[tuple[str, int], ...]]] = {
    "pending": (
        ("add_item", 14),
        ("remove_item", 8),
        ("change_qty", 12),
        ("edit_shipping", 6),
        ("pay", 20),
        ("cancel", 4),
        ("replace", 2),
        ("delete", 1),
    ),
    "paid": (("ship", 25), ("edit_shipping", 4), ("cancel", 3), ("replace", 1)),
    "shipped": (("deliver", 25),),
    "delivered": (("delete", 1),),
    "cancelled": (("delete", 1),),
}
TERMINAL: Final = frozenset({"delivered", "cancelled"})
NEW_ORDER_CHANCE: Final = 0.15
CUSTOMERS: Final = 40


class Operation(msgspec.Struct, frozen=True):
    """One simulated write: its kind and the order's number."""

    kind: str
    number: str


class IdPool:
    """A set of order ids with O(1) add, remove and pick-by-index (removal moves the last id in)."""

    def __init__(self) -> None:
        self._ids: list[Any] = []
        self._index: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, order_id: Any) -> bool:
        return id_key(order_id) in self._index

    def __getitem__(self, index: int) -> Any:
        return self._ids[index]

    def add(self, order_id: Any) -> None:
        """Add an id (no-op when present)."""
        key = id_key(order_id)
        if key not in self._index:
            self._index[key] = len(self._ids)
            self._ids.append(order_id)

    def discard(self, order_id: Any) -> None:
        """Remove an id if present."""
        index = self._index.pop(id_key(order_id), None)
        if index is None:
            return
        last = self._ids.pop()
        if index < len(self._ids):
            self._ids[index] = last
            self._index[id_key(last)] = index


class Simulator:
    """Writes orders and their life cycle through a `MemoryChangeFeed` collection.

    Each step costs the same whatever the number of orders: the open and finished
    orders are `IdPool`s and every write addresses its order by `_id`.
    """

    def __init__(
        self,
        feed: MemoryChangeFeed,
        *,
        seed: int,
        clock: Clock | None = None,
        collection: str = "orders",
    ) -> None:
        self.feed = feed
        self.clock: Clock = clock or feed.clock
        self.orders = feed.collection(collection)
        self._rng = random.Random(seed)
        self._active = IdPool()  # ids of orders not in a terminal status
        self._done = IdPool()  # ids of delivered or cancelled orders
        self._next_number: int | None = None
        self._customers = [self._customer(i) for i in range(1, CUSTOMERS + 1)]
        self.steps = 0

    # -- the workload ------------------------------------------------------------------------------

    async def create_orders(self, n: int) -> list[str]:
        """Create `n` orders; returns their numbers (yielding to the event loop after each)."""
        await self._load()
        numbers = []
        for _ in range(n):
            numbers.append((await self._create()).number)
            await asyncio.sleep(0)
        return numbers

    async def step(self) -> Operation:
        """One random operation on a random order (or a new order)."""
        await self._load()
        self.steps += 1
        if not self._active or self._rng.random() < NEW_ORDER_CHANCE:
            return await self._create()
        pool = self._active if not self._done or self._rng.random() < 0.9 else self._done
        order_id = pool[self._rng.randrange(len(pool))]
        order = await self.orders.find_one({"_id": order_id})
        if order is None:  # removed behind our back: forget it
            self._discard(order_id)
            return await self._create()
        kinds, weights = zip(*self._plan(order), strict=True)
        kind = self._rng.choices(kinds, weights=weights)[0]
        await getattr(self, "_" + kind)(order)
        return Operation(kind, str(order.get("number", "")))

    async def run(self, *, orders: int, changes: int | None = None, rate: float = 5.0) -> int:
        """Create `orders`, then make `changes` steps (None: forever) at `rate` per second.

        Rate 0 means unpaced: `changes` steps as fast as they go, and with
        `changes=None` none at all (it stops after the initial orders rather than
        spin forever). Returns the number of steps made.

        Unpaced, it still yields to the event loop after every write: the memory
        feed's writes never suspend, and a loop that never yields starves everything
        else in the process (the API of a serving demo, capture, a stop signal's
        handler) until the last change is made.
        """
        await self.create_orders(orders)
        if rate <= 0 and changes is None:
            return 0
        made = 0
        while changes is None or made < changes:
            await self.step()
            made += 1
            if rate > 0:
                await self.clock.sleep(1.0 / rate)
            else:
                await asyncio.sleep(0)
        return made

    def _plan(self, order: Mapping[str, Any]) -> Sequence[tuple[str, int]]:
        plan = PLAN.get(str(order.get("status")), (("delete", 1),))
        items = order.get("items") or []
        if len(items) < 2:
            plan = tuple(p for p in plan if p[0] != "remove_item")
        if not items:
            plan = tuple(p for p in plan if p[0] != "change_qty")
        return plan

    # -- state ---------------------------------------------------------------------------------

    async def _load(self) -> None:
        """On first use, continue from what the collection holds (numbers, open orders)."""
        if self._next_number is not None:
            return
        highest = 0
        for doc in await self.orders.find({}, {"number": 1, "status": 1}, sort=[("_id", 1)]):
            number = str(doc.get("number", ""))
            if number.startswith("ORD-") and number[4:].isdigit():
                highest = max(highest, int(number[4:]))
            (self._done if doc.get("status") in TERMINAL else self._active).add(doc["_id"])
        self._next_number = highest + 1

    def _discard(self, order_id: Any) -> None:
        self._active.discard(order_id)
        self._done.discard(order_id)

    def _stamp(self) -> dict[str, Any]:
        return {"updatedAt": self._now(), "updatedBy": self._rng.choice(ACTORS)}

    def _now(self) -> datetime:
        return utc_ms(self.clock.now())

    # -- operations ----------------------------------------------------------------------------

    async def _create(self) -> Operation:
        assert self._next_number is not None
        number = f"ORD-{self._next_number:06d}"
        self._next_number += 1
        now = self._now()
        items = self._items()
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "number": number,
            "customer": dict(self._rng.choice(self._customers)),
            "status": "pending",
            "currency": self._rng.choice(CURRENCIES),
            "items": items,
            "total": total_of(items),
            "shipping": self._address(),
            "createdAt": now,
            "updatedAt": now,
            "updatedBy": self._rng.choice(ACTORS),
        }
        await self.orders.insert_one(doc)
        self._active.add(doc["_id"])
        return Operation("create", number)

    async def _add_item(self, order: Mapping[str, Any]) -> None:
        item = self._item(exclude={i.get("sku") for i in order.get("items") or []})
        items = [*(order.get("items") or []), item]
        await self.orders.update_one(
            {"_id": order["_id"]},
            {"$push": {"items": item}, "$set": {"total": total_of(items), **self._stamp()}},
        )

    async def _remove_item(self, order: Mapping[str, Any]) -> None:
        items = list(order.get("items") or [])
        gone = items[self._rng.randrange(len(items))]
        kept = [i for i in items if i.get("sku") != gone.get("sku")]
        await self.orders.update_one(
            {"_id": order["_id"]},
            {
                "$pull": {"items": {"sku": gone.get("sku")}},
                "$set": {"total": total_of(kept), **self._stamp()},
            },
        )

    async def _change_qty(self, order: Mapping[str, Any]) -> None:
        items = [dict(i) for i in order.get("items") or []]
        index = self._rng.randrange(len(items))
        qty = int(items[index].get("qty") or 1)
        qty = max(1, qty + self._rng.choice((-2, -1, 1, 2, 3))) if qty > 1 else qty + 1
        items[index]["qty"] = qty
        await self.orders.update_one(
            {"_id": order["_id"]},
            {"$set": {f"items.{index}.qty": qty, "total": total_of(items), **self._stamp()}},
        )

    async def _edit_shipping(self, order: Mapping[str, Any]) -> None:
        city, country = self._rng.choice(CITIES)
        changes: dict[str, Any] = {
            "shipping.street": f"{self._rng.randint(1, 250)} {self._rng.choice(STREETS)}"
        }
        if self._rng.random() < 0.5:
            changes.update({"shipping.city": city, "shipping.country": country})
            changes["shipping.zip"] = f"{self._rng.randint(10000, 99999)}"
        await self.orders.update_one({"_id": order["_id"]}, {"$set": {**changes, **self._stamp()}})

    async def _status(self, order: Mapping[str, Any], status: str) -> None:
        await self.orders.update_one(
            {"_id": order["_id"]}, {"$set": {"status": status, **self._stamp()}}
        )
        if status in TERMINAL:
            self._discard(order["_id"])
            self._done.add(order["_id"])

    async def _pay(self, order: Mapping[str, Any]) -> None:
        await self._status(order, "paid")

    async def _ship(self, order: Mapping[str, Any]) -> None:
        await self._status(order, "shipped")

    async def _deliver(self, order: Mapping[str, Any]) -> None:
        await self._status(order, "delivered")

    async def _cancel(self, order: Mapping[str, Any]) -> None:
        await self._status(order, "cancelled")

    async def _delete(self, order: Mapping[str, Any]) -> None:
        await self.orders.delete_one({"_id": order["_id"]})
        self._discard(order["_id"])

    async def _replace(self, order: Mapping[str, Any]) -> None:
        """A whole-document rewrite (as an admin tool would do): new items, same identity."""
        items = self._items()
        replacement = {
            k: v
            for k, v in order.items()
            if k not in ("_id", "items", "total", "updatedAt", "updatedBy")
        }
        replacement.update({"items": items, "total": total_of(items), **self._stamp()})
        await self.orders.replace_one({"_id": order["_id"]}, replacement)

    # -- parts ---------------------------------------------------------------------------------

    def _items(self) -> list[dict[str, Any]]:
        """One to three items of distinct products."""
        picked = self._rng.sample(PRODUCTS, self._rng.randint(1, 3))
        return [self._line(product) for product in picked]

    def _item(self, exclude: set[Any]) -> dict[str, Any]:
        """An item of a product not yet in the order (any product when all are)."""
        choices = [p for p in PRODUCTS if p[0] not in exclude] or list(PRODUCTS)
        return self._line(self._rng.choice(choices))

    def _line(self, product: tuple[str, str, str]) -> dict[str, Any]:
        sku, name, price = product
        qty = self._rng.randint(1, 4)
        return {"sku": sku, "name": name, "qty": qty, "unit_price": Decimal128(price)}

    def _customer(self, number: int) -> dict[str, Any]:
        first, last = self._rng.choice(FIRST_NAMES), self._rng.choice(LAST_NAMES)
        handle = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore")
        return {
            "id": f"CUST-{number:04d}",
            "name": f"{first} {last}",
            "email": f"{handle.decode().lower()}{number}@example.com",
        }

    def _address(self) -> dict[str, Any]:
        city, country = self._rng.choice(CITIES)
        return {
            "name": f"{self._rng.choice(FIRST_NAMES)} {self._rng.choice(LAST_NAMES)}",
            "street": f"{self._rng.randint(1, 250)} {self._rng.choice(STREETS)}",
            "city": city,
            "zip": f"{self._rng.randint(10000, 99999)}",
            "country": country,
        }


def total_of(items: Sequence[Mapping[str, Any]]) -> Decimal128:
    """The order total: the sum of qty * unit_price, to the cent."""
    total = Decimal("0")
    for item in items:
        price = item.get("unit_price")
        value = price.to_decimal() if isinstance(price, Decimal128) else Decimal(str(price or 0))
        total += value * int(item.get("qty") or 0)
    return Decimal128(total.quantize(Decimal("0.01")))


__all__ = ["IdPool", "Operation", "Simulator", "total_of"]
