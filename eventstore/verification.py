"""Verification over the store: both hash chains recomputed, one page of the log in memory at a time.

The checks themselves are pure (`chain.py`); this module reads the log through
the `EventLog` port in bounded pages: an entity by versions, a stream or the
whole log along `seq`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec

from eventstore.chain import (
    EntityChecker,
    EntityVerdict,
    ErasureClaims,
    LogVerdict,
    LogVerifier,
    entity_problem,
    erasure_names,
)
from eventstore.keys import typed_key
from eventstore.model import GENESIS_HASH, Event, Head
from eventstore.ports import EventLog

# Events per read.
PAGE: Final = 1000


class InvalidEntity(msgspec.Struct, frozen=True, kw_only=True):
    """An entity whose chain is broken, and where."""

    entity_key: str
    first_invalid_version: int
    reason: str


class StreamVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Verification of every entity chain of a stream."""

    valid: bool
    entities_checked: int
    events_checked: int
    invalid: list[InvalidEntity]
    # Events whose payload an erasure removed, each backed by its `erased` event.
    events_erased: int = 0


async def verify_entity(
    log: EventLog, stream: str, entity_id: Any, *, page: int = PAGE
) -> EntityVerdict | None:
    """Recompute one entity's chain in pages of versions; None when it has no events."""
    checker = EntityChecker()
    next_from = 1
    while True:
        events = await log.read_entity(stream, entity_id, from_version=next_from, limit=page)
        for event in events:
            if not checker.feed(event):
                return checker.verdict()
        if len(events) < page:
            break
        next_from = events[-1].version + 1
    if not checker.checked:
        return None
    await _check_erasures(log, checker, stream)
    return checker.verdict()


async def _check_erasures(log: EventLog, checker: EntityChecker, stream: str) -> None:
    """Each erased event must name an `erased` event that records erasing this entity."""
    records: dict[int, Event | None] = {}
    for erased in checker.erased:
        if erased.erased_by not in records:
            found = await log.read(after_seq=erased.erased_by - 1, limit=1)
            records[erased.erased_by] = (
                found[0] if found and found[0].seq == erased.erased_by else None
            )
        record = records[erased.erased_by]
        key = checker.entity_key or ""
        if record is None or not erasure_names(record, stream, key):
            checker.fail(
                erased.version,
                f"payload of version {erased.version} is missing without an erased record "
                f"(seq {erased.erased_by} does not record erasing {stream}/{key})",
            )
            return


async def verify_stream(log: EventLog, stream: str, *, page: int = PAGE) -> StreamVerdict:
    """Recompute every entity chain of a stream in one pass along `seq`.

    Memory: one page of events, and the last verified (version, hash) per entity.
    """
    last: dict[str, tuple[int, str]] = {}
    bad: dict[str, InvalidEntity] = {}
    checked = 0
    claims = ErasureClaims()
    async for event in all_events(log, page=page):
        for claimant, why in claims.feed(event):
            _unbacked(claimant, why, stream, bad, last)
        if event.stream != stream:
            continue
        checked += 1
        tk = typed_key(event.entity_id)
        if tk in bad:
            continue  # the first break of an entity is the one to report
        version, prev = last.get(tk, (0, GENESIS_HASH))
        problem = entity_problem(event, version + 1, prev)
        if problem is None:
            last[tk] = (event.version, event.hash)
            continue
        first = version + 1 if event.version > version + 1 else event.version
        bad[tk] = InvalidEntity(
            entity_key=event.entity_key, first_invalid_version=first, reason=problem
        )
        last.pop(tk, None)
    for claimant, why in claims.unsettled():
        _unbacked(claimant, why, stream, bad, last)
    return StreamVerdict(
        valid=not bad,
        entities_checked=len(last) + len(bad),
        events_checked=checked,
        invalid=list(bad.values()),
        events_erased=claims.count_in(stream),
    )


def _unbacked(
    event: Event,
    why: str,
    stream: str,
    bad: dict[str, InvalidEntity],
    last: dict[str, tuple[int, str]],
) -> None:
    """Report an erasure claim nothing backs as the entity's break (unless one came first)."""
    tk = typed_key(event.entity_id)
    if event.stream != stream or tk in bad:
        return
    bad[tk] = InvalidEntity(
        entity_key=event.entity_key, first_invalid_version=event.version, reason=why
    )
    last.pop(tk, None)


async def verify_log(log: EventLog, expected_head: Head | None, *, page: int = PAGE) -> LogVerdict:
    """Recompute both chains along `seq`; the log must pass through `expected_head` (if given)."""
    verifier = LogVerifier(expected_head)
    async for event in all_events(log, page=page):
        verifier.feed(event)
        if verifier.failed:
            break
    return verifier.verdict()


async def all_events(log: EventLog, *, page: int = PAGE) -> AsyncIterator[Event]:
    """The whole log in `seq` order, one page in memory at a time."""
    after = 0
    while True:
        events = await log.read(after_seq=after, limit=page)
        for e in events:
            yield e
        if len(events) < page:
            return
        after = events[-1].seq


__all__ = [
    "PAGE",
    "InvalidEntity",
    "StreamVerdict",
    "all_events",
    "verify_entity",
    "verify_log",
    "verify_stream",
]
