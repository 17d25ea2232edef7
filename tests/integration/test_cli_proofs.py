"""keygen, proof and verify-proof as a user runs them (in process, memory store)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import locale
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli import main
from eventstore.notes import Signer, Verifier
from eventstore.settings import SettingsError
from eventstore.signing import SignerState, load_signer, read_state, write_key, write_state
from tests.merkle_helpers import signed_log


def run(*argv: str, store: Any = None) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out, store=store), out.getvalue()


def test_keygen_writes_a_private_key_file_and_prints_the_verifier_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "log.key"
    code, out = run("keygen", "log.example.com", "--out", str(key))
    assert code == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    signer = Signer.parse(key.read_text())
    assert out.strip() == signer.verifier_key()
    assert Verifier.parse(out.strip()).name == "log.example.com"
    assert load_signer(str(key)).verifier_key() == out.strip()
    # Never overwritten.
    before = key.read_text()
    code, _ = run("keygen", "log.example.com", "--out", str(key))
    assert code == 1 and key.read_text() == before
    assert "refusing to overwrite" in capsys.readouterr().err
    for name in ("a+b", "a b"):
        code, _ = run("keygen", name, "--out", str(tmp_path / "other"))
        assert code == 1 and not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("log\x1b[2J", "'log\\x1b[2J'"),
        ("log\u202eexample", "'log\\u202eexample'"),  # shown reversed: "logelpmaxe"
        ("log\u200b.example", "'log\\u200b.example'"),  # invisible
        ("log\udcff", "'log\\udcff'"),  # the byte 0xff of an argument (not UTF-8)
    ],
)
def test_keygen_refuses_a_name_that_does_not_show_as_it_is(
    name: str, shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "log.key"
    assert run("keygen", name, "--out", str(key)) == (1, "")
    err = capsys.readouterr().err
    assert err.startswith(f"eventstore: error: key name {shown} must be printable text")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "\x1b" not in err and "\u202e" not in err and not key.exists()


def test_a_key_with_a_non_ascii_name_round_trips_under_an_ascii_locale(tmp_path: Path) -> None:
    """Key files are UTF-8 whatever the locale: a key made on one machine loads on another."""
    key = tmp_path / "log.key"
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # files opened without an encoding would be ASCII
    try:
        assert locale.getpreferredencoding(False) != "UTF-8"
        written = write_key(str(key), "журнал.example")
        loaded = load_signer(str(key))
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert loaded.verifier_key() == written.verifier_key()
    assert Verifier.parse(loaded.verifier_key()).name == "журнал.example"
    assert key.read_bytes().decode("utf-8") == written.private_key() + "\n"


def test_a_group_or_world_readable_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    run("keygen", "log", "--out", str(key))
    os.chmod(key, 0o640)
    with pytest.raises(SettingsError, match="readable by group or others"):
        load_signer(str(key))


def test_a_signing_key_or_signer_state_that_cannot_work_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(SettingsError) as refused:
        load_signer(str(missing))
    assert str(refused.value) == (
        f"SIGNING_KEY cannot be read: {missing} (No such file or directory)"
    )
    assert refused.value.setting == "signing_key"
    key = tmp_path / "log.key"
    write_key(str(key), "log.test")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_key(str(key), "other")
    for mode in (0o640, 0o604, 0o610):
        os.chmod(key, mode)
        with pytest.raises(SettingsError) as refused:
            load_signer(str(key))
        assert str(refused.value) == (
            f"SIGNING_KEY {key} is readable by group or others (mode {mode:04o}); chmod 600 it"
        )
        assert refused.value.setting == "signing_key"
    os.chmod(key, 0o600)
    key.write_text("PRIVATE+KEY+log.test\n")
    with pytest.raises(SettingsError) as refused:
        load_signer(str(key))
    assert str(refused.value) == (
        f"SIGNING_KEY {key}: a signer key reads PRIVATE+KEY+<name>+<key id>+<key>"
    )
    assert refused.value.setting == "signing_key"

    state = tmp_path / "state"
    assert read_state(str(state)) is None
    written = SignerState(origin="o", size=3, root=base64.b64encode(bytes(32)).decode())
    write_state(str(state), written)
    assert read_state(str(state)) == written
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert not (tmp_path / "state.tmp").exists()
    state.write_text("{not json")
    with pytest.raises(SettingsError, match=f"^SIGNER_STATE {state} is not a signer state: "):
        read_state(str(state))


def test_a_new_key_file_is_never_open_to_others_even_before_its_chmod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    monkeypatch.setattr(os, "chmod", lambda path, mode: modes.append(mode))  # no chmod at all
    old = os.umask(0)
    try:
        write_key(str(tmp_path / "log.key"), "log.test")
    finally:
        os.umask(old)
    assert modes == [0o600]
    assert stat.S_IMODE(os.stat(tmp_path / "log.key").st_mode) == 0o600  # created so


def test_proof_then_verify_proof_offline(tmp_path: Path) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    vkey = signed.signer.verifier_key()
    proof = tmp_path / "p.json"
    code, _ = run(
        "proof", "9", "--size", "13", "--out", str(proof), "--uri", "memory://", store=signed.store
    )
    assert code == 0
    assert json.loads(proof.read_text())["tree_size"] == 13
    code, out = run("verify-proof", str(proof), "--key", vkey)
    assert code == 0 and out.startswith("valid: event seq 9")
    # Latest checkpoint by default, on stdout.
    code, out = run("proof", "21", "--uri", "memory://", store=signed.store)
    assert code == 0 and json.loads(out)["tree_size"] == 21

    body = json.loads(proof.read_text())
    event = base64.b64decode(body["event_bson"])
    tampered = {
        "altered event": {**body, "event_bson": base64.b64encode(event[:-2] + b"x\x00").decode()},
        "altered proof": {
            **body,
            "hashes": [base64.b64encode(b"\x00" * 32).decode(), *body["hashes"][1:]],
        },
        "other leaf": {**body, "leaf_index": 9},
        "unsigned": {**body, "checkpoint": body["checkpoint"].split("\n\n")[0] + "\n"},
        "not json": "{",
    }
    for name, content in tampered.items():
        bad = tmp_path / f"{name}.json"
        bad.write_text(content if isinstance(content, str) else json.dumps(content))
        code, out = run("verify-proof", str(bad), "--key", vkey)
        assert code == 2 and out.startswith("INVALID"), name
    code, out = run("verify-proof", str(tmp_path / "unsigned.json"), "--key", vkey)
    assert code == 2 and "unsigned" in out
    other = Signer.generate("log.test").verifier_key()
    assert run("verify-proof", str(proof), "--key", other)[0] == 2
    # Unreadable file or malformed key: 1.
    assert run("verify-proof", str(tmp_path / "missing"), "--key", vkey)[0] == 1
    assert run("verify-proof", str(proof), "--key", "not-a-key")[0] == 1


def test_proof_of_an_unknown_event_or_size_exits_1(tmp_path: Path) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    for argv in (("99",), ("3", "--size", "4"), ("14", "--size", "13")):
        assert run("proof", *argv, "--uri", "memory://", store=signed.store)[0] == 1


def same_json(text: str, body: object) -> bool:
    try:
        return bool(json.loads(text) == body)
    except ValueError:
        return False


def test_a_proof_file_with_any_line_spoiled_is_invalid_exit_2_never_a_traceback(
    tmp_path: Path,
) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    vkey = signed.signer.verifier_key()
    code, text = run("proof", "9", "--uri", "memory://", store=signed.store)
    assert code == 0
    body = json.loads(text)
    # The file as a person would save it (one field a line), and the note inside it.
    lines = json.dumps(body, indent=1).split("\n")
    spoiled: list[str] = []
    for i in range(len(lines)):
        for junk in ("", "garbage", '"x": 1,', lines[i][: len(lines[i]) // 2]):
            spoiled.append("\n".join([*lines[:i], junk, *lines[i + 1 :]]))
    note = body["checkpoint"].split("\n")
    for i in range(len(note)):
        for junk in ("", "x", "— ", "— log.test AAAA", "-1", "9" * 30, "\x00"):
            changed = "\n".join([*note[:i], junk, *note[i + 1 :]])
            spoiled.append(json.dumps({**body, "checkpoint": changed}))
    spoiled.append("\n".join(lines) + "\n}")
    for n, content in enumerate(spoiled):
        if same_json(content, body):  # a change JSON ignores (a blank line): still valid
            continue
        bad = tmp_path / f"bad{n}.json"
        bad.write_text(content, encoding="utf-8")
        code, out = run("verify-proof", str(bad), "--key", vkey)
        assert code == 2 and out.startswith("INVALID: "), (content, out)
    assert len(spoiled) > 50
    raw = tmp_path / "raw.json"
    raw.write_bytes(b"\xff\xfe" + text.encode()[:40])  # not UTF-8, cut short
    code, out = run("verify-proof", str(raw), "--key", vkey)
    assert code == 2 and out.startswith("INVALID: ")
