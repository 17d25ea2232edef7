"""A corrupt checkpoint or note is called what it is, never "unsigned (no SIGNING_KEY)".

Exit codes stay as documented: `verify --checkpoint` and `verify-proof` 2 (content that
fails), `monitor` 1 for a state file that cannot be used or an answer that is no
checkpoint at all (not evidence), 2 for a checkpoint without a valid signature.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli import main
from eventstore.monitor import Fetch
from eventstore.notes import Signer, checkpoint_text
from tests.merkle_helpers import signed_log

NOT_A_CHECKPOINT = (
    "not a checkpoint or a signed note: a checkpoint has an origin, a size and a root line"
)


def run(*argv: str, store: Any = None) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out, store=store), out.getvalue()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"hello world\n", NOT_A_CHECKPOINT),
        (b"", "not a signed note: it is empty"),
        (b"<html>\n\n<body>oops</body>\n", "not a signed note: a signature line starts with"),
    ],
)
def test_verify_checkpoint_names_a_file_that_is_not_a_checkpoint(
    tmp_path: Path, content: bytes, says: str
) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    saved = tmp_path / "saved"
    saved.write_bytes(content)
    code, out = run(
        "verify",
        "--checkpoint",
        str(saved),
        "--key",
        signed.signer.verifier_key(),
        "--uri",
        "memory://",
        store=signed.store,
    )
    assert code == 2
    assert out.startswith(f"checkpoint: TAMPERED: checkpoint refused: {says}")
    assert "unsigned" not in out


def test_verify_checkpoint_says_a_saved_checkpoint_s_line_endings_were_changed(
    tmp_path: Path,
) -> None:
    # A signed checkpoint saved with CRLF line ends: its signature covers the LF bytes.
    # Read in text mode the file was turned back into LF, passed as signed and was used.
    signed = asyncio.run(signed_log(tmp_path))
    latest = asyncio.run(signed.store.merkle.checkpoint())
    assert latest is not None and latest.signed
    saved = tmp_path / "saved"
    saved.write_bytes(latest.note.replace("\n", "\r\n").encode())
    argv = ("verify", "--checkpoint", str(saved), "--key", signed.signer.verifier_key())
    code, out = run(*argv, "--uri", "memory://", store=signed.store)
    assert code == 2
    assert out.startswith(
        "checkpoint: TAMPERED: checkpoint refused: not a signed note: its line endings were"
        " changed to CRLF"
    )
    saved.write_bytes(latest.note.encode())  # the same note as served: valid
    assert run(*argv, "--uri", "memory://", store=signed.store)[0] == 0


def test_verify_proof_says_the_line_endings_of_its_checkpoint_were_changed(
    tmp_path: Path,
) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    proof = tmp_path / "p.json"
    argv = ("proof", "9", "--size", "13", "--out", str(proof), "--uri", "memory://")
    assert run(*argv, store=signed.store)[0] == 0
    body = json.loads(proof.read_text())
    body["checkpoint"] = body["checkpoint"].replace("\n", "\r\n")
    proof.write_text(json.dumps(body))
    code, out = run("verify-proof", str(proof), "--key", signed.signer.verifier_key())
    assert (code, out) == (
        2,
        "INVALID: checkpoint refused: not a signed note: its line endings were changed to"
        " CRLF (\\r\\n): a note's lines end with \\n alone, and its signature covers the bytes"
        " as they were signed\n",
    )


def monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: bytes, saved: bytes | None
) -> tuple[int, str, Path]:
    from eventstore.cli import monitor as cli_monitor

    async def fetch(path: str) -> tuple[int, bytes]:
        return 200, served

    answer: Fetch = fetch
    monkeypatch.setattr(cli_monitor, "http_fetch", lambda base, key: answer)
    state = tmp_path / "m"
    if saved is not None:
        state.mkdir()
        (state / "checkpoint").write_bytes(saved)
    key = Signer.generate("log.test").verifier_key()
    out = io.StringIO()
    argv = ["monitor", "http://h", "--key", key, "--state", str(state), "--once"]
    return main(argv, out=out), out.getvalue(), state


def test_a_corrupt_monitor_state_is_named_not_called_unsigned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, state = monitor(tmp_path, monkeypatch, b"", b"garbage\n")
    assert (code, out) == (1, "")
    assert capsys.readouterr().err == (
        f"eventstore: error: the state in {state} cannot be used: {state / 'checkpoint'}:"
        f" {NOT_A_CHECKPOINT}\n"
    )


@pytest.mark.parametrize(
    ("served", "says"),
    [
        (
            b"<html>oops</html>",
            "not a checkpoint or a signed note: a checkpoint ends with a newline",
        ),
        (b"", "not a signed note: it is empty"),
        (b"log\r\n2\r\nAAAA\r\n\r\n", "not a signed note: its line endings were changed to CRLF"),
    ],
)
def test_a_service_answering_what_is_no_checkpoint_is_an_error_not_unsigned(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: bytes,
    says: str,
) -> None:
    code, out, state = monitor(tmp_path, monkeypatch, served, None)
    assert (code, out) == (1, "")
    err = capsys.readouterr().err
    assert err.startswith(f"eventstore: error: the answer to GET /v1/checkpoint is refused: {says}")
    assert "unsigned" not in err and not state.exists()  # nothing saved


def test_a_served_checkpoint_without_signature_is_still_evidence_saying_unsigned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = checkpoint_text("eventstore/test", 3, bytes(32)).encode()
    code, out, _ = monitor(tmp_path, monkeypatch, served, None)
    assert code == 2
    assert json.loads(out)["detail"] == (
        "the served checkpoint is refused: the checkpoint is unsigned (the log has no"
        " SIGNING_KEY): nothing vouches for it"
    )
