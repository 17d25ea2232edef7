"""Synthetic order changes shaped like the simulator's, built without a database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Decimal128, ObjectId, Timestamp

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ACTORS = ["alice", "bob", "carol", "dave", "checkout-service"]


def order(rng: random.Random, n: int, oid: ObjectId, at: datetime) -> dict[str, Any]:
    """An order document as DESIGN.md describes it."""
    items: list[dict[str, Any]] = [
        {
            "sku": f"SKU-{rng.randrange(500):04d}",
            "name": f"Item {k}",
            "qty": rng.randint(1, 4),
            "unit_price": Decimal128(f"{rng.randint(100, 9999) / 100:.2f}"),
        }
        for k in range(rng.randint(1, 4))
    ]
    total = sum(i["qty"] * i["unit_price"].to_decimal() for i in items)
    return {
        "_id": oid,
        "number": f"ORD-{n:06d}",
        "customer": {
            "id": f"C{rng.randrange(300):05d}",
            "name": "Ann Example",
            "email": "ann@example.com",
        },
        "status": "pending",
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "items": items,
        "total": Decimal128(total),
        "shipping": {
            "name": "Ann Example",
            "street": "1 Main St",
            "city": "Lyon",
            "zip": "69001",
            "country": "FR",
        },
        "createdAt": at,
        "updatedAt": at,
        "updatedBy": rng.choice(ACTORS),
    }


def changes(count: int, *, entities: int = 1000, seed: int = 7) -> list[dict[str, Any]]:
    """`count` change events: one insert per entity first, then updates of random entities."""
    rng = random.Random(seed)
    ids = [ObjectId() for _ in range(entities)]
    out: list[dict[str, Any]] = []
    for n in range(count):
        at = START + timedelta(milliseconds=n)
        envelope: dict[str, Any] = {
            "_id": {"_data": f"8263{n:016X}2B022C0100296E5A1004"},
            "clusterTime": Timestamp(1_764_147_600 + n // 1000, n % 1000 + 1),
            "wallTime": at,
            "ns": {"db": "shop", "coll": "orders"},
        }
        if n < entities:
            doc = order(rng, n, ids[n], at)
            out.append(
                {
                    **envelope,
                    "operationType": "insert",
                    "documentKey": {"_id": ids[n]},
                    "fullDocument": doc,
                }
            )
            continue
        oid = ids[rng.randrange(entities)]
        status = rng.choice(["paid", "shipped", "delivered"])
        out.append(
            {
                **envelope,
                "operationType": "update",
                "documentKey": {"_id": oid},
                "updateDescription": {
                    "updatedFields": {
                        "status": status,
                        "updatedAt": at,
                        "updatedBy": rng.choice(ACTORS),
                        "items.0.qty": rng.randint(1, 5),
                    },
                    "removedFields": [],
                    "truncatedArrays": [],
                },
            }
        )
    return out
