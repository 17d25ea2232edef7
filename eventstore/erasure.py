"""Erasure requests: checked and queued here, carried out by the capturing ingester.

An erasure removes the payload (document, changes, before) and the salt of every
COMMIT_SCHEME event of one entity, purges what was derived from them, and is
recorded by a stream-level `erased` event (see `Ingester._erase`). The hashes
cover a salted commitment of the payload, so both chains, the Merkle tree, every
checkpoint and every proof stay valid. Events written under PAYLOAD_SCHEME (before
erasure existed) hash the payload itself: they cannot be erased.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from eventstore.history import ErasureRefused, History, HistoryError
from eventstore.keys import typed_key
from eventstore.model import (
    COMMIT_SCHEME,
    ERASED,
    PAYLOAD_SCHEME,
    STREAM_ENTITY_ID,
    STREAM_KEY,
    ErasureRequest,
)
from eventstore.ports import Store

# Events per read while checking an entity before queueing its erasure.
PAGE: Final = 1000
MAX_REASON: Final = 2000
MAX_ACTOR: Final = 200


class ErasureOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a request led to: a new or still queued request, or one already carried out."""

    request: ErasureRequest
    already_erased: bool = False
    already_queued: bool = False


def refused_character(char: str) -> bool:
    """True for a character free text the log keeps for good may not hold.

    C0 controls but tab, DEL and the C1 controls (U+0080-U+009F: NEL, CSI...), and the
    bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069), which make
    the text after them read in another order than it is stored.
    """
    code = ord(char)
    return (
        (code < 0x20 and char != "\t")
        or 0x7F <= code <= 0x9F
        or 0x202A <= code <= 0x202E
        or 0x2066 <= code <= 0x2069
    )


def _surrogate(text: str) -> bool:
    """True when `text` holds a lone surrogate: bytes that were not UTF-8, as Python
    decodes a command line (`surrogateescape`); no store can encode it."""
    return any("\ud800" <= c <= "\udfff" for c in text)


def text_fault(value: str, limit: int) -> str | None:
    """What is wrong with a required free-text value (the API's words), or None.

    The value is taken trimmed, as it is recorded (`check_text`, the same rule in the
    CLI's words): empty, longer than `limit` characters, or holding a
    `refused_character` is refused.
    """
    text = value.strip()
    if not text:
        return "may not be empty"
    if len(text) > limit:
        return f"at most {limit} characters, got {len(text)}"
    if _surrogate(text):
        return "not valid UTF-8"
    bad = next((c for c in text if refused_character(c)), None)
    if bad is not None:
        return f"holds control characters (U+{ord(bad):04X})"
    return None


def check_text(name: str, value: str, limit: int) -> str:
    """A required free-text field: non-blank, at most `limit` characters, no control characters.

    The characters refused are `refused_character`'s (the rules of `text_fault`).
    """
    text = value.strip()
    if not text:
        raise HistoryError(f"{name} is required")
    if len(text) > limit:
        raise HistoryError(f"{name} has {len(text)} characters; at most {limit}")
    if _surrogate(text):
        raise HistoryError(f"{name} is not valid UTF-8")
    bad = next((c for c in text if refused_character(c)), None)
    if bad is not None:
        raise HistoryError(f"{name} holds control characters (U+{ord(bad):04X})")
    return text


class ErasureCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A request checked: the entity and the cleaned texts, or the request that already covers it."""

    entity_id: Any
    entity_key: str
    # The key that names the entity alone (`int:42` where `42` is also a string `_id`).
    typed_key: str
    reason: str
    actor: str
    existing: ErasureOutcome | None = None


async def check_erasure(
    store: Store, history: History, *, stream: str, key: str, reason: str, actor: str
) -> ErasureCheck:
    """Everything that could refuse a request, without queueing it.

    Raises UnknownEntity, AmbiguousKey, ErasureRefused or HistoryError (a bad reason
    or actor). `existing` is set when nothing new would be queued: a request for the
    entity is queued, or every event of it is already erased.
    """
    reason = check_text("reason", reason, MAX_REASON)
    actor = check_text("actor", actor, MAX_ACTOR)
    refused = ErasureRefused(
        f"{STREAM_KEY} is the stream's own record, not an entity: not erasable"
    )
    if key == STREAM_KEY:
        raise refused
    entity_id = await history.resolve(stream, key)
    if entity_id is STREAM_ENTITY_ID:  # the record by another key (`json:null`): as refused
        raise refused
    unerased = 0
    entity_key = key
    newest_erasure = 0  # the seq of the newest `erased` event that erased one of its events
    next_from = 1
    while True:
        events = await store.events.read_entity(
            stream, entity_id, from_version=next_from, limit=PAGE
        )
        for event in events:
            entity_key = event.entity_key
            if event.hash_scheme == PAYLOAD_SCHEME:
                raise ErasureRefused(
                    f"version {event.version} of {stream}/{event.entity_key} was written under "
                    "hash scheme 1, whose hash covers the payload itself: removing it would "
                    "break the chain, so this entity cannot be erased"
                )
            if event.hash_scheme == COMMIT_SCHEME and event.salt is not None:
                unerased += 1
            if event.erased_by is not None:
                newest_erasure = max(newest_erasure, event.erased_by)
        if len(events) < PAGE:
            break
        next_from = events[-1].version + 1
    entity = typed_key(entity_id)
    checked = ErasureCheck(
        entity_id=entity_id,
        entity_key=entity_key,
        typed_key=entity,
        reason=reason,
        actor=actor,
    )
    # By the entity, never by its bare key: `int:42` and `str:42` are both `42`.
    for queued in await store.erasures.queued():
        if queued.stream == stream and typed_key(queued.entity_id) == entity:
            return msgspec.structs.replace(
                checked, existing=ErasureOutcome(request=queued, already_queued=True)
            )
    if unerased == 0:
        done = await _erased_by(store, newest_erasure)
        if done is None:
            done = await store.erasures.done_for(stream, entity_key)
        if done is not None and done.stream == stream and typed_key(done.entity_id) == entity:
            return msgspec.structs.replace(
                checked, existing=ErasureOutcome(request=done, already_erased=True)
            )
    return checked


async def _erased_by(store: Store, seq: int) -> ErasureRequest | None:
    """The carried-out request the `erased` event at `seq` records (None: none found)."""
    if seq <= 0:
        return None
    found = await store.events.read(after_seq=seq - 1, limit=1)
    if not found or found[0].seq != seq or found[0].type != ERASED:
        return None
    request_id = (found[0].document or {}).get("request")
    if not isinstance(request_id, str):
        return None
    request = await store.erasures.get(request_id)
    return request if request is not None and request.state == "done" else None


async def request_erasure(
    store: Store,
    history: History,
    *,
    stream: str,
    key: str,
    reason: str,
    actor: str,
    now: datetime,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> ErasureOutcome:
    """Queue the erasure of one entity, or say why not (UnknownEntity, AmbiguousKey, ErasureRefused).

    A repeated request changes nothing: an entity whose events are all erased
    already answers with the request that erased them, one queued answers with it.
    """
    checked = await check_erasure(
        store, history, stream=stream, key=key, reason=reason, actor=actor
    )
    if checked.existing is not None:
        return checked.existing
    request = ErasureRequest(
        id=new_id(),
        stream=stream,
        entity_id=checked.entity_id,
        entity_key=checked.entity_key,
        reason=checked.reason,
        actor=checked.actor,
        requested_at=now,
    )
    await store.erasures.create(request)
    return ErasureOutcome(request=request)


__all__ = [
    "ErasureOutcome",
    "ErasureRefused",
    "check_text",
    "refused_character",
    "request_erasure",
    "text_fault",
]
