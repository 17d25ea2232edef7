"""Plain `eventstore verify` holds the whole log to the latest stored checkpoint and says how.

Without a key the checkpoints are unsigned and verify says so; with one it names the key;
before the first checkpoint it says none was made. A root of the checkpoint's size that the
events' hashes no longer give (a rewritten event, chains and head recomputed) is tampering.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import msgspec

from eventstore.chain import CheckpointCheck
from eventstore.checkpoint_audit import stored_checkpoint_check
from eventstore.cli import main
from eventstore.memory.merkle import MemoryMerkleTree
from eventstore.memory.store import MemoryStore
from eventstore.merkle import Frontier
from eventstore.model import TreeCheckpoint
from eventstore.notes import Signer, checkpoint_text, sign_note
from eventstore.signing import root_b64
from eventstore.tree import event_leaf
from tests.helpers import T0
from tests.merkle_helpers import Signed, replace_log, rewrite_event, signed_log


def run(*argv: str, store: object) -> tuple[int, str]:
    out = io.StringIO()
    code = main([*argv, "--uri", "memory://"], out=out, store=store)
    return code, out.getvalue()


def run_json(store: object) -> tuple[int, dict[str, object]]:
    code, text = run("verify", "--json", store=store)
    body = json.loads(text)
    assert isinstance(body, dict)
    return code, body


def test_an_unsigned_checkpoint_is_reported_unsigned(tmp_path: Path) -> None:
    log = asyncio.run(signed_log(tmp_path, sign=False))
    code, body = run_json(log.store)
    assert code == 0 and body["valid"] is True
    check = body["checkpoint"]
    assert isinstance(check, dict)
    latest = asyncio.run(log.store.merkle.checkpoint())
    assert latest is not None
    assert check == {
        "size": 21,
        "root": latest.root,
        "signed": False,
        "signed_by": None,
        "matches": True,
        "reason": "the first 21 events have the root of the latest checkpoint"
        " (unsigned (no signing key))",
    }
    code, text = run("verify", store=log.store)
    assert code == 0
    assert "checkpoint: size 21, unsigned (no signing key), the events match it" in text


def test_a_signed_checkpoint_names_its_key(tmp_path: Path) -> None:
    log = asyncio.run(signed_log(tmp_path))
    key_id = log.signer.verifier_key().split("+")[1]
    code, body = run_json(log.store)
    assert code == 0 and body["valid"] is True
    check = body["checkpoint"]
    assert isinstance(check, dict)
    assert (check["size"], check["signed"], check["signed_by"], check["matches"]) == (
        21,
        True,
        f"log.test+{key_id}",
        True,
    )
    code, text = run("verify", store=log.store)
    assert code == 0
    assert f"checkpoint: size 21, signed by log.test+{key_id}, the events match it" in text


def test_no_checkpoint_yet(tmp_path: Path) -> None:
    log = asyncio.run(signed_log(tmp_path))
    empty = MemoryStore()
    asyncio.run(replace_log(empty, log.events))
    code, body = run_json(empty)
    assert code == 0 and body["valid"] is True and body["checkpoint"] is None
    code, text = run("verify", store=empty)
    assert code == 0 and "checkpoint: none yet" in text


def test_a_rewritten_event_with_recomputed_chains_and_head_is_caught(tmp_path: Path) -> None:
    for sign in (False, True):
        (tmp_path / str(sign)).mkdir()
        log = asyncio.run(signed_log(tmp_path / str(sign), sign=sign))
        assert asyncio.run(log.store.merkle.checkpoint()) is not None
        asyncio.run(replace_log(log.store, rewrite_event(log.events, 7)))
        code, body = run_json(log.store)
        # The chains verify and the rewritten head matches: only the stored checkpoint catches it.
        assert code == 2 and body["valid"] is False, sign
        assert body["head_matches"] is True and body["first_invalid_seq"] is None
        assert "recomputed from their hashes, is not the latest checkpoint's" in str(body["reason"])
        check = body["checkpoint"]
        assert isinstance(check, dict) and check["matches"] is False and check["signed"] is sign
        code, text = run("verify", store=log.store)
        assert code == 2 and "log: TAMPERED" in text
        assert ", DOES NOT MATCH the events" in text
        assert "events were rewritten" in text


def test_a_stored_root_rewritten_beside_its_note_is_caught(tmp_path: Path) -> None:
    log = asyncio.run(signed_log(tmp_path, sign=False))
    forged = asyncio.run(replace_log_and_checkpoint(log))
    code, body = run_json(log.store)
    assert code == 2 and body["valid"] is False
    assert "its note names another size or root than the one stored with it" in str(body["reason"])
    check = body["checkpoint"]
    assert isinstance(check, dict) and check["root"] == forged and check["matches"] is False


async def replace_log_and_checkpoint(log: Signed) -> str:
    """Rewrite event 7 (chains, head) and the latest stored checkpoint's root, not its note."""
    events = rewrite_event(log.events, 7)
    await replace_log(log.store, events)
    frontier = Frontier()
    for e in events:
        frontier.append(event_leaf(e))
    merkle = log.store.merkle
    assert isinstance(merkle, MemoryMerkleTree)
    latest = await merkle.checkpoint()
    assert latest is not None
    forged = root_b64(frontier.root())
    # The memory adapter keeps checkpoints by size: swap the latest for one with the new root.
    merkle._checkpoints[latest.size] = msgspec.structs.replace(latest, root=forged)
    return forged


def test_every_problem_of_the_latest_stored_checkpoint_is_named() -> None:
    signer = Signer.generate("log.test")
    root = bytes(range(32))
    text = checkpoint_text("eventstore/test", 7, root)
    b64 = base64.b64encode(root).decode()
    signed = TreeCheckpoint(
        size=7, root=b64, note=sign_note(text, signer), signed=True, created_at=T0
    )
    unsigned = TreeCheckpoint(size=7, root=b64, note=text, signed=False, created_at=T0)
    by = f"log.test+{signer.id.hex()}"

    def check(
        cp: TreeCheckpoint,
        recomputed: bytes | None,
        reason: str,
        skipped: tuple[int, int] | None = None,
        **kw: object,
    ) -> None:
        expected = CheckpointCheck(
            size=cp.size,
            root=cp.root,
            signed=cp.signed,
            reason=reason,
            **kw,  # type: ignore[arg-type]
        )
        assert stored_checkpoint_check(cp, recomputed, 9, skipped=skipped) == expected

    check(
        signed,
        root,
        f"the first 7 events have the root of the latest checkpoint (signed by {by})",
        signed_by=by,
        matches=True,
    )
    check(
        unsigned,
        root,
        "the first 7 events have the root of the latest checkpoint (unsigned (no signing key))",
        matches=True,
    )
    check(
        signed,
        None,
        "the log has 9 events, fewer than the latest checkpoint's 7: events were removed",
        signed_by=by,
        matches=False,
    )
    # A seq skipped inside the checkpoint's size: which are missing, not how many were read.
    removed = "from the latest checkpoint's 7 events: events were removed"
    check(signed, None, f"seq 3 is missing {removed}", (2, 4), signed_by=by, matches=False)
    check(signed, None, f"seqs 1 to 5 are missing {removed}", (0, 6), signed_by=by, matches=False)
    for found in (2, 3):  # no skip at all: never from a log read in seq order, said plainly
        check(
            signed,
            None,
            f"the log has seq {found} after seq 2, inside the latest checkpoint's 7",
            (2, found),
            signed_by=by,
            matches=False,
        )
    check(
        signed,
        bytes(32),
        "the root of the first 7 events, recomputed from their hashes, is not the latest"
        " checkpoint's: events were rewritten",
        signed_by=by,
        matches=False,
    )
    moved = msgspec.structs.replace(signed, size=8)
    check(
        moved,
        root,
        "the latest checkpoint (8): its note names another size or root than the one stored"
        " with it",
        signed_by=by,
        matches=False,
    )
    rerooted = msgspec.structs.replace(unsigned, root=base64.b64encode(bytes(32)).decode())
    check(
        rerooted,
        bytes(32),
        "the latest checkpoint (7): its note names another size or root than the one stored"
        " with it",
        matches=False,
    )
    claimed = msgspec.structs.replace(unsigned, signed=True)
    check(
        claimed,
        root,
        "the latest checkpoint (7): its note is unreadable (a signed note is its text, an empty"
        " line, then signature lines)",
        matches=False,
    )
    garbled = msgspec.structs.replace(unsigned, note="eventstore/test\nseven\n" + b64 + "\n")
    check(
        garbled,
        root,
        "the latest checkpoint (7): its note is unreadable (the checkpoint's size is not a"
        " decimal number)",
        matches=False,
    )


def test_a_checkpoint_recorded_as_signed_with_an_empty_signature_block_is_unreadable() -> None:
    root = bytes(range(32))
    text = checkpoint_text("eventstore/test", 7, root)
    # the empty line that opens a signature block, and no signature line after it
    bare = TreeCheckpoint(
        size=7,
        root=base64.b64encode(root).decode(),
        note=text + "\n",
        signed=True,
        created_at=T0,
    )
    result = stored_checkpoint_check(bare, root, 7)
    assert (result.matches, result.signed_by) == (False, None)
    assert result.reason == (
        "the latest checkpoint (7): its note is unreadable"
        " (a signature line starts with an em dash and a space)"
    )
