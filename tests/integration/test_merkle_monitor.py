"""Held to: the monitor catches a rewritten event, a recomputed chain and a rewritten head
(whatever checkpoint the service then serves), a forged checkpoint and a rollback."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.cli import main
from eventstore.cli.monitor import _evidence
from eventstore.monitor import Fetch, Finding, Seen, check_once
from eventstore.notes import NoteError, Signer, Verifier, sign_note
from eventstore.settings import Settings
from tests.merkle_helpers import (
    Signed,
    grow,
    rebuild_tree,
    replace_log,
    resign,
    resign_keeping_history,
    rewrite_event,
    signed_log,
)


@pytest.fixture
async def signed(tmp_path: Path) -> Signed:
    # The monitor first sees the tree of 13; the log then grows to 21.
    return await signed_log(tmp_path, sizes=(5, 13))


@pytest.fixture
async def fetch(signed: Signed) -> AsyncIterator[Fetch]:
    app = create_app(Settings(uri="memory://", source="simulator"), store=signed.store)
    async with AsyncTestClient(app) as client:

        async def get(path: str) -> tuple[int, bytes]:
            r = await client.get(path)
            return r.status_code, r.content

        yield get


def key(signed: Signed) -> Verifier:
    return Verifier.parse(signed.signer.verifier_key())


async def first_look(fetch: Fetch, signed: Signed, state: Path) -> None:
    seen = await check_once(fetch, key(signed), state)
    assert seen == Seen(size=13, previous=None)
    assert (state / "13").read_text() == (state / "checkpoint").read_text()


async def seen_then_grown(fetch: Fetch, signed: Signed, tmp_path: Path) -> Path:
    """The monitor's state after it saw the tree of 13, the log grown to 21 and signed again."""
    state = tmp_path / "monitor"
    await first_look(fetch, signed, state)
    await grow(signed, tmp_path)
    await resign_keeping_history(signed, tmp_path)
    return state


async def test_a_growing_log_is_followed(fetch: Fetch, signed: Signed, tmp_path: Path) -> None:
    state = tmp_path / "monitor"
    await first_look(fetch, signed, state)
    assert await check_once(fetch, key(signed), state) == Seen(size=13, previous=13)
    await grow(signed, tmp_path)
    await resign_keeping_history(signed, tmp_path)
    assert await check_once(fetch, key(signed), state) == Seen(size=21, previous=13)


@pytest.mark.parametrize("seq", [3, 17])
async def test_a_rewritten_event_with_recomputed_chains_head_and_tree_is_caught(
    fetch: Fetch, signed: Signed, tmp_path: Path, seq: int
) -> None:
    state = tmp_path / "monitor"
    await first_look(fetch, signed, state)
    await grow(signed, tmp_path)
    await replace_log(signed.store, rewrite_event(signed.events, seq))
    await resign(signed, tmp_path / "fresh-state")  # even with the key, history differs
    found = await check_once(fetch, key(signed), state)
    if seq <= 13:
        assert isinstance(found, Finding) and found.finding == "refused-proof"
        assert found.proof is not None and found.saved and "\n13\n" in found.saved
    else:  # a rewrite after what the monitor saw is outside what it can know
        assert found == Seen(size=21, previous=13)
    assert (state / "checkpoint").read_text() == (state / ("21" if seq > 13 else "13")).read_text()


async def test_a_rewrite_served_at_the_same_size_is_a_fork(
    fetch: Fetch, signed: Signed, tmp_path: Path
) -> None:
    state = tmp_path / "monitor"
    await first_look(fetch, signed, state)
    await replace_log(signed.store, rewrite_event(signed.events, 9))
    await resign(signed, tmp_path / "fresh-state")
    found = await check_once(fetch, key(signed), state)
    assert isinstance(found, Finding) and found.finding == "fork"
    assert found.saved != found.served


async def test_a_truncated_log_with_a_rewritten_head_is_a_rollback(
    fetch: Fetch, signed: Signed, tmp_path: Path
) -> None:
    state = tmp_path / "monitor"
    await first_look(fetch, signed, state)
    await replace_log(signed.store, signed.events[:10])
    await resign(signed, tmp_path / "fresh-state")
    found = await check_once(fetch, key(signed), state)
    assert isinstance(found, Finding) and found.finding == "rollback"
    assert "\n10\n" in found.served


async def test_a_tree_left_alone_but_rebuilt_proofs_are_refused(
    fetch: Fetch, signed: Signed, tmp_path: Path
) -> None:
    """The checkpoints are kept, the nodes rebuilt from a rewritten log: proofs stop verifying."""
    state = await seen_then_grown(fetch, signed, tmp_path)
    kept = signed.store.merkle
    await replace_log(signed.store, rewrite_event(signed.events, 4))
    await rebuild_tree(signed.store)
    for size in (5, 13, 21):
        cp = await kept.checkpoint(size)
        assert cp is not None
        await signed.store.merkle.add_checkpoint(cp)
    found = await check_once(fetch, key(signed), state)
    assert isinstance(found, Finding) and found.finding == "refused-proof"


async def test_a_consistency_proof_nested_too_deeply_is_a_refused_proof(
    fetch: Fetch, signed: Signed, tmp_path: Path
) -> None:
    """A service answering with JSON nested past the decoder's recursion limit: a finding."""
    state = await seen_then_grown(fetch, signed, tmp_path)

    async def deep(path: str) -> tuple[int, bytes]:
        if path.startswith("/v1/proof/consistency"):
            return 200, b'{"hashes": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        return await fetch(path)

    found = await check_once(deep, key(signed), state)
    assert isinstance(found, Finding) and found.finding == "refused-proof"
    assert "nested too deeply" in found.detail


@pytest.mark.parametrize("forgery", ["other key", "altered root", "altered size", "unsigned"])
async def test_a_forged_checkpoint_is_refused(
    fetch: Fetch, signed: Signed, tmp_path: Path, forgery: str
) -> None:
    state = tmp_path / "monitor"
    await first_look(fetch, signed, state)
    latest = await signed.store.merkle.checkpoint()
    assert latest is not None
    text = latest.note.split("\n\n")[0] + "\n"
    lines = text.split("\n")
    note = {
        "other key": sign_note(text, Signer.generate(signed.signer.name)),
        "altered root": latest.note.replace(lines[2], lines[2][:-6] + "AAAAA=", 1),
        "altered size": latest.note.replace("\n13\n", "\n14\n", 1),
        "unsigned": text,
    }[forgery]
    forged = type(latest)(
        size=99, root=latest.root, note=note, signed=True, created_at=latest.created_at
    )
    await signed.store.merkle.add_checkpoint(forged)
    found = await check_once(fetch, key(signed), state)
    assert isinstance(found, Finding) and found.finding == "bad-signature"
    assert found.saved is not None and "\n13\n" in found.saved


def test_the_cli_says_unreachable_and_bad_keys_with_exit_1(tmp_path: Path) -> None:
    signer = Signer.generate("log.test")
    base = ["monitor", "--state", str(tmp_path / "m"), "--once"]
    assert main([*base, "http://127.0.0.1:9", "--key", signer.verifier_key()]) == 1
    assert main([*base, "http://127.0.0.1:9", "--key", "nope"]) == 1
    assert main([*base, "ftp://x", "--key", signer.verifier_key()]) == 1


def test_evidence_is_printed_as_json() -> None:
    finding = Finding(finding="fork", detail="d", saved="a\n", served="b\n")
    out = io.StringIO()
    _evidence(finding, out)
    assert json.loads(out.getvalue()) == {
        "finding": "fork",
        "detail": "d",
        "saved": "a\n",
        "served": "b\n",
        "proof": None,
    }


@pytest.mark.parametrize(
    ("saved", "says"),
    [
        (b"eventstore/eventstore\n45\n\xff\n", "is not a checkpoint: not UTF-8 text"),
        (b"eventstore/eventstore\n45\nroot\n", ""),  # UTF-8, but no signed note
    ],
)
async def test_a_saved_state_that_is_not_a_checkpoint_is_an_error_naming_the_file(
    fetch: Fetch, signed: Signed, tmp_path: Path, saved: bytes, says: str
) -> None:
    state = tmp_path / "monitor"
    state.mkdir()
    (state / "checkpoint").write_bytes(saved)
    with pytest.raises(NoteError) as raised:
        await check_once(fetch, key(signed), state)
    assert str(raised.value).startswith(f"{state / 'checkpoint'}")
    assert says in str(raised.value)
    assert (state / "checkpoint").read_bytes() == saved  # left as it was


async def test_a_saved_checkpoint_whose_line_ends_became_crlf_is_refused_as_verify_does(
    fetch: Fetch, signed: Signed, tmp_path: Path
) -> None:
    """The saved note is read as its bytes: a CRLF copy is not the note that was signed
    (`verify --checkpoint` and `verify-proof` refuse it so; text mode had read it as LF)."""
    state = tmp_path / "monitor"
    await first_look(fetch, signed, state)
    saved = (state / "checkpoint").read_bytes()
    assert b"\r" not in saved and saved.endswith(b"\n")  # written as the note's own bytes
    crlf = saved.replace(b"\n", b"\r\n")
    (state / "checkpoint").write_bytes(crlf)
    with pytest.raises(NoteError) as raised:
        await check_once(fetch, key(signed), state)
    assert str(raised.value).startswith(f"{state / 'checkpoint'}")
    assert "line endings were changed to CRLF" in str(raised.value)
    assert (state / "checkpoint").read_bytes() == crlf  # left as it was


def test_the_cli_says_a_state_that_is_not_utf8_in_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventstore.cli import monitor as cli_monitor

    async def served(path: str) -> tuple[int, bytes]:
        return 200, b"not a signed note\n"

    monkeypatch.setattr(cli_monitor, "http_fetch", lambda base, read_key: served)
    state = tmp_path / "ms_bin"
    state.mkdir()
    (state / "checkpoint").write_bytes(b"eventstore/eventstore\n45\n\xff\n")
    signer = Signer.generate("log.test")
    out = io.StringIO()
    argv = ["monitor", "http://h", "--key", signer.verifier_key(), "--state", str(state)]
    assert main([*argv, "--once"], out=out) == 1
    err = capsys.readouterr().err
    assert err == (
        f"eventstore: error: the state in {state} cannot be used: {state / 'checkpoint'} "
        "is not a checkpoint: not UTF-8 text (invalid start byte)\n"
    )
    assert out.getvalue() == ""
