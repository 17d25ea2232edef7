"""Collections a projection may never use: the store's own, now and planned.

A rebuild swaps its fresh collection into place with one rename that drops the
target, so a projection named onto `events` could replace the log. The store's
collections are every name `eventstore.mongo.collections` defines (read from the
module, so a collection added there is reserved at once) and the names planned
for features not built yet; anything under `system.` is MongoDB's.
"""

from __future__ import annotations

import re
from typing import Final

from eventstore.mongo import collections as store_collections
from projections.runner import BUILDING_SUFFIX, STATE_COLLECTION

# Names the store uses or will use, beyond those defined in eventstore.mongo.collections.
PLANNED: Final = frozenset(
    {
        "events",
        "checkpoints",
        "snapshots",
        "leases",
        "jobs",
        "workers",
        "migrations",
        "subscriptions",
        "subscription_settled",
        "subscription_parked",
        "subscription_actions",
        "admin_actions",
        "merkle_nodes",
        "tree_nodes",
        "tree_checkpoints",
        "erasure_requests",
        "rejected",
    }
)
NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# A MongoDB collection name: no `$`, no NUL, not empty, not too long for a namespace.
_COLLECTION: Final = re.compile(r"^[^$\x00]{1,120}$")


def store_collection_names() -> frozenset[str]:
    """Every collection the store uses now (`eventstore.mongo.collections`) or plans to."""
    defined = {
        value
        for name, value in vars(store_collections).items()
        if name.isupper() and isinstance(value, str)
    }
    return frozenset(defined | PLANNED | {STATE_COLLECTION})


def collection_problem(collection: object) -> str | None:
    """Why a projection may not use this collection (None: it may)."""
    if not isinstance(collection, str) or not _COLLECTION.fullmatch(collection):
        return f"collection {collection!r} is not a MongoDB collection name"
    lowered = collection.lower()
    if lowered.startswith("system.") or lowered == "system":
        return f"collection {collection!r} is reserved (system.* belongs to MongoDB)"
    if lowered in store_collection_names():
        return f"collection {collection!r} belongs to the store"
    if lowered.endswith(BUILDING_SUFFIX) or BUILDING_SUFFIX + "_" in lowered:
        return (
            f"collection {collection!r} contains {BUILDING_SUFFIX!r} "
            "(a rebuild's own names: its fresh and staging collections)"
        )
    return None


__all__ = ["NAME", "PLANNED", "collection_problem", "store_collection_names"]
