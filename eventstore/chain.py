"""The two hash chains and their verification (pure).

- Per entity: `hash = SHA-256(canonical bytes of the event without hash and
  log_hash)`; the canonical bytes include `prev_hash`, the hash of the entity's
  previous version (GENESIS_HASH for version 1), so editing, removing or
  reordering an entity's events breaks the chain at that version.
- Global: `log_hash = SHA-256(previous log_hash || hash)` along `seq`, over the two
  hashes' hex text in ASCII (GENESIS_HASH, 64 "0"s, before seq 1), so a
  missing, inserted or reordered event anywhere breaks it; truncation is caught
  against a head (`seq`, `log_hash`) recorded elsewhere.

Canonical bytes are the BSON encoding of `codec.event_doc` (fixed field order;
sub-documents keep the order MongoDB reported; datetimes in milliseconds).

Two hash schemes (`Event.hash_scheme`), each verified under its own rule:
- PAYLOAD_SCHEME (logs written before erasure existed): the canonical bytes hold
  the payload (document, changes, before) itself.
- COMMIT_SCHEME: they hold `commit = SHA-256(salt ‖ BSON {document, changes,
  before})` instead, with a random 32-byte salt per event stored beside the
  payload. Removing payload and salt (an erasure) leaves `hash`, `log_hash`, the
  Merkle tree and every proof valid; what remains reveals nothing guessable. The
  payload of an event that still has its salt must match `commit`; an event
  without its salt must name the `erased` event that recorded its erasure
  (`erased_by`), else the removal is tampering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Final

import bson
import msgspec

from eventstore.codec import committed_doc, event_doc, payload_doc
from eventstore.keys import candidates, is_typed, typed_key
from eventstore.model import COMMIT_SCHEME, ERASED, GENESIS_HASH, PAYLOAD_SCHEME, Event, Head

SALT_BYTES: Final = 32


def canonical_bytes(event: Event) -> bytes:
    """The bytes the entity hash covers: every stored field but `hash` and `log_hash`
    (for COMMIT_SCHEME, `commit` in the place of payload and salt)."""
    if event.hash_scheme == PAYLOAD_SCHEME:
        return bson.encode(event_doc(event, with_hashes=False))
    return bson.encode(committed_doc(event))


def payload_commit(event: Event, salt: str) -> str:
    """SHA-256(salt ‖ canonical BSON of {document, changes, before}), hex."""
    return hashlib.sha256(bytes.fromhex(salt) + bson.encode(payload_doc(event))).hexdigest()


def entity_hash(event: Event) -> str:
    """The entity-chain hash of an event (its `prev_hash` is part of the input)."""
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


def next_log_hash(prev_log_hash: str, event_hash: str) -> str:
    """The global chain link: SHA-256 of the previous log_hash and this event's hash."""
    return hashlib.sha256((prev_log_hash + event_hash).encode("ascii")).hexdigest()


def seal(event: Event, *, prev_hash: str, prev_log_hash: str, salt: bytes | None = None) -> Event:
    """The event with `prev_hash`, `hash` and `log_hash` set.

    With a `salt` (SALT_BYTES random bytes) it is sealed under COMMIT_SCHEME;
    without, under PAYLOAD_SCHEME (the scheme of logs written before erasure).
    """
    if salt is None:
        linked = msgspec.structs.replace(event, prev_hash=prev_hash, hash="", log_hash="")
    else:
        if len(salt) != SALT_BYTES:
            raise ValueError(f"a salt has {SALT_BYTES} bytes, not {len(salt)}")
        # One copy: the commitment needs only the payload, which the copy keeps as is.
        commit = hashlib.sha256(salt + bson.encode(payload_doc(event))).hexdigest()
        linked = msgspec.structs.replace(
            event,
            prev_hash=prev_hash,
            hash="",
            log_hash="",
            hash_scheme=COMMIT_SCHEME,
            salt=salt.hex(),
            commit=commit,
            erased_by=None,
        )
    h = entity_hash(linked)
    return msgspec.structs.replace(linked, hash=h, log_hash=next_log_hash(prev_log_hash, h))


class ErasedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event whose payload an erasure removed: its hashes hold, its data is gone."""

    seq: int
    version: int
    erased_by: int  # the seq of the `erased` event that recorded it


class EntityVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Verification of one entity's chain (`erased`: events erased, not tampered)."""

    valid: bool
    events_checked: int
    first_invalid_version: int | None = None
    reason: str | None = None
    erased: list[ErasedEvent] = []
    # The latest stored checkpoint, held to the entity's newest event inside it.
    checkpoint: CheckpointCheck | None = None


class CheckpointCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The whole log held to the latest stored checkpoint (no key: the signature is not checked).

    `matches` is True when the root of the first `size` events, recomputed from
    their hashes, is the checkpoint's root; `signed_by` names the signature's key
    (`name+keyid hex`) as the note claims it, None for an unsigned checkpoint.

    For one stream or entity, `seq` is its newest event inside the checkpoint, the
    one held to it; `pending` is True when none of its events is inside yet (nothing
    to hold: `matches` is False without meaning tampering).
    """

    size: int
    root: str
    signed: bool
    signed_by: str | None = None
    matches: bool
    reason: str
    seq: int | None = None
    pending: bool = False

    @property
    def holds(self) -> bool:
        """Nothing in the checkpoint contradicts the events (it matches, or has none yet)."""
        return self.matches or self.pending


class LogVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Verification of the whole log along `seq`."""

    valid: bool
    events_checked: int
    first_invalid_seq: int | None = None
    reason: str | None = None
    head: Head = Head()
    head_matches: bool | None = None
    # Events whose payload an erasure removed, each backed by its `erased` event.
    events_erased: int = 0
    # The latest stored checkpoint, held to the events (None: none made yet, or not asked).
    checkpoint: CheckpointCheck | None = None


class EntityChecker:
    """Checks one entity's events in version order, one at a time (pages of any size)."""

    def __init__(self) -> None:
        self.checked = 0
        self._prev = GENESIS_HASH
        self._expected = 1
        self.failure: EntityVerdict | None = None
        self.erased: list[ErasedEvent] = []
        self.entity_key: str | None = None
        self._seq = 0  # the seq of the last version checked: each later version's is higher

    def feed(self, event: Event) -> bool:
        """Check the next event; False once the chain is broken (later events are ignored)."""
        if self.failure is not None:
            return False
        self.checked += 1
        self.entity_key = event.entity_key
        problem = entity_problem(event, self._expected, self._prev)
        if problem is not None:
            first = self._expected if event.version > self._expected else event.version
            self.fail(first, problem)
            return False
        if event.seq <= self._seq:
            # Versions are appended in seq order: a version at or before its predecessor's
            # seq was moved (a later version forged onto an earlier seq links and hashes).
            self.fail(
                event.version,
                f"version {event.version} has seq {event.seq}, not after version"
                f" {event.version - 1}'s seq {self._seq}",
            )
            return False
        self._seq = event.seq
        if event.erased_by is not None:
            self.erased.append(
                ErasedEvent(seq=event.seq, version=event.version, erased_by=event.erased_by)
            )
        self._prev, self._expected = event.hash, self._expected + 1
        return True

    def fail(self, version: int, reason: str) -> None:
        """Record a break found outside the chain (an erasure claim nothing backs)."""
        if self.failure is None:
            self.failure = EntityVerdict(
                valid=False,
                events_checked=self.checked,
                first_invalid_version=version,
                reason=reason,
                erased=list(self.erased),
            )

    def verdict(self) -> EntityVerdict:
        """The result so far."""
        return self.failure or EntityVerdict(
            valid=True, events_checked=self.checked, erased=list(self.erased)
        )


def verify_entity(events: Iterable[Event]) -> EntityVerdict:
    """Check one entity's events (in version order): dense versions, links, hashes, seq order."""
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
    return payload_problem(event, f"version {event.version}")


def payload_problem(event: Event, name: str) -> str | None:
    """Why a COMMIT_SCHEME event's payload does not match its `commit`, or None.

    An erased event (no salt, no payload, `erased_by` set) passes here; the
    `erased` event it names is checked by the caller (`ErasureClaims`).
    """
    if event.hash_scheme == PAYLOAD_SCHEME:
        return None if event.erased_by is None else f"{name} claims an erasure under the old scheme"
    if event.hash_scheme != COMMIT_SCHEME:
        return f"{name} has unknown hash scheme {event.hash_scheme}"
    if event.salt is None:
        if event.erased_by is None:
            return f"payload of {name} is missing without an erased record"
        if event.document is not None or event.changes is not None or event.before is not None:
            return f"{name} is marked erased but still holds a payload without its salt"
        if event.erased_by <= event.seq:
            return f"{name} names erased event seq {event.erased_by}, which does not follow it"
        return None
    if event.erased_by is not None:
        return f"{name} is marked erased but keeps its salt"
    try:
        ok = payload_commit(event, event.salt) == event.commit
    except ValueError:
        ok = False
    # Worded as for the old scheme: the hashed content (through its commit) was altered.
    return (
        None
        if ok
        else f"hash of {name} does not match its content (payload differs from its commit)"
    )


def shown_entity(entity_key: str, entity_id: Any) -> str:
    """An entity's key in a verdict's words: its stored key, unless that bare key could
    name another value (`42`: the integer or the string) or reads as typed (the string
    "int:5"): then its typed key (`int:42`, `str:int:5`). No look-up."""
    if is_typed(entity_key) or len(candidates(entity_key)) > 1:
        return typed_key(entity_id)
    return entity_key


# `erasure_names` without the entity's `_id`: by `entity_key` alone.
_NO_ID: Final[Any] = object()


def erasure_names(erased: Event, stream: str, entity_key: str, *, entity_id: Any = _NO_ID) -> bool:
    """True when `erased` is the `erased` event of `stream` that records erasing this entity.

    By its `typed_key` when the record has one (`int:42` is not the string "42", though
    both are `42`; by value, as the entity is, whatever key each event was stored with);
    a record written before it had one names the entity by `entity_key`.
    """
    doc = erased.document or {}
    if erased.type != ERASED or erased.stream != stream:
        return False
    if "typed_key" in doc and entity_id is not _NO_ID:
        return bool(doc["typed_key"] == typed_key(entity_id))
    return bool(doc.get("entity_key") == entity_key)


class ErasureClaims:
    """Checks, along `seq`, that every erased event names an `erased` event that backs it.

    Feed every event in `seq` order; a claim is settled when its `erased` event
    arrives (always later than the events it erased).
    """

    def __init__(self) -> None:
        self._pending: dict[int, list[Event]] = {}
        self.count = 0
        self._by_stream: dict[str, int] = {}

    def count_in(self, stream: str) -> int:
        """How many erased events of `stream` were seen."""
        return self._by_stream.get(stream, 0)

    def feed(self, event: Event) -> list[tuple[Event, str]]:
        """Record `event`'s claim and settle those naming it; returns the unbacked ones."""
        bad: list[tuple[Event, str]] = []
        for claimant in self._pending.pop(event.seq, []):
            if not erasure_names(
                event, claimant.stream, claimant.entity_key, entity_id=claimant.entity_id
            ):
                bad.append((claimant, _unbacked(claimant)))
        if event.erased_by is not None and event.salt is None:
            self.count += 1
            self._by_stream[event.stream] = self._by_stream.get(event.stream, 0) + 1
            self._pending.setdefault(event.erased_by, []).append(event)
        return bad

    def unsettled(self) -> list[tuple[Event, str]]:
        """Claims whose `erased` event never came (the log ends before it)."""
        return [(e, _unbacked(e)) for es in self._pending.values() for e in es]


def _unbacked(event: Event) -> str:
    return (
        f"payload of seq {event.seq} is missing without an erased record "
        f"(seq {event.erased_by} does not record erasing "
        f"{event.stream}/{shown_entity(event.entity_key, event.entity_id)})"
    )


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
        self._claims = ErasureClaims()

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
        elif (payload := payload_problem(event, f"seq {event.seq}")) is not None:
            problem = payload
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
        if problem is None:
            unbacked = self._claims.feed(event)
            if unbacked:
                self._first_invalid_seq, self._reason = unbacked[0][0].seq, unbacked[0][1]
                return
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
        if not self.failed and (unsettled := self._claims.unsettled()):
            self._first_invalid_seq = min(e.seq for e, _ in unsettled)
            self._reason = next(r for e, r in unsettled if e.seq == self._first_invalid_seq)
        matches: bool | None = None
        reason = self._reason
        first = self._first_invalid_seq
        expected = self._expected
        if expected is not None and expected.seq == 0:
            # Every log passes through the genesis head, and only through it.
            matches = expected.log_hash == GENESIS_HASH
            if not matches and not self.failed:
                reason = (
                    "log_hash at seq 0 differs from the recorded head (the genesis hash, 64 zeros)"
                )
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
            events_erased=self._claims.count,
        )


__all__ = [
    "SALT_BYTES",
    "CheckpointCheck",
    "EntityChecker",
    "EntityVerdict",
    "ErasedEvent",
    "ErasureClaims",
    "LogVerdict",
    "LogVerifier",
    "canonical_bytes",
    "entity_hash",
    "erasure_names",
    "next_log_hash",
    "payload_commit",
    "payload_problem",
    "seal",
    "shown_entity",
    "verify_entity",
]
