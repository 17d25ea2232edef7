"""Held to: `verify --checkpoint` catches a rewritten event, a recomputed chain and a rewritten
head; a forged checkpoint (another key, an altered root, an altered size) is refused."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.notes import Signer, sign_note
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
    # The chains alone now verify: the attacker recomputed them and the head.
    code, body = run("verify", store=signed.store)
    assert code == 0 and body["valid"] is True
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
    assert code == 0  # the recorded head was rewritten to match
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
