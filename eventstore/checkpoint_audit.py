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

from eventstore.chain import CheckpointCheck
from eventstore.merkle import Frontier, ProofError, ProofFailed, verify_consistency
from eventstore.model import TreeCheckpoint
from eventstore.notes import NoteError, Verifier, open_note, parse_checkpoint, split_note
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


def _note_facts(checkpoint: TreeCheckpoint) -> tuple[str | None, str | None]:
    """(who the note says signed it, what is wrong with the note) of a stored checkpoint."""
    signed_by: str | None = None
    note_problem: str | None = None
    try:
        text = checkpoint.note
        if checkpoint.signed:
            text, sigs = split_note(checkpoint.note)
            if sigs:
                signed_by = f"{sigs[0][0]}+{sigs[0][1][:4].hex()}"
        _, size, root = parse_checkpoint(text)
        if size != checkpoint.size or base64.b64encode(root).decode() != checkpoint.root:
            note_problem = "its note names another size or root than the one stored with it"
    except NoteError as exc:
        note_problem = f"its note is unreadable ({exc})"
    if checkpoint.signed and signed_by is None and note_problem is None:
        note_problem = "it is recorded as signed but its note carries no signature"
    return signed_by, note_problem


def _how(signed_by: str | None) -> str:
    return f"signed by {signed_by}" if signed_by else "unsigned (no signing key)"


def _missing(skipped: tuple[int, int], size: int) -> str:
    """Why the root of `size` events is missing: the log skipped from one seq to another."""
    last, found = skipped
    if found <= last + 1:  # never from a log read in seq order; said plainly all the same
        return f"the log has seq {found} after seq {last}, inside the latest checkpoint's {size}"
    gone = f"seq {last + 1} is" if found == last + 2 else f"seqs {last + 1} to {found - 1} are"
    return f"{gone} missing from the latest checkpoint's {size} events: events were removed"


def stored_checkpoint_check(
    checkpoint: TreeCheckpoint,
    recomputed: bytes | None,
    log_size: int,
    *,
    skipped: tuple[int, int] | None = None,
) -> CheckpointCheck:
    """The latest stored checkpoint held to the events: `recomputed` is the root of its size.

    `recomputed` comes from the events' own hashes (None when the log has fewer
    events, or `skipped` a seq inside the checkpoint's size: from the first seq to
    the second). The note's own size and root must be the stored ones as well: a
    stored root rewritten beside an untouched note is tampering too. Without a
    verifier key the signature is named as the note claims it, not checked.
    """
    signed_by, note_problem = _note_facts(checkpoint)
    base = CheckpointCheck(
        size=checkpoint.size,
        root=checkpoint.root,
        signed=checkpoint.signed,
        signed_by=signed_by,
        matches=False,
        reason="",
    )
    replace = msgspec.structs.replace
    if note_problem is not None:
        return replace(base, reason=f"the latest checkpoint ({checkpoint.size}): {note_problem}")
    if recomputed is None and skipped is not None:
        return replace(base, reason=_missing(skipped, checkpoint.size))
    if recomputed is None:
        return replace(
            base,
            reason=f"the log has {log_size} events, fewer than the latest checkpoint's"
            f" {checkpoint.size}: events were removed",
        )
    if base64.b64encode(recomputed).decode() != checkpoint.root:
        return replace(
            base,
            reason=f"the root of the first {checkpoint.size} events, recomputed from their"
            " hashes, is not the latest checkpoint's: events were rewritten",
        )
    return replace(
        base,
        matches=True,
        reason=f"the first {checkpoint.size} events have the root of the latest checkpoint"
        f" ({_how(signed_by)})",
    )


def scoped_check(
    checkpoint: TreeCheckpoint,
    *,
    what: str,
    seq: int | None,
    newest: int,
    problem: str | None,
    how_held: str,
) -> CheckpointCheck:
    """The latest stored checkpoint held to one stream's or entity's newest event inside it.

    `seq` is that event (None: none of `what`'s events is inside yet), `newest`
    the seq of `what`'s newest event (0: it has none), `problem` why the event is not shown to be
    in the checkpoint's tree (None when it is), `how_held` how it was shown.
    """
    signed_by, note_problem = _note_facts(checkpoint)
    base = CheckpointCheck(
        size=checkpoint.size,
        root=checkpoint.root,
        signed=checkpoint.signed,
        signed_by=signed_by,
        matches=False,
        reason="",
        seq=seq,
    )
    replace = msgspec.structs.replace
    if note_problem is not None:
        return replace(base, reason=f"the latest checkpoint ({checkpoint.size}): {note_problem}")
    if seq is None:
        return replace(
            base,
            pending=True,
            reason=f"no event of {what} is in the latest checkpoint ({checkpoint.size} events,"
            f" {_how(signed_by)}) yet: "
            + (f"its events (up to seq {newest}) are newer" if newest else "it has no events"),
        )
    if problem is not None:
        return replace(base, reason=problem)
    later = (
        f"; its events after seq {checkpoint.size} are not in a checkpoint yet"
        if newest > checkpoint.size
        else ""
    )
    return replace(
        base,
        matches=True,
        reason=f"the newest event of {what} in the latest checkpoint ({checkpoint.size} events,"
        f" {_how(signed_by)}), seq {seq}, is in its tree ({how_held}){later}",
    )
