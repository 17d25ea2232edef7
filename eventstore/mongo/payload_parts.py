"""Events too large for one MongoDB document: their payload is stored in parts beside them.

MongoDB stores no document over its `maxBsonObjectSize` (16 MiB). An event can be
larger than the document it records: a replace of a 10 MB document with pre-images
on carries `document` and `before` (MongoDB splits such a change event with
`$changeStreamSplitLargeEvent`; the source puts it together again). The server
refuses to insert it (BSONObjectTooLarge, code 10334), and capture would stop at it
for ever.

Such an event is stored with its payload (`document`, `changes`, `before`) moved
into `event_payloads`: the payload's canonical BSON, cut into parts of half the
limit, one document each. The event's own document keeps every other field, with
the payload fields null and `payload_parts: {count, bytes, sha256}`. Reads put the
payload back before decoding, so an event reads back whole and equal, its hashes
unchanged: this is storage only, invisible above the adapter.

Invariants:
- Parts are written before the event that names them: a stored event's parts are
  stored (a crash in between leaves parts no event names, harmless).
- A part's `_id` holds the payload's digest, so parts of one event id written by
  two attempts with different payloads (a retry under other redaction settings)
  never mix: the stored event names its own.
- Reading checks count, size and digest: a missing or altered part is an error,
  never a silently different payload.
- An erasure removes an entity's parts with its payloads (`erase_payloads`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import bson
from bson import Binary, Int64
from bson.codec_options import CodecOptions

from eventstore.model import PAYLOAD_SCHEME

# The event document's field naming its parts.
PARTS_FIELD: Final = "payload_parts"
PAYLOAD_FIELDS: Final = ("document", "changes", "before")


class PayloadPartsError(Exception):
    """An event's stored payload parts are missing or do not match the event that names them."""


class EventTooLarge(Exception):
    """An event that does not fit one document even with its payload stored apart."""


def part_bytes(limit: int) -> int:
    """The size parts are cut to: half the limit leaves room for a part's own fields."""
    return max(1, limit // 2)


def split(
    doc: dict[str, Any], *, limit: int, codec_options: CodecOptions[Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The document to store for an event, and the parts to store before it (none when it fits).

    Raises EventTooLarge when the event does not fit even without its payload.
    """
    size = len(bson.encode(doc, codec_options=codec_options))
    if size <= limit:
        return doc, []
    payload = bson.encode({f: doc[f] for f in PAYLOAD_FIELDS}, codec_options=codec_options)
    digest = hashlib.sha256(payload).hexdigest()
    step = part_bytes(limit)
    parts = [
        {
            "_id": part_id(doc["_id"], digest, n),
            "event": doc["_id"],
            "seq": doc["seq"],
            "stream": doc["stream"],
            "entity_id": doc["entity_id"],
            # What an erasure selects by: it removes COMMIT_SCHEME payloads only.
            "hash_scheme": doc.get("hash_scheme", PAYLOAD_SCHEME),
            "n": n,
            "data": Binary(payload[at : at + step]),
        }
        for n, at in enumerate(range(0, len(payload), step))
    ]
    slim = {**doc, **dict.fromkeys(PAYLOAD_FIELDS)}
    slim[PARTS_FIELD] = {"count": len(parts), "bytes": Int64(len(payload)), "sha256": digest}
    slim_size = len(bson.encode(slim, codec_options=codec_options))
    if slim_size > limit:
        raise EventTooLarge(
            f"event {doc['_id']} (seq {doc['seq']}, {doc['stream']}/{doc['entity_key']} "
            f"version {doc['version']}) is {slim_size} bytes even with its payload stored "
            f"apart, over MongoDB's limit of {limit} bytes per document "
            f"(its changed_fields name {len(doc.get('changed_fields') or [])} fields)"
        )
    return slim, parts


def part_id(event_id: str, digest: str, n: int) -> str:
    """The `_id` of part `n` of an event's payload with this digest."""
    return f"{event_id}:{digest}:{n}"


def wanted_parts(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The part ids the stored event documents name (erased events name none any more)."""
    out: list[str] = []
    for doc in docs:
        named = doc.get(PARTS_FIELD)
        if named is None or doc.get("erased_by") is not None:
            continue
        out.extend(part_id(doc["_id"], named["sha256"], n) for n in range(int(named["count"])))
    return out


def join(
    docs: Sequence[dict[str, Any]],
    parts: Mapping[str, Mapping[str, Any]],
    *,
    codec_options: CodecOptions[Any],
) -> None:
    """Put the payload back into each event document that names parts (in place).

    `parts` are the part documents read, by `_id`. Raises PayloadPartsError when one
    is missing or the payload they make is not the one the event names.
    """
    for doc in docs:
        named = doc.get(PARTS_FIELD)
        if named is None or doc.get("erased_by") is not None:
            continue
        chunks = []
        for n in range(int(named["count"])):
            part = parts.get(part_id(doc["_id"], named["sha256"], n))
            if part is None:
                raise PayloadPartsError(
                    f"event {doc['_id']} (seq {doc['seq']}): part {n} of its payload "
                    f"({named['count']} parts) is missing from event_payloads"
                )
            chunks.append(bytes(part["data"]))
        payload = b"".join(chunks)
        if len(payload) != int(named["bytes"]) or (
            hashlib.sha256(payload).hexdigest() != named["sha256"]
        ):
            raise PayloadPartsError(
                f"event {doc['_id']} (seq {doc['seq']}): its payload parts do not make the "
                "payload it names (size or SHA-256 differs)"
            )
        doc.update(bson.decode(payload, codec_options=codec_options))
        del doc[PARTS_FIELD]


__all__ = [
    "PARTS_FIELD",
    "EventTooLarge",
    "PayloadPartsError",
    "join",
    "part_bytes",
    "split",
    "wanted_parts",
]
