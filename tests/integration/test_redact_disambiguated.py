"""Redaction of updates whose paths MongoDB disambiguates, through the ingester and the fold."""

from __future__ import annotations

from typing import Any

from eventstore.clock import FakeClock
from eventstore.fold import Finding, apply_event
from eventstore.model import Event
from eventstore.ports import Store
from eventstore.settings import _redactions
from eventstore.sources.memory import MemoryChangeFeed
from tests.integration.ingest_helpers import assert_log_intact, ingester, start_from_the_beginning


def _update(key: Any, description: dict[str, Any]) -> dict[str, Any]:
    """A raw `update` change of `orders` (the feed assigns its token and times)."""
    return {
        "operationType": "update",
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": key},
        "updateDescription": {
            "updatedFields": {},
            "removedFields": [],
            "truncatedArrays": [],
            **description,
        },
    }


def _fold(events: list[Event]) -> tuple[dict[str, Any] | None, list[Finding]]:
    findings: list[Finding] = []
    state = None
    for e in events:
        state = apply_event(state, e, findings=findings)
    return state, findings


async def test_a_top_level_field_named_with_a_dot_is_not_set_as_the_masked_field(
    store: Store, clock: FakeClock
) -> None:
    """An outside tester: with `--redact card:XXX`, setting the top-level field named
    "card.num" (`disambiguatedPaths {"card.num": ["card.num"]}`) was stored as `card: XXX`,
    and the folded state gained a `card` the document never had."""
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "S2", "status": "x"})
    feed.inject(
        _update(
            "S2",
            {
                "updatedFields": {"card.num": "VALUE1"},
                "disambiguatedPaths": {"card.num": ["card.num"]},
            },
        )
    )
    await orders.insert_one({"_id": "S3", "card": {"num": "4111", "x.y": 0}})
    feed.inject(
        _update(
            "S3",
            {
                "updatedFields": {"card.x.y": 5, "card.num": "5500"},
                "disambiguatedPaths": {"card.x.y": ["card", "x.y"]},
            },
        )
    )
    await ingester(store, feed, clock, redact=_redactions("card:XXX")).run(until_idle=True)
    events = await assert_log_intact(store)
    s2 = [e for e in events if e.entity_key == "S2"]
    s3 = [e for e in events if e.entity_key == "S3"]
    assert s2[1].changes == {
        "updatedFields": {"card.num": "VALUE1"},
        "removedFields": [],
        "truncatedArrays": [],
        "disambiguatedPaths": {"card.num": ["card.num"]},
    }
    assert s2[1].changed_fields == ["card.num"]
    assert _fold(s2) == ({"_id": "S2", "status": "x", "card.num": "VALUE1"}, [])
    # beneath the mask: both keys cut to `card`, and the cut key's entry dropped
    assert s3[1].changes == {
        "updatedFields": {"card": "XXX"},
        "removedFields": [],
        "truncatedArrays": [],
    }
    assert _fold(s3) == ({"_id": "S3", "card": "XXX"}, [])
    assert "4111" not in repr(events) and "5500" not in repr(events)
