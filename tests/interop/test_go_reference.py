"""Interoperability: Go's reference sumdb/note and sumdb/tlog accept our checkpoints and proofs.

Needs Debian's `golang-go` and `golang-golang-x-mod-dev` (`.ci/run` installs them):
without them these tests skip, saying which is missing; with `CI` set they fail instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from eventstore.merkle import root_of
from eventstore.notes import Signer, sign_note
from eventstore.tree import consistency_proof, event_leaf, inclusion_proof
from tests.merkle_helpers import Signed, signed_log

GOPATH = "/usr/share/gocode"
SOURCE = Path(__file__).parent / "goverify"


def _missing() -> str | None:
    if shutil.which("go") is None:
        return "the go command (Debian golang-go)"
    if not Path(GOPATH, "src/golang.org/x/mod/sumdb/tlog").is_dir():
        return f"{GOPATH}/src/golang.org/x/mod (Debian golang-golang-x-mod-dev)"
    return None


@pytest.fixture(scope="module")
def goverify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the Go interop tests must run: no {missing}", pytrace=False)
        pytest.skip(f"Go interop tests need {missing}")
    out = tmp_path_factory.mktemp("go") / "goverify"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": GOPATH,
        "GOCACHE": str(out.parent / "cache"),
        "GOFLAGS": "",
    }
    subprocess.run(
        ["go", "build", "-o", str(out), "."], cwd=SOURCE, env=env, check=True, timeout=300
    )
    return out


def check(binary: Path, request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(binary)], input=json.dumps(request), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    return asyncio.run(signed_log(tmp_path_factory.mktemp("log"), sizes=(1, 4, 13, 37)))


def test_go_opens_our_signed_checkpoint_and_accepts_every_proof(
    goverify: Path, signed: Signed
) -> None:
    async def build() -> dict[str, Any]:
        checkpoint = await signed.store.merkle.checkpoint()
        assert checkpoint is not None and checkpoint.size == 37
        records = [
            {
                "index": i,
                "leaf_input": b64(bytes.fromhex(signed.events[i].hash)),
                "proof": [b64(h) for h in await inclusion_proof(signed.store.merkle, i, 37)],
            }
            for i in range(37)
        ]
        leaves = [event_leaf(e) for e in signed.events]
        trees = [
            {
                "size": m,
                "root": b64(root_of(leaves[:m])),
                "proof": [b64(h) for h in await consistency_proof(signed.store.merkle, m, 37)],
            }
            for m in range(1, 38)
        ]
        return {
            "vkey": signed.signer.verifier_key(),
            "note": checkpoint.note,
            "records": records,
            "trees": trees,
        }

    request = asyncio.run(build())
    result = check(goverify, request)
    assert result["note"] == "ok" and result["size"] == 37
    assert result["records"] == ["ok"] * 37
    assert result["trees"] == ["ok"] * 37

    # Go refuses what we refuse: a changed proof hash, another leaf, another old root.
    bad = json.loads(json.dumps(request))
    bad["records"][5]["proof"][0] = b64(b"\x01" * 32)
    bad["records"][6]["leaf_input"] = bad["records"][7]["leaf_input"]
    bad["trees"][9]["root"] = bad["trees"][10]["root"]
    result = check(goverify, bad)
    assert result["records"][5] != "ok" and result["records"][6] != "ok"
    assert result["trees"][9] != "ok"
    assert result["records"].count("ok") == 35 and result["trees"].count("ok") == 36


def test_go_refuses_a_forged_or_altered_checkpoint(goverify: Path, signed: Signed) -> None:
    async def note() -> str:
        checkpoint = await signed.store.merkle.checkpoint()
        assert checkpoint is not None
        return checkpoint.note

    good = asyncio.run(note())
    vkey = signed.signer.verifier_key()
    altered_size = good.replace("\n37\n", "\n38\n", 1)
    lines = good.split("\n")
    root = base64.b64decode(lines[2])
    altered_root = good.replace(lines[2], b64(bytes([root[0] ^ 1]) + root[1:]), 1)

    forger = Signer.generate(signed.signer.name)
    forged = sign_note(good.split("\n\n")[0] + "\n", forger)
    for bad in (altered_size, altered_root, forged):
        assert check(goverify, {"vkey": vkey, "note": bad})["note"] != "ok"
    assert check(goverify, {"vkey": vkey, "note": good})["note"] == "ok"
