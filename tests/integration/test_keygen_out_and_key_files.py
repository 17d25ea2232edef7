"""keygen's `--out` and the SIGNING_KEY file: each mistake is said as it is."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.settings import SettingsError
from eventstore.signing import load_signer, write_key


def test_keygen_out_dash_is_refused_and_prints_no_private_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert main(["keygen", "log.example", "--out", "-"], out=out) == 1
    captured = capsys.readouterr()
    assert out.getvalue() == "" and captured.out == ""
    assert captured.err == (
        "eventstore: error: --out - would print the private key: give the path of the key"
        " file to create (keygen prints only the verifier key)\n"
    )
    assert os.listdir(tmp_path) == []  # no file named "-"


def test_keygen_out_a_directory_says_it_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert main(["keygen", "log.example", "--out", str(tmp_path)], out=out) == 1
    assert out.getvalue() == ""
    assert capsys.readouterr().err == (
        f"eventstore: error: {tmp_path} is a directory: give the path of the key file to"
        " create in it\n"
    )
    assert os.listdir(tmp_path) == []
    with pytest.raises(IsADirectoryError):
        write_key(str(tmp_path), "log.example")


def test_a_signing_key_file_holding_two_keys_says_so(tmp_path: Path) -> None:
    first, second = tmp_path / "a.key", tmp_path / "b.key"
    write_key(str(first), "log.example")
    write_key(str(second), "log.example")
    both = tmp_path / "both.key"
    both.write_text(first.read_text() + second.read_text())
    os.chmod(both, 0o600)
    with pytest.raises(SettingsError) as refused:
        load_signer(str(both))
    assert str(refused.value) == (
        f"SIGNING_KEY {both} holds 2 lines, not one key: a key file holds one PRIVATE+KEY+..."
        " line, as eventstore keygen writes it"
    )
    assert refused.value.setting == "signing_key"
    assert load_signer(str(first)).private_key() + "\n" == first.read_text()
