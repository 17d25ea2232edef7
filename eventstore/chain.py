"""The two hash chains and their verification (pure).

- Per entity: `hash = SHA-256(canonical bytes of the event without hash and
  log_hash)`; the canonical bytes include `prev_hash`, the hash of the entity's
  previous version (GENESIS_HASH for version 1), so editing, removing or
  reordering an entity's events breaks the chain at that version.
- Global: `log_hash = SHA-256(previous log_hash || hash)` along `seq`, so a
  missing, inserted or reordered event anywhere breaks it; truncation is caught
  against a head (`seq`, `log_hash`) recorded elsewhere.

Canonical bytes are the BSON encoding of `codec.event_doc` (fixed field order;
sub-documents keep the order MongoDB reported; datetimes in milliseconds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import bson
import msgspec

from eventstore.codec import event_doc
from eventstore.keys import typed_key
from eventstore.model import GENESIS_HASH, Event, Head


def canonical_bytes(event: Event) -> bytes:
    """The bytes the entity hash covers: every stored field but `hash` and `log_hash`."""
    return bson.encode(event_doc(event, with_hashes=False))


def entity_hash(event: Event) -> str:
    """The entity-chain hash of an event (its `prev_hash` is part of the input)."""
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


def next_log_hash(prev_log_hash: str, event_hash: str) -> str:
    """The global chain link: SHA-256 of the previous log_hash and this event's hash."""
    return hashlib.sha256((prev_log_hash + event_hash).encode("ascii")).hexdigest()


def seal(event: Event, *, prev_hash: str, prev_log_hash: str) -> Event:
    """The event with `prev_hash`, `hash` and `log_hash` set."""
    linked = msgspec.structs.replace(event, prev_hash=prev_hash, hash="", log_hash="")
    h = entity_hash(linked)
    return msgspec.structs.replace(linked, hash=h, log_hash=next_log_hash(prev_log_hash, h))


class EntityVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Verification of one entity's chain."""

    valid: bool
    events_checked: int
    first_invalid_version: int | None = None
    reason: str | None = None


class LogVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Verification of the whole log along `seq`."""

    valid: bool
    events_checked: int
    first_invalid_seq: int | None = None
    reason: str | None = None
    head: Head = Head()
    head_matches: bool | None = None


class EntityChecker:
    """Checks one entity's events in version order, one at a time (pages of any size)."""

    def __init__(self) -> None:
        self.checked = 0
        self._prev = GENESIS_HASH
        self._expected = 1
        self.failure: EntityVerdict | None = None

    def feed(self, event: Event) -> bool:
        """Check the next event; False once the chain is broken (later events are ignored)."""
        if self.failure is not None:
            return False
        self.checked += 1
        problem = entity_problem(event, self._expected, self._prev)
        if problem is not None:
            first = self._expected if event.version > self._expected else event.version
            self.failure = EntityVerdict(
                valid=False,
                events_checked=self.checked,
                first_invalid_version=first,
                reason=problem,
            )
            return False
        self._prev, self._expected = event.hash, self._expected + 1
        return True

    def verdict(self) -> EntityVerdict:
        """The result so far."""
        return self.failure or EntityVerdict(valid=True, events_checked=self.checked)


def verify_entity(events: Iterable[Event]) -> EntityVerdict:
    """Check one entity's events (in version order): dense versions, links, hashes."""
    checker = EntityChecker()
    for event in events:
        if not checker.feed(event):
            break
    return checker.verdict()


def entity_problem(event: Event, expected_version: int, prev: str) -> str | None:
    """Why `event` cannot follow (expected_version - 1, prev), or None when it does."""
    if event.version > expected_version:
        return f"missing version {expected_version} (next stored is {event.version})"
    if event.version < expected_version:
        return f"version {event.version} stored twice or out of order"
    if event.prev_hash != prev:
        return f"prev_hash of version {event.version} does not link to version {event.version - 1}"
    if entity_hash(event) != event.hash:
        return f"hash of version {event.version} does not match its content"
    return None


class LogVerifier:
    """Recomputes both chains along `seq`, one event at a time (constant work per event).

    Feed events in `seq` order; `verdict()` compares the end against a head
    recorded elsewhere (the checkpoint's, or one exported by the operator).
    """

    def __init__(self, expected_head: Head | None = None) -> None:
        self._expected = expected_head
        self._expected_seen: bool | None = None
        self._checked = 0
        self._head = Head()
        self._entity_hashes: dict[tuple[str, str], tuple[int, str]] = {}
        self._first_invalid_seq: int | None = None
        self._reason: str | None = None

    @property
    def failed(self) -> bool:
        """True once a break was found (later events are not examined)."""
        return self._first_invalid_seq is not None

    def feed(self, event: Event) -> None:
        """Check the next event of the log."""
        if self.failed:
            return
        self._checked += 1
        expected = self._head.seq + 1
        problem: str | None = None
        if event.seq != expected:
            kind = "missing" if event.seq > expected else "duplicated or reordered"
            problem = f"seq {expected} {kind} (found seq {event.seq})"
        elif entity_hash(event) != event.hash:
            problem = f"hash of seq {event.seq} does not match its content"
        elif next_log_hash(self._head.log_hash, event.hash) != event.log_hash:
            problem = f"log_hash of seq {event.seq} does not chain from seq {event.seq - 1}"
        else:
            key = (event.stream, typed_key(event.entity_id))
            last = self._entity_hashes.get(key)
            want_version, want_prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            if event.version != want_version:
                problem = (
                    f"seq {event.seq} breaks the chain of {event.stream}/{event.entity_key}: "
                    f"version {event.version} where {want_version} was due"
                )
            elif event.prev_hash != want_prev:
                problem = (
                    f"seq {event.seq}: prev_hash of {event.stream}/{event.entity_key} "
                    f"version {event.version} does not link to version {want_version - 1}"
                )
            self._entity_hashes[key] = (event.version, event.hash)
        if problem is not None:
            self._first_invalid_seq = expected if event.seq > expected else event.seq
            self._reason = problem
            return
        self._head = Head(seq=event.seq, log_hash=event.log_hash)
        if self._expected is not None and event.seq == self._expected.seq:
            self._expected_seen = event.log_hash == self._expected.log_hash

    def verdict(self) -> LogVerdict:
        """The result; `head_matches` is False when the log ends before or off the expected head.

        The log may have grown past the expected head: it must pass through it.
        """
        matches: bool | None = None
        reason = self._reason
        first = self._first_invalid_seq
        expected = self._expected
        if expected is not None and expected.seq == 0:
            matches = True
        elif expected is not None and not self.failed:
            matches = bool(self._expected_seen)
            if self._expected_seen is None:
                reason = (
                    f"log ends at seq {self._head.seq} but the recorded head is "
                    f"seq {expected.seq}: truncated"
                )
                first = self._head.seq + 1
            elif not self._expected_seen:
                reason = f"log_hash at seq {expected.seq} differs from the recorded head"
                first = expected.seq
        elif expected is not None:
            matches = bool(self._expected_seen)
        valid = not self.failed and matches is not False
        return LogVerdict(
            valid=valid,
            events_checked=self._checked,
            first_invalid_seq=first,
            reason=reason,
            head=self._head,
            head_matches=matches,
        )


__all__ = [
    "EntityChecker",
    "EntityVerdict",
    "LogVerdict",
    "LogVerifier",
    "canonical_bytes",
    "entity_hash",
    "next_log_hash",
    "seal",
    "verify_entity",
]
