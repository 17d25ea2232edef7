"""The monitor: what turns a signed head into detection.

Run by someone other than the operator (an auditor, a second team), it fetches the
service's latest checkpoint, checks its signature, that it is of the same log (its
origin) and that it extends the last one it saved (a consistency proof it verifies
itself), then saves it. A fork (same size, other root, or a refused proof), a
rollback (a smaller tree), another origin or a bad signature is reported with the
evidence: both checkpoints and the proof. An answer that is no checkpoint at all
(empty, garbage, an error page) is not evidence of anything: `Unreachable`.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from eventstore.json_input import decode_json
from eventstore.merkle import ProofFailed, count_events, verify_consistency
from eventstore.notes import NoteError, Verifier, open_note, parse_checkpoint

Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]
"""GET a path of the service: (status, body)."""

LATEST: Final = "checkpoint"


class Unreachable(Exception):
    """The service did not answer with a checkpoint (not evidence of anything).

    No answer, an HTTP error, or a body that is no checkpoint at all (empty, garbage,
    an error page behind a proxy); a checkpoint that is not validly signed is a Finding.
    """


class Finding(msgspec.Struct, kw_only=True):
    """Evidence that the log is not append-only, or is not the one the key signs."""

    finding: str  # fork | rollback | other-origin | bad-signature | refused-proof
    detail: str
    saved: str | None = None
    served: str
    proof: dict[str, Any] | None = None


class Seen(msgspec.Struct, kw_only=True):
    """A check that found nothing wrong."""

    size: int
    previous: int | None


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A signed checkpoint as the monitor holds it: the note and what its text says."""

    note: str
    origin: str
    size: int
    root: bytes


def _saved(state: Path, verifier: Verifier) -> Checkpoint | None:
    """The checkpoint saved last, or None; a file that is not one is a NoteError naming it."""
    path = state / LATEST
    if not path.exists():
        return None
    try:
        # As bytes: text mode would turn CRLF into LF, hiding a saved note's altered line ends
        # (which `verify --checkpoint` and `verify-proof` refuse too).
        note = path.read_bytes().decode("utf-8")
        origin, size, root = parse_checkpoint(open_note(note, verifier))
    except UnicodeDecodeError as exc:
        raise NoteError(f"{path} is not a checkpoint: not UTF-8 text ({exc.reason})") from None
    except NoteError as exc:
        raise NoteError(f"{path}: {exc}") from None
    return Checkpoint(note=note, origin=origin, size=size, root=root)


def _is_checkpoint(served: str) -> bool:
    """Whether the text of `served` (before any signature block) is a checkpoint's."""
    cut = served.find("\n\n")
    try:
        parse_checkpoint(served if cut < 0 else served[: cut + 1])
    except NoteError:
        return False
    return True


def _save(state: Path, note: str, size: int) -> None:
    state.mkdir(parents=True, exist_ok=True)
    by_size = state / str(size)
    if not by_size.exists():
        by_size.write_bytes(note.encode("utf-8"))
    tmp = state / (LATEST + ".tmp")
    tmp.write_bytes(note.encode("utf-8"))  # the note's own bytes, whatever the platform
    os.replace(tmp, state / LATEST)


async def check_once(fetch: Fetch, verifier: Verifier, state: Path) -> Finding | Seen:
    """One round: fetch, verify, compare with the saved checkpoint, save when it extends it.

    The saved state is read first: a state file that is not a checkpoint is a NoteError
    naming it, whatever the service answers.
    """
    saved = _saved(state, verifier)
    old_note = saved.note if saved else None
    status, body = await fetch("/v1/checkpoint")
    if status != 200:
        raise Unreachable(f"GET /v1/checkpoint answered {status}")
    served = body.decode("utf-8", errors="replace")
    try:
        origin, size, root = parse_checkpoint(open_note(served, verifier))
    except NoteError as exc:
        if not _is_checkpoint(served):
            raise Unreachable(f"the answer to GET /v1/checkpoint is refused: {exc}") from None
        return Finding(
            finding="bad-signature",
            detail=f"the served checkpoint is refused: {exc}",
            saved=old_note,
            served=served,
        )
    if saved is None:
        _save(state, served, size)
        return Seen(size=size, previous=None)
    if origin != saved.origin:
        return Finding(
            finding="other-origin",
            detail=f"the served checkpoint is of log {origin!r}, the saved one of {saved.origin!r}",
            saved=old_note,
            served=served,
        )
    old_size, old_root = saved.size, saved.root
    if size < old_size:
        return Finding(
            finding="rollback",
            detail=f"the served tree has {count_events(size)}, the saved one {old_size}",
            saved=old_note,
            served=served,
        )
    if size == old_size:
        if root != old_root:
            return Finding(
                finding="fork",
                detail=f"two signed roots for tree size {size}",
                saved=old_note,
                served=served,
            )
        return Seen(size=size, previous=old_size)
    status, body = await fetch(f"/v1/proof/consistency?from={old_size}&to={size}")
    proof: dict[str, Any] | None = None
    try:
        if status != 200:
            raise ProofFailed(f"the service refused the consistency proof ({status})")
        proof = decode_json(body)
        if not isinstance(proof, dict) or not isinstance(proof.get("hashes"), list):
            raise ProofFailed("the consistency proof is malformed")
        hashes = [base64.b64decode(h, validate=True) for h in proof["hashes"]]
        verify_consistency(old_size, size, old_root, root, hashes)
    except (ProofFailed, msgspec.DecodeError, binascii.Error, ValueError, TypeError) as exc:
        return Finding(
            finding="refused-proof",
            detail=f"tree {size} is not shown to extend the saved tree {old_size}: {exc}",
            saved=old_note,
            served=served,
            proof=proof,
        )
    _save(state, served, size)
    return Seen(size=size, previous=old_size)
