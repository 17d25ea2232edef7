"""`verify --checkpoint`: hold today's log to a signed checkpoint kept elsewhere.

The root of the checkpoint's size is recomputed from the events' own hashes (not
from stored tree nodes, which an attacker could leave untouched while rewriting
events), so a rewritten event, a recomputed chain or a truncated log with a
rewritten head all change it. The stored tree and the latest stored checkpoint are
then checked to extend the saved one (a consistency proof from stored nodes).
"""

from __future__ import annotations

import base64

import msgspec

from eventstore.merkle import Frontier, ProofError, ProofFailed, verify_consistency
from eventstore.notes import NoteError, Verifier, open_note, parse_checkpoint
from eventstore.ports import Store
from eventstore.tree import consistency_proof, event_leaf


class CheckpointVerdict(msgspec.Struct, kw_only=True):
    """The log held to one signed checkpoint."""

    valid: bool
    reason: str
    size: int | None = None
    root: str | None = None
    log_size: int | None = None
    signed_by: str | None = None
    latest_checkpoint: int | None = None


async def verify_checkpoint(
    store: Store, note: str, verifier: Verifier, *, page: int = 1000
) -> CheckpointVerdict:
    """Check the note's signature, the root of its size from the events, then the stored tree."""
    try:
        _, size, root = parse_checkpoint(open_note(note, verifier))
    except NoteError as exc:
        return CheckpointVerdict(valid=False, reason=f"checkpoint refused: {exc}")
    signed_by = f"{verifier.name}+{verifier.id.hex()}"
    base = CheckpointVerdict(
        valid=False, reason="", size=size, root=base64.b64encode(root).decode(), signed_by=signed_by
    )
    replace = msgspec.structs.replace
    latest = await store.merkle.checkpoint()
    frontier = Frontier()
    at_latest: bytes | None = None
    at_size: bytes | None = frontier.root() if size == 0 else None
    after = 0
    while True:
        events = await store.events.read(after_seq=after, limit=page)
        if not events:
            break
        for event in events:
            if event.seq != frontier.size + 1:
                return replace(
                    base,
                    reason=f"the log skips from seq {frontier.size} to {event.seq}",
                    log_size=frontier.size,
                )
            frontier.append(event_leaf(event))
            if frontier.size == size:
                at_size = frontier.root()
            if latest is not None and frontier.size == latest.size:
                at_latest = frontier.root()
        after = events[-1].seq
    log_size = frontier.size
    if at_size is None:
        return replace(
            base,
            reason=f"the log has {log_size} events, fewer than the checkpoint's {size}:"
            " events were removed",
            log_size=log_size,
        )
    if at_size != root:
        return replace(
            base,
            reason=f"the root of the first {size} events, recomputed from their hashes, is not"
            " the checkpoint's: events were rewritten",
            log_size=log_size,
        )
    if latest is not None and size >= 1 and latest.size >= size:
        latest_root = base64.b64decode(latest.root)
        problem = None
        if at_latest != latest_root:
            problem = f"the latest stored checkpoint ({latest.size}) does not match the events"
        else:
            try:
                proof = (
                    []
                    if latest.size == size
                    else await consistency_proof(store.merkle, size, latest.size)
                )
                verify_consistency(size, latest.size, root, latest_root, proof)
            except (ProofFailed, ProofError) as exc:
                problem = f"the stored tree does not extend the checkpoint ({exc})"
        if problem is not None:
            return replace(base, reason=problem, log_size=log_size, latest_checkpoint=latest.size)
    return replace(
        base,
        valid=True,
        reason=f"the first {size} events have the signed root; the log ({log_size} events)"
        " extends it",
        log_size=log_size,
        latest_checkpoint=latest.size if latest else None,
    )
