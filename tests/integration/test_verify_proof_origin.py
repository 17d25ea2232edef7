"""`verify-proof` shows the checkpoint's origin and, with `--origin`, refuses another log's."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

import bson

from eventstore.cli import main
from tests.merkle_helpers import Signed, signed_log


def run(*argv: str, store: Any = None) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out, store=store), out.getvalue()


def proof_of(signed: Signed, seq: int, size: int, path: Path) -> Path:
    argv = ("proof", str(seq), "--size", str(size), "--out", str(path), "--uri", "memory://")
    assert run(*argv, store=signed.store)[0] == 0
    return path


def test_the_origin_is_shown_and_held_to(tmp_path: Path) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    key = signed.signer.verifier_key()
    proof = proof_of(signed, 9, 13, tmp_path / "p.json")
    code, out = run("verify-proof", str(proof), "--key", key)
    assert code == 0 and "in the tree of 13 events of log 'eventstore/test' signed by" in out
    code, out = run("verify-proof", str(proof), "--key", key, "--json")
    body = json.loads(out)
    assert (code, body["valid"], body["origin"], body["seq"], body["tree_size"]) == (
        0,
        True,
        "eventstore/test",
        9,
        13,
    )
    assert run("verify-proof", str(proof), "--key", key, "--origin", "eventstore/test")[0] == 0
    code, out = run("verify-proof", str(proof), "--key", key, "--origin", "grow.example/log")
    assert (code, out) == (
        2,
        "INVALID: the checkpoint is of log 'eventstore/test', not of 'grow.example/log'"
        " (--origin)\n",
    )
    code, out = run(
        "verify-proof", str(proof), "--key", key, "--origin", "grow.example/log", "--json"
    )
    assert (code, json.loads(out)) == (
        2,
        {
            "valid": False,
            "reason": "the checkpoint is of log 'eventstore/test', not of 'grow.example/log'"
            " (--origin)",
            "seq": 9,
            "tree_size": 13,
            "origin": "eventstore/test",
        },
    )


def test_an_altered_event_that_still_decodes_reports_the_seq_the_proof_is_about(
    tmp_path: Path,
) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    proof = proof_of(signed, 9, 13, tmp_path / "p.json")
    body = json.loads(proof.read_text())
    event = bson.decode(base64.b64decode(body["event_bson"]))
    event["stream"] = "refunds"  # still BSON, still seq 9: only the hash changes
    body["event_bson"] = base64.b64encode(bson.encode(event)).decode()
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(body))
    code, out = run("verify-proof", str(altered), "--key", signed.signer.verifier_key(), "--json")
    assert (code, json.loads(out)) == (
        2,
        {
            "valid": False,
            "reason": "the inclusion proof leads to another root",
            "seq": 9,
            "tree_size": 13,
            "origin": "eventstore/test",
        },
    )


def test_a_tree_of_one_event_is_said_in_the_singular(tmp_path: Path) -> None:
    signed = asyncio.run(signed_log(tmp_path, sizes=(1,)))
    proof = proof_of(signed, 1, 1, tmp_path / "p.json")
    code, out = run("verify-proof", str(proof), "--key", signed.signer.verifier_key())
    assert code == 0
    assert out.endswith(" is in the tree of 1 event of log 'eventstore/test' signed by log.test\n")
