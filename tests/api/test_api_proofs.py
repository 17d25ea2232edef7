"""The verifiable log over HTTP: checkpoints and proofs (public), proof files (read keys)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from eventstore.memory.store import MemoryStore
from eventstore.merkle import leaf_hash, root_of, verify_consistency, verify_inclusion
from eventstore.model import TreeCheckpoint
from eventstore.notes import (
    Signer,
    Verifier,
    checkpoint_text,
    cosign,
    open_note,
    parse_checkpoint,
    sign_note,
    verify_cosignature,
)
from eventstore.proofs import ProofVerdict, event_proof, full_note, verify_proof_file
from eventstore.tree import event_leaf
from tests.api.conftest import READ_KEY, AppFactory
from tests.helpers import LogBuilder
from tests.merkle_helpers import Signed, replace_log, rewrite_event, signed_log

AUTH = {"Authorization": f"Bearer {READ_KEY}"}


@pytest.fixture
async def signed(tmp_path: Path) -> Signed:
    return await signed_log(tmp_path)


@pytest.fixture
async def keyed(signed: Signed, make_app: AppFactory) -> Any:
    async with AsyncTestClient(make_app(signed.store, read_keys=(READ_KEY,))) as c:
        yield c


def b64d(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


async def test_the_latest_checkpoint_is_public_and_signed(signed: Signed, keyed: Any) -> None:
    r = await keyed.get("/v1/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    text = open_note(r.text, Verifier.parse(signed.signer.verifier_key()))
    leaves = [event_leaf(e) for e in signed.events]
    assert parse_checkpoint(text) == ("eventstore/test", 21, root_of(leaves))
    older = await keyed.get("/v1/checkpoint", params={"size": 13})
    assert older.status_code == 200 and "\n13\n" in older.text
    missing = await keyed.get("/v1/checkpoint", params={"size": 14})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_no_checkpoint_yet_is_a_404_problem(make_app: AppFactory) -> None:
    async with AsyncTestClient(make_app(MemoryStore())) as c:
        r = await c.get("/v1/checkpoint")
        assert r.status_code == 404 and r.json()["status"] == 404
        assert r.json()["detail"] == "no checkpoint has been made yet"
        r = await c.get("/v1/proof/inclusion", params={"seq": 1})
        assert r.status_code == 404


async def test_inclusion_proofs_verify_against_the_signed_root(signed: Signed, keyed: Any) -> None:
    leaves = [event_leaf(e) for e in signed.events]
    for seq, size in ((1, 21), (7, 13), (13, 13), (21, None)):
        params: dict[str, Any] = {"seq": seq} | ({"size": size} if size else {})
        r = await keyed.get("/v1/proof/inclusion", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        n = size or 21
        assert body["leaf_index"] == seq - 1 and body["tree_size"] == n
        assert base64.b64decode(body["leaf_hash"]) == leaves[seq - 1]
        verify_inclusion(leaves[seq - 1], seq - 1, n, b64d(body["hashes"]), root_of(leaves[:n]))


async def test_consistency_proofs_between_checkpoints(signed: Signed, keyed: Any) -> None:
    leaves = [event_leaf(e) for e in signed.events]
    r = await keyed.get("/v1/proof/consistency", params={"from": 5})
    assert r.status_code == 200
    body = r.json()
    assert (body["from"], body["to"]) == (5, 21)
    verify_consistency(5, 21, root_of(leaves[:5]), root_of(leaves), b64d(body["hashes"]))
    same = await keyed.get("/v1/proof/consistency", params={"from": 13, "to": 13})
    assert same.json() == {"from": 13, "to": 13, "hashes": []}


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/proof/inclusion", {"seq": 14, "size": 13}, 422),
        ("/v1/proof/inclusion", {"seq": 1, "size": 22}, 422),
        ("/v1/proof/consistency", {"from": 14, "to": 13}, 422),
        ("/v1/proof/consistency", {"from": 1, "to": 99}, 422),
        ("/v1/proof/inclusion", {"seq": "x"}, 400),
        ("/v1/proof/inclusion", {"seq": 0}, 400),
        ("/v1/proof/inclusion", {}, 400),
        ("/v1/proof/inclusion", {"seq": 1, "sise": 3}, 400),
        ("/v1/proof/consistency", {"from": 0}, 400),
        ("/v1/proof/consistency", {"from": "1.5"}, 400),
        ("/v1/checkpoint", {"size": -1}, 400),
        ("/v1/checkpoint", {"size": "x"}, 400),
        ("/v1/checkpoint", {"size": 14}, 404),  # inside the tree, none made at 14
        ("/v1/proof/consistency", {"from": 2, "to": "x"}, 400),
        ("/v1/proof/inclusion", {"seq": "9" * 30}, 400),
        # The proof file: seq > size and a size beyond the tree are impossible (422),
        # a size inside the tree with no checkpoint made at it is not found (404).
        ("/v1/events/3/proof", {"size": 2}, 422),
        ("/v1/events/3/proof", {"size": 99}, 422),
        ("/v1/events/3/proof", {"size": 4}, 404),
        ("/v1/events/3/proof", {"size": "x"}, 400),
        ("/v1/events/0/proof", {}, 400),
        # Litestar's int() read each of these as a seq: the first three as event 10.
        ("/v1/events/1_0/proof", {}, 400),
        ("/v1/events/+10/proof", {}, 400),
        ("/v1/events/010/proof", {}, 400),
        ("/v1/events/%201/proof", {}, 400),
        ("/v1/events/%D9%A1/proof", {}, 400),  # ARABIC-INDIC DIGIT ONE
        ("/v1/events/abc/proof", {}, 400),
        ("/v1/streams/orders/entities/o1/proof", {"size": 99}, 422),
        ("/v1/streams/orders/entities/o1/proof", {"size": 4}, 404),
        ("/v1/streams/orders/entities/o1/proof", {"size": 0}, 400),
    ],
)
async def test_bad_proof_parameters(
    keyed: Any, path: str, params: dict[str, Any], status: int
) -> None:
    r = await keyed.get(path, params=params, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "params", "key", "detail"),
    [
        ("/v1/proof/inclusion", {"seq": 14, "size": 13}, "seq", "seq 14 is beyond tree size 13"),
        ("/v1/proof/inclusion", {"seq": 22}, "seq", "seq 22 is beyond tree size 21"),
        (
            "/v1/proof/inclusion",
            {"seq": 1, "size": 22},
            "size",
            "tree size 22 is beyond the stored tree",
        ),
        ("/v1/proof/consistency", {"from": 14, "to": 13}, "from", "size 14 is beyond size 13"),
        ("/v1/proof/consistency", {"from": 22}, "from", "size 22 is beyond size 21"),
        (
            "/v1/proof/consistency",
            {"from": 1, "to": 99},
            "to",
            "tree size 99 is beyond the stored tree",
        ),
        ("/v1/events/3/proof", {"size": 2}, "seq", "seq 3 is beyond tree size 2"),
        # No size: the latest checkpoint's, so the same 422 as when it is given (no event
        # has seq 40: this was a 404 without `size`, a 422 with `size=21`).
        ("/v1/events/40/proof", {}, "seq", "seq 40 is beyond tree size 21"),
        ("/v1/events/40/proof", {"size": 21}, "seq", "seq 40 is beyond tree size 21"),
        ("/v1/events/3/proof", {"size": 99}, "size", "tree size 99 is beyond the stored tree"),
        (
            "/v1/streams/orders/entities/o1/proof",
            {"size": 99},
            "size",
            "tree size 99 is beyond the stored tree",
        ),
    ],
)
async def test_a_proof_beyond_the_tree_names_both_sizes_and_the_parameter_at_fault(
    keyed: Any, path: str, params: dict[str, Any], key: str, detail: str
) -> None:
    r = await keyed.get(path, params=params, headers=AUTH)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"].startswith(detail)
    # DESIGN.md "Status codes": a 422 carries `errors: [{key, message}]`.
    assert body["errors"] == [{"key": key, "message": body["detail"]}]


async def test_an_event_not_yet_in_a_checkpoint_has_no_proof_file_yet_naming_its_seq(
    tmp_path: Path, make_app: AppFactory
) -> None:
    log = await signed_log(tmp_path, tail=2)  # events 22 and 23: after the checkpoint of 21
    async with AsyncTestClient(make_app(log.store, read_keys=(READ_KEY,))) as c:
        r = await c.get("/v1/events/22/proof", headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"key": "seq", "message": "seq 22 is beyond tree size 21"}]


async def test_the_proof_file_needs_a_read_key_and_verifies_offline(
    signed: Signed, keyed: Any
) -> None:
    assert (await keyed.get("/v1/events/7/proof")).status_code == 401
    r = await keyed.get("/v1/events/7/proof", headers=AUTH, params={"size": 13})
    assert r.status_code == 200
    body = r.json()
    assert body["format"] == "eventstore-proof/v1"
    assert (body["leaf_index"], body["tree_size"]) == (6, 13)
    verdict = verify_proof_file(r.content, Verifier.parse(signed.signer.verifier_key()))
    assert verdict.valid, verdict.reason
    assert verdict.event is not None and verdict.event["seq"] == 7
    assert leaf_hash(bytes.fromhex(signed.events[6].hash)) == event_leaf(signed.events[6])
    # Altered event content, another key, a changed tree size: each refused.
    event = base64.b64decode(body["event_bson"])
    altered = {**body, "event_bson": base64.b64encode(event.replace(b"o2", b"o3")).decode()}
    assert altered != body
    key = Verifier.parse(signed.signer.verifier_key())
    assert not verify_proof_file(json.dumps(altered).encode(), key).valid
    other = Verifier.parse(Signer.generate("log.test").verifier_key())
    assert not verify_proof_file(r.content, other).valid
    assert not verify_proof_file(json.dumps({**body, "tree_size": 21}).encode(), key).valid
    # The altered event first and the genuine one after: a verifier taking the first key of
    # two reads the altered one, so the file is refused whatever msgspec would take.
    forged = r.content.replace(
        b"{", b'{"event_bson":' + json.dumps(altered["event_bson"]).encode() + b",", 1
    )
    twice = verify_proof_file(forged, key)
    assert not twice.valid
    assert twice.reason == (
        "not an eventstore-proof/v1 file: the key 'event_bson' appears twice in one object"
    )
    for status, path in ((422, "/v1/events/99/proof"), (422, "/v1/events/14/proof?size=13")):
        assert (await keyed.get(path, headers=AUTH)).status_code == status
    assert (await keyed.get("/v1/events/7/proof?size=14", headers=AUTH)).status_code == 404


async def test_an_entity_history_comes_with_the_proof_of_its_newest_event_in_the_tree(
    signed: Signed, keyed: Any
) -> None:
    path = "/v1/streams/orders/entities/o1/proof"
    assert (await keyed.get(path, params={"size": 13})).status_code == 401
    r = await keyed.get(path, params={"size": 13, "limit": 2}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    # o1's events are seq 2, 6, 10 (in the tree of 13), then 14, 18 (beyond it).
    assert body["newest"]["seq"] == 10 and body["tree_size"] == 13
    assert [e["seq"] for e in body["events"]] == [2, 6]
    more = await keyed.get(path, params={"size": 13, "after": body["next"]}, headers=AUTH)
    events = body["events"] + more.json()["events"]
    assert [e["seq"] for e in events] == [2, 6, 10] and more.json()["next"] is None
    # The history chains back from the proven event: each prev_hash is the previous hash.
    assert [e["prev_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]
    leaves = [event_leaf(e) for e in signed.events]
    proof = body["proof"]
    assert leaf_hash(bytes.fromhex(events[-1]["hash"])) == base64.b64decode(proof["leaf_hash"])
    verify_inclusion(leaves[9], 9, 13, b64d(proof["hashes"]), root_of(leaves[:13]))
    latest = (await keyed.get(path, headers=AUTH)).json()
    assert latest["newest"]["seq"] == 18 and latest["tree_size"] == 21
    for params, status in (({"size": 14}, 404), ({"after": "bad"}, 400), ({"limit": 0}, 400)):
        assert (await keyed.get(path, params=params, headers=AUTH)).status_code == status
    assert (
        await keyed.get("/v1/streams/orders/entities/zz/proof", headers=AUTH)
    ).status_code == 404


async def test_verify_reports_the_latest_checkpoint_and_catches_a_rewrite_through_it(
    signed: Signed, keyed: Any
) -> None:
    key_id = signed.signer.verifier_key().split("+")[1]
    r = await keyed.get("/v1/verify", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["valid"] is True
    latest = await signed.store.merkle.checkpoint()
    assert latest is not None
    assert body["checkpoint"] == {
        "size": 21,
        "root": latest.root,
        "signed": True,
        "signed_by": f"log.test+{key_id}",
        "matches": True,
        "reason": f"the first 21 events have the root of the latest checkpoint"
        f" (signed by log.test+{key_id})",
    }
    # A rewritten event, chains and recorded head recomputed: the stored checkpoint catches it.
    await replace_log(signed.store, rewrite_event(signed.events, 7))
    body = (await keyed.get("/v1/verify", headers=AUTH)).json()
    assert body["valid"] is False and body["head_matches"] is True
    assert body["checkpoint"]["matches"] is False
    assert "events were rewritten" in body["reason"]


async def test_verify_says_an_unsigned_checkpoint_is_unsigned_and_none_before_the_first(
    tmp_path: Path, make_app: AppFactory
) -> None:
    unsigned = await signed_log(tmp_path, sign=False)
    async with AsyncTestClient(make_app(unsigned.store)) as c:
        check = (await c.get("/v1/verify")).json()["checkpoint"]
        assert (check["size"], check["signed"], check["signed_by"], check["matches"]) == (
            21,
            False,
            None,
            True,
        )
    async with AsyncTestClient(make_app(MemoryStore())) as c:
        body = (await c.get("/v1/verify")).json()
        assert body["valid"] is True and body["checkpoint"] is None


async def test_a_proof_file_is_refused_with_the_first_check_it_fails(signed: Signed) -> None:
    key = Verifier.parse(signed.signer.verifier_key())
    proof = msgspec.to_builtins(await event_proof(signed.store, 7, 13))

    def verdict(**changes: Any) -> ProofVerdict:
        return verify_proof_file(json.dumps({**proof, **changes}).encode(), key)

    good = verdict()
    event_hash = signed.events[6].hash
    assert (good.valid, good.seq, good.tree_size, good.origin) == (True, 7, 13, "eventstore/test")
    assert good.reason == (
        f"event seq 7 (hash {event_hash}) is in the tree of 13 events of log 'eventstore/test'"
        " signed by log.test"
    )
    refused = verify_proof_file(b"[]", key)
    assert refused.valid is False
    assert refused.reason.startswith("not an eventstore-proof/v1 file: ")
    other = Verifier.parse(Signer.generate("log.test").verifier_key())
    stranger = verify_proof_file(json.dumps(proof).encode(), other)
    assert (stranger.valid, stranger.reason) == (
        False,
        f"checkpoint refused: the note carries no signature by log.test+{other.id.hex()}",
    )
    bson_bytes = base64.b64decode(proof["event_bson"])
    hashes = list(proof["hashes"])
    for changes, reason in (
        (
            {"format": "eventstore-proof/v2"},
            "format 'eventstore-proof/v2' is not eventstore-proof/v1",
        ),
        ({"tree_size": 21}, "tree_size 21 is not the checkpoint's 13"),
        ({"event_bson": "!" + proof["event_bson"]}, "event_bson is not valid base64"),
        ({"event_bson": base64.b64encode(b"\x05\x00").decode()}, "event_bson is not BSON"),
        ({"leaf_index": 5}, "the event's seq 7 is not leaf 5 + 1"),
        ({"hashes": [hashes[0] + "!", *hashes[1:]]}, "a proof hash is not valid base64"),
        ({"hashes": hashes[1:]}, "the inclusion proof is shorter than the tree is deep"),
        (
            {"event_bson": base64.b64encode(bson_bytes.replace(b"o2", b"o3")).decode()},
            "the inclusion proof leads to another root",
        ),
    ):
        refused = verdict(**changes)
        assert (refused.valid, refused.reason) == (False, reason), changes
    assert verdict(leaf_index=5).tree_size == 13  # the checkpoint opened: its size is known


def test_a_checkpoints_note_is_served_with_its_cosignature_lines_after_its_own() -> None:
    text = checkpoint_text("eventstore/test", 3, bytes(32))
    log_key = Signer.generate("log.test")
    witness = Signer.generate("witness.test", kind=0x04)
    line = cosign(text, witness, 1_767_225_600)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    signed = TreeCheckpoint(
        size=3, root="", note=sign_note(text, log_key), signed=True, created_at=at
    )
    assert full_note(signed) == signed.note  # no cosignatures: the note as made
    cosigned = msgspec.structs.replace(signed, cosignatures=[line.rstrip("\n"), line])
    assert full_note(cosigned) == signed.note + line + line  # each line ends with a newline
    unsigned = TreeCheckpoint(size=3, root="", note=text, signed=False, created_at=at)
    served = full_note(msgspec.structs.replace(unsigned, cosignatures=[line]))
    assert served == text + "\n" + line  # the empty line that opens a signature block
    assert open_note(full_note(cosigned), Verifier.parse(log_key.verifier_key())) == text
    witness_key = Verifier.parse(witness.verifier_key())
    assert verify_cosignature(text, served.split("\n\n")[1], witness_key) == 1_767_225_600


async def test_a_proof_file_of_an_unknown_event_or_one_beyond_the_checkpoint_says_which(
    keyed: Any,
) -> None:
    # Without `size`, the latest checkpoint's (21): a seq past it is the 422 it is when
    # that size is given, whether or not the log holds it yet (it holds no seq 99).
    unknown = await keyed.get("/v1/events/99/proof", headers=AUTH)
    assert (unknown.status_code, unknown.json()["detail"]) == (422, "seq 99 is beyond tree size 21")
    beyond = await keyed.get("/v1/events/14/proof", params={"size": 13}, headers=AUTH)
    assert (beyond.status_code, beyond.json()["detail"]) == (422, "seq 14 is beyond tree size 13")
    missing = await keyed.get("/v1/events/7/proof", params={"size": 14}, headers=AUTH)
    assert (missing.status_code, missing.json()["detail"]) == (
        404,
        "no checkpoint was made at tree size 14",
    )


async def test_a_proof_file_past_the_latest_checkpoint_or_the_stored_tree_names_the_sizes(
    signed: Signed, keyed: Any
) -> None:
    builder = LogBuilder()  # the same 21 events again, to write event 22 after them
    assert [builder.next(f"o{i % 4}").hash for i in range(21)] == [e.hash for e in signed.events]
    await signed.store.events.append([builder.next("o1")])  # logged, not yet in a checkpoint
    cases: tuple[tuple[str, dict[str, int], str], ...] = (
        ("/v1/events/22/proof", {}, "seq 22 is beyond tree size 21"),
        ("/v1/events/7/proof", {"size": 99}, "tree size 99 is beyond the stored tree (21 events)"),
        (
            "/v1/streams/orders/entities/o1/proof",
            {"size": 22},
            "tree size 22 is beyond the stored tree (21 events)",
        ),
    )
    for path, params, detail in cases:
        r = await keyed.get(path, params=params, headers=AUTH)
        assert (r.status_code, r.json()["detail"]) == (422, detail), path


async def test_stream_and_entity_verify_report_the_checkpoint_as_the_whole_log_does(
    signed: Signed, keyed: Any
) -> None:
    key_id = signed.signer.verifier_key().split("+")[1]
    newest_o3 = max(e.seq for e in signed.events if e.entity_key == "o3")
    for url, seq in (
        ("/v1/streams/orders/entities/o3/verify", newest_o3),
        ("/v1/streams/orders/verify", 21),
    ):
        body = (await keyed.get(url, headers=AUTH)).json()
        assert body["valid"] is True
        check = body["checkpoint"]
        assert (check["size"], check["signed_by"], check["matches"]) == (
            21,
            f"log.test+{key_id}",
            True,
        )
        assert (check["seq"], check["pending"]) == (seq, False)
    await replace_log(signed.store, rewrite_event(signed.events, 4))  # an event of o3
    for url in ("/v1/streams/orders/entities/o3/verify", "/v1/streams/orders/verify"):
        r = await keyed.get(url, headers=AUTH)
        assert r.status_code == 200
        assert r.json()["valid"] is False and r.json()["checkpoint"]["matches"] is False
