"""Proofs served to outsiders, and the self-contained proof file of one event.

The proof file (`eventstore-proof/v1`) carries the signed checkpoint, the event's
canonical BSON (the bytes its `hash` covers), its leaf index, the tree size and
the inclusion proof. `verify_proof_file` checks it with nothing but a verifier key:
the signature, the event hash recomputed from the BSON, the leaf hash, the inclusion.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Final

import bson
import msgspec

from eventstore.chain import canonical_bytes
from eventstore.json_input import check_unique_keys
from eventstore.keys import typed_key
from eventstore.merkle import ProofError, ProofFailed, count_events, leaf_hash, verify_inclusion
from eventstore.model import Event, TreeCheckpoint
from eventstore.notes import NoteError, Verifier, open_note, parse_checkpoint
from eventstore.ports import Store
from eventstore.tree import consistency_proof, inclusion_proof, leaf_and_inclusion

FORMAT: Final = "eventstore-proof/v1"


class NoCheckpoint(LookupError):
    """No checkpoint (of the asked size) has been made."""


class UnknownEvent(LookupError):
    """No event has that seq."""


class ProofFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An event's inclusion in a checkpointed tree, checkable offline."""

    format: str
    checkpoint: str
    event_bson: str
    leaf_index: int
    tree_size: int
    hashes: list[str]


def b64(data: bytes) -> str:
    """Standard padded base64."""
    return base64.b64encode(data).decode()


def full_note(checkpoint: TreeCheckpoint) -> str:
    """The note with its witnesses' cosignature lines after its own signatures."""
    note = checkpoint.note
    if checkpoint.cosignatures:
        if not checkpoint.signed:
            note += "\n"
        note += "".join(
            line if line.endswith("\n") else line + "\n" for line in checkpoint.cosignatures
        )
    return note


async def checkpoint_at(store: Store, size: int | None) -> TreeCheckpoint:
    """The stored checkpoint of `size`, or the latest; NoCheckpoint when there is none."""
    found = await store.merkle.checkpoint(size)
    if found is None:
        if size is None:
            raise NoCheckpoint("no checkpoint has been made yet")
        raise NoCheckpoint(f"no checkpoint was made at tree size {size}")
    return found


async def _latest_size(store: Store, size: int | None) -> int:
    if size is not None:
        return size
    return (await checkpoint_at(store, None)).size


async def inclusion(store: Store, seq: int, size: int | None) -> dict[str, Any]:
    """The inclusion proof of event `seq` in the tree of `size` (default: latest checkpoint)."""
    n = await _latest_size(store, size)
    if seq > n:
        raise ProofError(f"seq {seq} is beyond tree size {n}", argument="seq")
    leaf, hashes = await leaf_and_inclusion(store.merkle, seq - 1, n)
    return {
        "leaf_index": seq - 1,
        "tree_size": n,
        "leaf_hash": b64(leaf),
        "hashes": [b64(h) for h in hashes],
    }


async def consistency(store: Store, first: int, second: int | None) -> dict[str, Any]:
    """The consistency proof between sizes `first` and `second` (default: latest checkpoint)."""
    n = await _latest_size(store, second)
    if first > n:
        raise ProofError(f"size {first} is beyond size {n}", argument="first")
    hashes = [] if first == n else await consistency_proof(store.merkle, first, n)
    return {"from": first, "to": n, "hashes": [b64(h) for h in hashes]}


async def within_tree(store: Store, size: int | None) -> None:
    """ProofError (422) when an asked tree size is beyond the stored tree."""
    if size is not None and size > (stored := await store.merkle.size()):
        raise ProofError(
            f"tree size {size} is beyond the stored tree ({count_events(stored)})", argument="size"
        )


async def newest_inside(store: Store, stream: str, entity_id: Any, size: int) -> Event | None:
    """The entity's newest event in the tree of `size` events (seq at most `size`); None when
    its first event is past it.

    Versions and seqs grow together, so the versions are halved: at most about log2 of
    the entity's length reads of one event each, and one when its newest event is inside
    (the usual case), whatever its length.
    """
    events = store.events
    first = await events.read_entity(stream, entity_id, limit=1)
    if not first or first[0].seq > size:
        return None
    head = (await events.entity_heads(stream, [entity_id]))[typed_key(entity_id)]
    newest = await events.read_entity(stream, entity_id, from_version=head.version, limit=1)
    if newest and newest[0].seq <= size:
        return newest[0]
    # Invariant: `inside` (version `low`) has seq <= size; version `high` has seq > size.
    inside, low, high = first[0], first[0].version, head.version
    while high - low > 1:
        (probe,) = await events.read_entity(
            stream, entity_id, from_version=(low + high) // 2, limit=1
        )
        if probe.seq <= size:
            inside, low = probe, probe.version
        else:
            high = probe.version
    return inside


async def event_proof(store: Store, seq: int, size: int | None) -> ProofFile:
    """The proof file of event `seq` in the checkpoint of `size` (default: the latest).

    Impossible sizes (below `seq`, beyond the tree) are ProofError before a size
    inside the tree with no checkpoint made at it is NoCheckpoint.
    """
    if size is not None and seq > size:
        raise ProofError(f"seq {seq} is beyond tree size {size}", argument="seq")
    await within_tree(store, size)
    checkpoint = await checkpoint_at(store, size)
    # The size defaults to the latest checkpoint's: a seq beyond it is the same 422 as
    # when that size is given, whether or not an event has the seq yet.
    if seq > checkpoint.size:
        raise ProofError(f"seq {seq} is beyond tree size {checkpoint.size}", argument="seq")
    events = await store.events.read(after_seq=seq - 1, limit=1)
    if not events or events[0].seq != seq:
        raise UnknownEvent(f"no event has seq {seq}")
    hashes = await inclusion_proof(store.merkle, seq - 1, checkpoint.size)
    return ProofFile(
        format=FORMAT,
        checkpoint=full_note(checkpoint),
        event_bson=b64(canonical_bytes(events[0])),
        leaf_index=seq - 1,
        tree_size=checkpoint.size,
        hashes=[b64(h) for h in hashes],
    )


class ProofVerdict(msgspec.Struct, kw_only=True):
    """What `verify_proof_file` found.

    `seq` is the event the proof file is about, whether or not the proof holds: the
    seq its `event_bson` carries, else (that is not an event's) its `leaf_index` + 1;
    null only when the file is not a proof file. `origin` and
    `tree_size` are the checkpoint's, once its signature is checked.
    """

    valid: bool
    reason: str
    seq: int | None = None
    tree_size: int | None = None
    origin: str | None = None
    event: dict[str, Any] | None = None


def _decode64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProofFailed(f"{what} is not valid base64") from exc


def _about(proof: ProofFile) -> int | None:
    """The seq of the event a proof file is about: its event's own, else its leaf's."""
    try:
        seq = bson.decode(base64.b64decode(proof.event_bson, validate=True)).get("seq")
    except (binascii.Error, ValueError, IndexError, bson.errors.InvalidBSON):
        seq = None
    if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1:
        return seq
    return proof.leaf_index + 1 if proof.leaf_index >= 0 else None


def verify_proof_file(
    data: bytes, verifier: Verifier, *, origin: str | None = None
) -> ProofVerdict:
    """Check a proof file offline: signature, origin (when given), event hash, leaf, inclusion."""
    try:
        proof = msgspec.json.decode(data, type=ProofFile)
        # A field given twice: another verifier may read the other one (msgspec takes the last).
        check_unique_keys(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return ProofVerdict(valid=False, reason=f"not an {FORMAT} file: {exc}")
    claimed = _about(proof)
    if proof.format != FORMAT:
        return ProofVerdict(
            valid=False, reason=f"format {proof.format!r} is not {FORMAT}", seq=claimed
        )
    try:
        text = open_note(proof.checkpoint, verifier)
        log, size, root = parse_checkpoint(text)
    except NoteError as exc:
        return ProofVerdict(valid=False, reason=f"checkpoint refused: {exc}", seq=claimed)

    def refused(reason: str) -> ProofVerdict:
        return ProofVerdict(valid=False, reason=reason, seq=claimed, tree_size=size, origin=log)

    if origin is not None and log != origin:
        return refused(f"the checkpoint is of log {log!r}, not of {origin!r} (--origin)")
    if size != proof.tree_size:
        return refused(f"tree_size {proof.tree_size} is not the checkpoint's {size}")
    try:
        event_bytes = _decode64(proof.event_bson, "event_bson")
        try:
            event = bson.decode(event_bytes)
        except (bson.errors.InvalidBSON, ValueError, IndexError) as exc:
            raise ProofFailed("event_bson is not BSON") from exc
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):  # "34" is not 34
            raise ProofFailed(f"the event's seq is not an integer: {seq!r}")
        if seq != proof.leaf_index + 1:
            raise ProofFailed(f"the event's seq {seq} is not leaf {proof.leaf_index} + 1")
        event_hash = hashlib.sha256(event_bytes).digest()
        hashes = [_decode64(h, "a proof hash") for h in proof.hashes]
        verify_inclusion(leaf_hash(event_hash), proof.leaf_index, size, hashes, root)
    except ProofFailed as exc:
        return refused(str(exc))
    return ProofVerdict(
        valid=True,
        reason=f"event seq {seq} (hash {event_hash.hex()}) is in the tree of {count_events(size)}"
        f" of log {log!r} signed by {verifier.name}",
        seq=int(seq),
        tree_size=size,
        origin=log,
        event=event,
    )
