"""Verification over the store: both hash chains recomputed, one page of the log in memory at a time.

The checks themselves are pure (`chain.py`); this module reads the log through
the `EventLog` port in bounded pages: an entity by versions, a stream or the
whole log along `seq`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec

from eventstore.chain import (
    CheckpointCheck,
    EntityChecker,
    EntityVerdict,
    ErasureClaims,
    LogVerdict,
    LogVerifier,
    entity_problem,
    erasure_names,
    shown_entity,
)
from eventstore.checkpoint_audit import scoped_check, stored_checkpoint_check
from eventstore.keys import typed_key
from eventstore.merkle import Frontier, ProofError, ProofFailed, verify_inclusion
from eventstore.model import GENESIS_HASH, Event, Head, TreeCheckpoint
from eventstore.ports import EventLog, MerkleTree
from eventstore.tree import event_leaf, inclusion_proof

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
    # The latest stored checkpoint, held to the stream's newest event inside it.
    checkpoint: CheckpointCheck | None = None


async def verify_entity(
    log: EventLog,
    stream: str,
    entity_id: Any,
    *,
    page: int = PAGE,
    checkpoint: TreeCheckpoint | None = None,
    merkle: MerkleTree | None = None,
) -> EntityVerdict | None:
    """Recompute one entity's chain in pages of versions; None when it has no events.

    With the latest stored `checkpoint` (and the stored tree), the entity's newest
    version inside it (seq at most its size) is held to it: that event's leaf, from
    its own hash, with an inclusion proof from the stored tree, must lead to the
    checkpoint's root. The entity's chain links every earlier version to that event.
    """
    checker = EntityChecker()
    within = checkpoint.size if checkpoint is not None else 0
    inside: Event | None = None
    newest = 0
    next_from = 1
    while True:
        events = await log.read_entity(stream, entity_id, from_version=next_from, limit=page)
        broken = False
        for event in events:
            newest = max(newest, event.seq)
            # Read in version order: the last event inside is the newest version inside,
            # and the chain links every earlier version to it. (Not the highest seq: a
            # later version forged onto an earlier seq would then be held by nothing.)
            if event.seq <= within:
                inside = event
            if not checker.feed(event):
                broken = True
                break
        if broken or len(events) < page:
            break
        next_from = events[-1].version + 1
        await asyncio.sleep(0)  # a turn for the loop between pages, as `all_events` gives
    if not checker.checked:
        return None
    if checker.failure is None:
        await _check_erasures(log, checker, stream, entity_id)
    verdict = checker.verdict()
    if checkpoint is None or merkle is None:
        return verdict
    what = f"{stream}/{shown_entity(checker.entity_key or '', entity_id)}"
    problem = await _inclusion_problem(merkle, checkpoint, inside) if inside else None
    check = scoped_check(
        checkpoint,
        what=what,
        seq=inside.seq if inside else None,
        newest=newest,
        problem=problem,
        how_held="its inclusion proof from the stored tree, the leaf from the event's own hash",
    )
    if check.holds or not verdict.valid:
        return msgspec.structs.replace(verdict, checkpoint=check)
    return msgspec.structs.replace(verdict, valid=False, reason=check.reason, checkpoint=check)


async def _inclusion_problem(
    merkle: MerkleTree, checkpoint: TreeCheckpoint, event: Event
) -> str | None:
    """Why `event` is not shown to be in the checkpoint's tree; None when it is."""
    try:
        root = base64.b64decode(checkpoint.root, validate=True)
        proof = await inclusion_proof(merkle, event.seq - 1, checkpoint.size)
        verify_inclusion(event_leaf(event), event.seq - 1, checkpoint.size, proof, root)
    except (ProofError, ProofFailed, binascii.Error, ValueError) as exc:
        return (
            f"seq {event.seq} is not shown to be in the tree of the latest checkpoint"
            f" ({checkpoint.size} events): {exc}; events or the stored tree were rewritten"
        )
    return None


async def _check_erasures(
    log: EventLog, checker: EntityChecker, stream: str, entity_id: Any
) -> None:
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
        if record is None or not erasure_names(record, stream, key, entity_id=entity_id):
            checker.fail(
                erased.version,
                f"payload of version {erased.version} is missing without an erased record "
                f"(seq {erased.erased_by} does not record erasing "
                f"{stream}/{shown_entity(key, entity_id)})",
            )
            return


async def verify_stream(
    log: EventLog, stream: str, *, page: int = PAGE, checkpoint: TreeCheckpoint | None = None
) -> StreamVerdict:
    """Recompute every entity chain of a stream in one pass along `seq`.

    Memory: one page of events, and the last verified (version, hash) per entity.
    With the latest stored `checkpoint`, the same pass recomputes the root of its
    size from every event's hash (as the whole-log verify does): the stream's
    events are in the checkpoint's tree only if the whole log up to it is.
    """
    last: dict[str, tuple[int, str]] = {}
    bad: dict[str, InvalidEntity] = {}
    checked = 0
    claims = ErasureClaims()
    roots = _RootAt(checkpoint.size if checkpoint is not None else 0)
    inside, newest = None, 0
    async for event in all_events(log, page=page):
        roots.feed(event)
        for claimant, why in claims.feed(event):
            _unbacked(claimant, why, stream, bad, last)
        if event.stream != stream:
            continue
        checked += 1
        newest = event.seq
        if event.seq <= roots.want:
            inside = event.seq
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
    verdict = StreamVerdict(
        valid=not bad,
        entities_checked=len(last) + len(bad),
        events_checked=checked,
        invalid=list(bad.values()),
        events_erased=claims.count_in(stream),
    )
    if checkpoint is None:
        return verdict
    whole = roots.check(checkpoint, roots.frontier.size)
    check = scoped_check(
        checkpoint,
        what=f"stream {stream}",
        seq=inside,
        newest=newest,
        problem=None if whole.matches else whole.reason,
        how_held=f"the root of the first {checkpoint.size} events, recomputed from their hashes",
    )
    return msgspec.structs.replace(verdict, valid=verdict.valid and check.holds, checkpoint=check)


class _RootAt:
    """The root of the first `want` events, recomputed from their hashes along one pass."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.frontier = Frontier()
        self.root: bytes | None = self.frontier.root() if want == 0 else None
        # The seq the log skipped to inside the first `want` events (the last before it is
        # `frontier.size`): no root of that size, and the checkpoint's check says where.
        self.skipped_to: int | None = None

    @property
    def done(self) -> bool:
        """True once the root is known, or known not to exist (a skipped seq)."""
        return self.frontier.size >= self.want or self.root is not None

    def feed(self, event: Event) -> None:
        """The next event along `seq`; a skipped seq leaves no root of that size."""
        frontier = self.frontier
        if frontier.size >= self.want or self.root is not None:
            return
        if event.seq != frontier.size + 1:
            self.want = 0  # the chains report the gap
            self.skipped_to = event.seq
            return
        frontier.extend([event_leaf(event)])
        if frontier.size == self.want:
            self.root = frontier.root()

    def check(self, checkpoint: TreeCheckpoint, log_size: int) -> CheckpointCheck:
        """The latest stored checkpoint held to the root recomputed along the pass."""
        skipped = None if self.skipped_to is None else (self.frontier.size, self.skipped_to)
        return stored_checkpoint_check(checkpoint, self.root, log_size, skipped=skipped)


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


async def verify_log(
    log: EventLog,
    expected_head: Head | None,
    *,
    page: int = PAGE,
    checkpoint: TreeCheckpoint | None = None,
) -> LogVerdict:
    """Recompute both chains along `seq`; the log must pass through `expected_head` (if given).

    With the latest stored `checkpoint`, the root of its size is recomputed from
    the events' hashes in the same pass (never from stored tree nodes, which a
    rewrite could leave untouched); a root that differs makes the log invalid.
    """
    verifier = LogVerifier(expected_head)
    roots = _RootAt(checkpoint.size if checkpoint is not None else 0)
    async for event in all_events(log, page=page):
        verifier.feed(event)
        roots.feed(event)
        if verifier.failed and roots.done:
            break
    verdict = verifier.verdict()
    if checkpoint is None:
        return verdict
    check = roots.check(checkpoint, verdict.head.seq)
    replace = msgspec.structs.replace
    if check.matches or not verdict.valid:
        return replace(verdict, checkpoint=check)
    return replace(verdict, valid=False, reason=check.reason, checkpoint=check)


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
        # A turn for the loop between pages, whatever the store: a long verification over
        # one that never waits (memory) would hold every other task, and be uncancellable.
        await asyncio.sleep(0)


__all__ = [
    "PAGE",
    "InvalidEntity",
    "StreamVerdict",
    "all_events",
    "verify_entity",
    "verify_log",
    "verify_stream",
]
