"""Splitting an event too large for one document into payload parts, and joining them (pure)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import Int64
from bson.codec_options import CodecOptions

from eventstore.codec import event_doc
from eventstore.model import COMMIT_SCHEME
from eventstore.mongo.payload_parts import (
    PARTS_FIELD,
    EventTooLarge,
    PayloadPartsError,
    join,
    part_bytes,
    split,
    wanted_parts,
)
from tests.helpers import make_event

OPTIONS: CodecOptions[Any] = CodecOptions(tz_aware=True, tzinfo=UTC)
WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def big_doc(size: int = 3000, **fields: Any) -> dict[str, Any]:
    """The stored document of a replace whose document and pre-image hold `size` bytes each."""
    event = make_event(
        seq=7,
        entity_id="A",
        version=2,
        type="replaced",
        document={"_id": "A", "note": "x" * size, "at": WHEN},
        before={"_id": "A", "note": "y" * size},
        changed_fields=["_id", "note", "at"],
    )
    return {**event_doc(event), **fields}


def size_of(doc: dict[str, Any]) -> int:
    return len(bson.encode(doc, codec_options=OPTIONS))


def test_a_document_within_the_limit_is_stored_as_it_is() -> None:
    doc = big_doc()
    assert split(doc, limit=size_of(doc), codec_options=OPTIONS) == (doc, [])


def test_parts_carry_the_payload_cut_at_half_the_limit_and_what_an_erasure_selects_by() -> None:
    doc = big_doc(hash_scheme=COMMIT_SCHEME)
    slim, parts = split(doc, limit=4096, codec_options=OPTIONS)

    payload = bson.encode(
        {"document": doc["document"], "changes": None, "before": doc["before"]},
        codec_options=OPTIONS,
    )
    digest = hashlib.sha256(payload).hexdigest()
    assert [len(p["data"]) for p in parts] == [2048, 2048, len(payload) - 4096]
    assert b"".join(bytes(p["data"]) for p in parts) == payload
    assert [{k: v for k, v in p.items() if k != "data"} for p in parts] == [
        {
            "_id": f"{doc['_id']}:{digest}:{n}",
            "event": doc["_id"],
            "seq": doc["seq"],
            "stream": "orders",
            "entity_id": "A",
            "hash_scheme": COMMIT_SCHEME,
            "n": n,
        }
        for n in range(3)
    ]
    assert {k: v for k, v in slim.items() if k not in ("document", "before", PARTS_FIELD)} == {
        k: v for k, v in doc.items() if k not in ("document", "before")
    }
    assert slim["document"] is slim["changes"] is slim["before"] is None
    assert slim[PARTS_FIELD] == {"count": 3, "bytes": Int64(len(payload)), "sha256": digest}
    assert size_of(slim) <= 4096
    # A log written before erasure existed: its parts say so (an erasure never selects them).
    _, old = split(big_doc(), limit=4096, codec_options=OPTIONS)
    assert {p["hash_scheme"] for p in old} == {1}


def test_the_limit_is_inclusive_and_an_event_too_large_without_its_payload_is_named() -> None:
    many = [f"field{n}" for n in range(300)]
    doc = big_doc(changed_fields=many)
    slim, _ = split(doc, limit=size_of(doc) - 1, codec_options=OPTIONS)
    exact = size_of(slim)
    at_limit, parts = split(doc, limit=exact, codec_options=OPTIONS)
    assert size_of(at_limit) == exact and at_limit[PARTS_FIELD]["count"] == len(parts)
    with pytest.raises(EventTooLarge) as refused:
        split(doc, limit=exact - 1, codec_options=OPTIONS)
    assert str(refused.value) == (
        f"event {doc['_id']} (seq 7, orders/A version 2) is {exact} bytes even with its "
        f"payload stored apart, over MongoDB's limit of {exact - 1} bytes per document "
        "(its changed_fields name 300 fields)"
    )


def test_part_size_is_half_the_limit_and_never_zero() -> None:
    assert [part_bytes(n) for n in (1, 2, 3, 16 * 1024 * 1024)] == [1, 1, 1, 8 * 1024 * 1024]


def test_joined_parts_give_back_the_payload_with_the_collections_codec() -> None:
    doc = big_doc()
    slim, parts = split(doc, limit=4096, codec_options=OPTIONS)
    assert wanted_parts([slim]) == [p["_id"] for p in parts]
    stored = {p["_id"]: p for p in parts}

    join([slim], stored, codec_options=OPTIONS)

    assert slim == doc  # the payload back in place, the marker gone
    assert slim["document"]["at"] == WHEN  # tz-aware, as the collection decodes


def test_an_erased_event_names_no_parts_and_is_left_as_it_is() -> None:
    slim, _ = split(big_doc(), limit=4096, codec_options=OPTIONS)
    erased = {**slim, "erased_by": Int64(9)}
    assert wanted_parts([erased]) == []
    join([erased], {}, codec_options=OPTIONS)
    assert erased[PARTS_FIELD]["count"] == 3 and erased["document"] is None


def test_a_missing_or_altered_part_is_an_error_naming_the_event() -> None:
    doc = big_doc()
    slim, parts = split(doc, limit=4096, codec_options=OPTIONS)
    stored = {p["_id"]: p for p in parts[:2]}
    with pytest.raises(PayloadPartsError) as missing:
        join([dict(slim)], stored, codec_options=OPTIONS)
    assert str(missing.value) == (
        f"event {doc['_id']} (seq 7): part 2 of its payload (3 parts) is missing from "
        "event_payloads"
    )
    altered = {p["_id"]: p for p in parts}
    last = parts[2]
    altered[last["_id"]] = {**last, "data": bson.Binary(b"z" * len(last["data"]))}
    with pytest.raises(PayloadPartsError) as changed:
        join([dict(slim)], altered, codec_options=OPTIONS)
    assert str(changed.value) == (
        f"event {doc['_id']} (seq 7): its payload parts do not make the payload it names "
        "(size or SHA-256 differs)"
    )
    short = {**altered, last["_id"]: {**last, "data": bson.Binary(bytes(last["data"])[:-1])}}
    with pytest.raises(PayloadPartsError, match="size or SHA-256 differs"):
        join([dict(slim)], short, codec_options=OPTIONS)
