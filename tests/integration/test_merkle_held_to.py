"""Held to: `verify --checkpoint` catches a rewritten event, a recomputed chain and a rewritten
head; a forged checkpoint (another key, an altered root, an altered size) is refused."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventstore.checkpoint_audit import CheckpointVerdict, verify_checkpoint
from eventstore.cli import main
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.memory.merkle import MemoryMerkleTree
from eventstore.merkle import EMPTY_ROOT, consistency_plan, root_of
from eventstore.model import Event
from eventstore.notes import Signer, Verifier, checkpoint_text, sign_note
from eventstore.tree import LogTree, event_leaf
from tests.merkle_helpers import Signed, rebuild_tree, replace_log, rewrite_event, signed_log


def run(*argv: str, store: object) -> tuple[int, dict[str, object]]:
    out = io.StringIO()
    code = main([*argv, "--uri", "memory://", "--json"], out=out, store=store)
    return code, json.loads(out.getvalue()) if out.getvalue().strip() else {}


def saved(signed: Signed, size: int, path: Path) -> Path:
    checkpoint = asyncio.run(signed.store.merkle.checkpoint(size))
    assert checkpoint is not None
    path.write_text(checkpoint.note)
    return path


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    return asyncio.run(signed_log(tmp_path))


def verify(signed: Signed, note: Path) -> tuple[int, dict[str, object]]:
    return run(
        "verify",
        "--checkpoint",
        str(note),
        "--key",
        signed.signer.verifier_key(),
        store=signed.store,
    )


def test_an_untouched_log_holds_to_its_checkpoint(signed: Signed, tmp_path: Path) -> None:
    note = saved(signed, 13, tmp_path / "cp")
    code, body = verify(signed, note)
    assert code == 0 and body["valid"] is True
    checkpoint = body["checkpoint"]
    assert isinstance(checkpoint, dict)
    assert (checkpoint["size"], checkpoint["log_size"], checkpoint["latest_checkpoint"]) == (
        13,
        21,
        21,
    )


@pytest.mark.parametrize("rebuild", [False, True], ids=["tree-left-alone", "tree-rebuilt"])
def test_a_rewritten_event_with_recomputed_chains_and_head_is_caught(
    signed: Signed, tmp_path: Path, rebuild: bool
) -> None:
    note = saved(signed, 13, tmp_path / "cp")

    async def attack() -> None:
        await replace_log(signed.store, rewrite_event(signed.events, 7))
        if rebuild:
            await rebuild_tree(signed.store)

    asyncio.run(attack())
    code, body = run("verify", store=signed.store)
    if rebuild:
        # The chains, the head and the stored tree were all redone and the stored checkpoints
        # dropped: plain verify has nothing left to hold the log to; the saved note does.
        assert code == 0 and body["valid"] is True and body["checkpoint"] is None
    else:
        # The chains and the head verify (recomputed), but the latest stored checkpoint's
        # root, recomputed from the events' hashes, does not: plain verify catches it.
        assert code == 2 and body["valid"] is False and body["head_matches"] is True
        assert body["first_invalid_seq"] is None
        assert "events were rewritten" in str(body["reason"])
        check = body["checkpoint"]
        assert isinstance(check, dict)
        assert (check["size"], check["signed"], check["matches"]) == (21, True, False)
    code, body = verify(signed, note)
    assert code == 2 and body["valid"] is False
    assert "rewritten" in str(body["checkpoint"])


def test_a_rewrite_after_the_saved_size_is_caught_by_the_stored_checkpoint(
    signed: Signed, tmp_path: Path
) -> None:
    note = saved(signed, 13, tmp_path / "cp")
    asyncio.run(replace_log(signed.store, rewrite_event(signed.events, 17)))
    code, body = verify(signed, note)
    assert code == 2 and "latest stored checkpoint (21) does not match" in str(body["checkpoint"])


def test_a_truncated_log_with_a_rewritten_head_is_caught(signed: Signed, tmp_path: Path) -> None:
    note = saved(signed, 13, tmp_path / "cp")
    asyncio.run(replace_log(signed.store, signed.events[:10]))
    code, body = run("verify", store=signed.store)
    # The recorded head was rewritten to match; the stored checkpoint (21) still counts.
    assert code == 2 and body["head_matches"] is True
    assert "fewer than the latest checkpoint's 21: events were removed" in str(body["reason"])
    code, body = verify(signed, note)
    assert code == 2 and "fewer than the checkpoint's 13" in str(body["checkpoint"])


def test_forged_checkpoints_are_refused(signed: Signed, tmp_path: Path) -> None:
    good = saved(signed, 13, tmp_path / "cp").read_text()
    text = good.split("\n\n")[0] + "\n"
    origin, size, root = text.split("\n")[:3]
    raw = base64.b64decode(root)
    other_root = base64.b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode()
    forger = Signer.generate(signed.signer.name)
    forgeries = {
        "wrong key": sign_note(text, forger),
        "altered root": good.replace(root, other_root, 1),
        "altered size": good.replace(f"\n{size}\n", "\n12\n", 1),
        "unsigned": text,
    }
    for name, note in forgeries.items():
        path = tmp_path / name
        path.write_text(note)
        code, body = verify(signed, path)
        assert code == 2, name
        assert "checkpoint refused" in str(body["checkpoint"]), name
    # A malformed key is an error (1), not a verdict.
    assert (
        run("verify", "--checkpoint", str(tmp_path / "cp"), "--key", "x", store=signed.store)[0]
        == 1
    )
    assert origin == "eventstore/test"


async def test_each_verdict_of_holding_the_log_to_a_checkpoint_is_exact(tmp_path: Path) -> None:
    signed = await signed_log(tmp_path)
    key = Verifier.parse(signed.signer.verifier_key())
    signed_by = f"log.test+{key.id.hex()}"
    leaves = [event_leaf(e) for e in signed.events]

    async def note(size: int) -> str:
        checkpoint = await signed.store.merkle.checkpoint(size)
        assert checkpoint is not None
        return checkpoint.note

    def verdict(
        size: int, reason: str, *, valid: bool = False, **fields: object
    ) -> CheckpointVerdict:
        return CheckpointVerdict(
            valid=valid,
            reason=reason,
            size=size,
            root=base64.b64encode(root_of(leaves[:size])).decode(),
            signed_by=signed_by,
            **fields,  # type: ignore[arg-type]
        )

    for size in (5, 13, 21):
        for page in (1000, 4, 1):  # the root of `size` found across pages of any length
            held = await verify_checkpoint(signed.store, await note(size), key, page=page)
            assert held == verdict(
                size,
                f"the first {size} events have the signed root; the log (21 events) extends it",
                valid=True,
                log_size=21,
                latest_checkpoint=21,
            ), (size, page)
    empty = sign_note(checkpoint_text("eventstore/test", 0, EMPTY_ROOT), signed.signer)
    held = await verify_checkpoint(signed.store, empty, key)
    assert (held.valid, held.reason, held.latest_checkpoint) == (
        True,
        "the first 0 events have the signed root; the log (21 events) extends it",
        21,
    )
    stranger = Verifier.parse(Signer.generate("log.test").verifier_key())
    assert await verify_checkpoint(signed.store, await note(13), stranger) == CheckpointVerdict(
        valid=False,
        reason=f"checkpoint refused: the note carries no signature by log.test+{stranger.id.hex()}",
    )

    # the stored tree rewritten where the consistency proof from 13 to 21 reads it
    node = sorted(consistency_plan(13, 21).node_ids())[0]
    await signed.store.merkle.put_nodes([(*node, bytes(32))], size=21)
    held = await verify_checkpoint(signed.store, await note(13), key)
    assert held == verdict(
        13,
        "the stored tree does not extend the checkpoint"
        " (the consistency proof does not lead to the first root)",
        log_size=21,
        latest_checkpoint=21,
    )
    # an event after the saved size rewritten: the latest stored checkpoint no longer matches
    notes = {size: await note(size) for size in (5, 13)}
    await replace_log(signed.store, rewrite_event(signed.events, 17))
    assert await verify_checkpoint(signed.store, notes[13], key) == verdict(
        13,
        "the latest stored checkpoint (21) does not match the events",
        log_size=21,
        latest_checkpoint=21,
    )
    # one inside it: the root of its size
    await replace_log(signed.store, rewrite_event(signed.events, 3))
    assert await verify_checkpoint(signed.store, notes[5], key) == verdict(
        5,
        "the root of the first 5 events, recomputed from their hashes, is not the checkpoint's:"
        " events were rewritten",
        log_size=21,
    )
    await replace_log(signed.store, signed.events[:10])
    assert await verify_checkpoint(signed.store, notes[13], key) == verdict(
        13,
        "the log has 10 events, fewer than the checkpoint's 13: events were removed",
        log_size=10,
    )
    holed = HoledLog(missing=7)
    await holed.append(signed.events)
    signed.store.events = holed
    assert await verify_checkpoint(signed.store, notes[13], key) == verdict(
        13, "the log skips from seq 6 to 8", log_size=6
    )


class HoledLog(MemoryEventLog):
    """A log one event of which was deleted behind the service's back."""

    def __init__(self, missing: int) -> None:
        super().__init__()
        self.missing = missing

    async def read(self, *args: Any, **kw: Any) -> list[Event]:
        """The stored events without the missing one."""
        return [e for e in await super().read(*args, **kw) if e.seq != self.missing]


async def test_a_checkpoint_of_size_one_or_of_the_latest_size_is_still_held_to_the_stored_one(
    tmp_path: Path,
) -> None:
    signed = await signed_log(tmp_path, sizes=(1, 5))
    key = Verifier.parse(signed.signer.verifier_key())
    first = await signed.store.merkle.checkpoint(1)
    latest = await signed.store.merkle.checkpoint(5)
    assert first is not None and latest is not None
    held = await verify_checkpoint(signed.store, first.note, key)
    assert (held.valid, held.latest_checkpoint) == (True, 5)
    await replace_log(signed.store, rewrite_event(signed.events, 3))  # after size 1
    held = await verify_checkpoint(signed.store, first.note, key)
    assert (held.valid, held.reason) == (
        False,
        "the latest stored checkpoint (5) does not match the events",
    )
    # the events intact, the stored checkpoint of the note's own size rewritten
    await replace_log(signed.store, signed.events)
    forged = MemoryMerkleTree()
    await LogTree(forged, signed.store.events).open()
    await forged.add_checkpoint(
        msgspec.structs.replace(latest, root=base64.b64encode(bytes(32)).decode())
    )
    signed.store.merkle = forged
    held = await verify_checkpoint(signed.store, latest.note, key)
    assert (held.valid, held.reason, held.latest_checkpoint) == (
        False,
        "the latest stored checkpoint (5) does not match the events",
        5,
    )
    # no stored checkpoint at all: the note alone, held to the events
    signed.store.merkle = MemoryMerkleTree()
    held = await verify_checkpoint(signed.store, latest.note, key)
    assert (held.valid, held.latest_checkpoint) == (True, None)
    assert held.reason == "the first 5 events have the signed root; the log (5 events) extends it"
