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
from eventstore.model import (
    COMMIT_SCHEME,
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


def check_text(name: str, value: str, limit: int) -> str:
    """A required free-text field: non-blank, at most `limit` characters, no control characters."""
    text = value.strip()
    if not text:
        raise HistoryError(f"{name} is required")
    if len(text) > limit:
        raise HistoryError(f"{name} has {len(text)} characters; at most {limit}")
    if any(ord(c) < 32 and c not in "\t" for c in text):
        raise HistoryError(f"{name} holds control characters")
    return text


class ErasureCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A request checked: the entity and the cleaned texts, or the request that already covers it."""

    entity_id: Any
    entity_key: str
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
        if len(events) < PAGE:
            break
        next_from = events[-1].version + 1
    checked = ErasureCheck(entity_id=entity_id, entity_key=entity_key, reason=reason, actor=actor)
    for queued in await store.erasures.queued():
        if queued.stream == stream and queued.entity_key == entity_key:
            return msgspec.structs.replace(
                checked, existing=ErasureOutcome(request=queued, already_queued=True)
            )
    if unerased == 0:
        done = await store.erasures.done_for(stream, entity_key)
        if done is not None:
            return msgspec.structs.replace(
                checked, existing=ErasureOutcome(request=done, already_erased=True)
            )
    return checked


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


__all__ = ["ErasureOutcome", "ErasureRefused", "check_text", "request_erasure"]
