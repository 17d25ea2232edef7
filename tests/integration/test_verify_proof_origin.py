"""`verify-proof` shows the checkpoint's origin and, with `--origin`, refuses another log's."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

import bson
import pytest

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


@pytest.mark.parametrize(
    ("leaf_index", "event_seq", "about"),
    [
        (2, None, 9),  # the leaf altered: the file is still about its event, seq 9
        (8, "nine", 9),  # the event's seq is no seq: the leaf says which event
        (8, True, 9),
        (-1, 0, None),  # neither names an event
    ],
)
def test_an_altered_leaf_index_reports_the_seq_of_the_event_in_the_file(
    tmp_path: Path, leaf_index: int, event_seq: object, about: int | None
) -> None:
    signed = asyncio.run(signed_log(tmp_path))
    body = json.loads(proof_of(signed, 9, 13, tmp_path / "p.json").read_text())
    body["leaf_index"] = leaf_index
    if event_seq is not None:
        event = bson.decode(base64.b64decode(body["event_bson"]))
        event["seq"] = event_seq
        body["event_bson"] = base64.b64encode(bson.encode(event)).decode()
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(body))
    code, out = run("verify-proof", str(altered), "--key", signed.signer.verifier_key(), "--json")
    verdict = json.loads(out)
    assert (code, verdict["valid"], verdict["seq"]) == (2, False, about)


def test_a_tree_of_one_event_is_said_in_the_singular(tmp_path: Path) -> None:
    signed = asyncio.run(signed_log(tmp_path, sizes=(1,)))
    proof = proof_of(signed, 1, 1, tmp_path / "p.json")
    code, out = run("verify-proof", str(proof), "--key", signed.signer.verifier_key())
    assert code == 0
    assert out.endswith(" is in the tree of 1 event of log 'eventstore/test' signed by log.test\n")


def test_an_event_whose_seq_is_text_is_said_so_not_called_another_leaf(tmp_path: Path) -> None:
    # It read "the event's seq 34 is not leaf 33 + 1", which contradicts itself.
    signed = asyncio.run(signed_log(tmp_path))
    body = json.loads(proof_of(signed, 9, 13, tmp_path / "p.json").read_text())
    event = bson.decode(base64.b64decode(body["event_bson"]))
    event["seq"] = "9"
    body["event_bson"] = base64.b64encode(bson.encode(event)).decode()
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(body))
    code, out = run("verify-proof", str(altered), "--key", signed.signer.verifier_key(), "--json")
    verdict = json.loads(out)
    assert (code, verdict["reason"], verdict["seq"]) == (
        2,
        "the event's seq is not an integer: '9'",
        9,
    )
