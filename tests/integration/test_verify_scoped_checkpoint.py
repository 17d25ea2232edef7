"""`eventstore verify STREAM [KEY]` reports the checkpoint situation as the whole-log verify does.

The latest stored checkpoint is held to the stream's (entity's) newest event inside it:
for a stream, the root of the checkpoint's size is recomputed from every event's hash in
the same pass; for an entity, that event's leaf (from its own hash) must reach the
checkpoint's root through an inclusion proof from the stored tree. Unsigned, none yet,
and "none of these events is in it yet" are each said explicitly.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli import main
from eventstore.memory.store import MemoryStore
from tests.helpers import LogBuilder
from tests.merkle_helpers import Signed, rebuild_tree, replace_log, rewrite_event, signed_log


def run(store: MemoryStore, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main([*argv, "--uri", "memory://"], out=out, store=store)
    return code, out.getvalue()


def verify_json(store: MemoryStore, *scope: str) -> tuple[int, dict[str, Any]]:
    code, text = run(store, "verify", *scope, "--json")
    body: dict[str, Any] = json.loads(text)
    return code, body


def newest_seq(log: Signed, key: str) -> int:
    return max(e.seq for e in log.events if e.entity_key == key)


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    return asyncio.run(signed_log(tmp_path))  # 21 events of o0..o3, signed at 5, 13, 21


def key_name(log: Signed) -> str:
    return f"log.test+{log.signer.verifier_key().split('+')[1]}"


@pytest.mark.parametrize("scope", [("orders", "o1"), ("orders",)])
def test_a_signed_checkpoint_covering_the_newest_event_is_reported(
    signed: Signed, scope: tuple[str, ...]
) -> None:
    latest = asyncio.run(signed.store.merkle.checkpoint())
    assert latest is not None
    code, body = verify_json(signed.store, *scope)
    assert code == 0 and body["valid"] is True
    seq = newest_seq(signed, "o1") if len(scope) == 2 else 21
    check = body["checkpoint"]
    assert {k: v for k, v in check.items() if k != "reason"} == {
        "size": 21,
        "root": latest.root,
        "signed": True,
        "signed_by": key_name(signed),
        "matches": True,
        "seq": seq,
        "pending": False,
    }
    assert f"seq {seq}, is in its tree" in check["reason"]
    code, text = run(signed.store, "verify", *scope)
    assert code == 0
    assert (
        f"checkpoint: size 21, signed by {key_name(signed)}, seq {seq} (the newest event in it)"
        " is in its tree" in text
    )


@pytest.mark.parametrize("scope", [("orders", "o2"), ("orders",)])
def test_an_unsigned_checkpoint_is_said_unsigned(tmp_path: Path, scope: tuple[str, ...]) -> None:
    log = asyncio.run(signed_log(tmp_path, sign=False))
    code, body = verify_json(log.store, *scope)
    assert code == 0 and body["valid"] is True
    assert (body["checkpoint"]["signed"], body["checkpoint"]["signed_by"]) == (False, None)
    assert body["checkpoint"]["matches"] is True
    code, text = run(log.store, "verify", *scope)
    assert code == 0 and "checkpoint: size 21, unsigned (no signing key), seq" in text


@pytest.mark.parametrize("scope", [("orders", "o0"), ("orders",)])
def test_before_the_first_checkpoint_it_says_none_yet(scope: tuple[str, ...]) -> None:
    store = MemoryStore()
    builder = LogBuilder()
    asyncio.run(store.events.append([builder.next(f"o{i % 2}") for i in range(6)]))
    code, body = verify_json(store, *scope)
    assert code == 0 and body["valid"] is True and body["checkpoint"] is None
    code, text = run(store, "verify", *scope)
    assert code == 0 and "checkpoint: none yet" in text


def test_events_newer_than_the_latest_checkpoint_are_said_not_in_it_yet(signed: Signed) -> None:
    builder = LogBuilder()
    for event in signed.events:  # the same builder state: continue the log
        builder.next(event.entity_id)
    more = [builder.next("late"), builder.next("o1"), builder.next("late")]
    asyncio.run(signed.store.events.append(more))
    # An entity with no event inside the checkpoint: nothing to hold, not tampering.
    code, body = verify_json(signed.store, "orders", "late")
    assert code == 0 and body["valid"] is True
    check = body["checkpoint"]
    assert (check["pending"], check["matches"], check["seq"]) == (True, False, None)
    assert check["reason"] == (
        f"no event of orders/late is in the latest checkpoint (21 events, signed by"
        f" {key_name(signed)}) yet: its events (up to seq 24) are newer"
    )
    code, text = run(signed.store, "verify", "orders", "late")
    assert code == 0 and "none of these events is in it yet" in text
    # An entity with events on both sides: its newest event inside is the one held.
    code, body = verify_json(signed.store, "orders", "o1")
    assert code == 0 and body["checkpoint"]["seq"] == newest_seq(signed, "o1")
    assert "its events after seq 21 are not in a checkpoint yet" in body["checkpoint"]["reason"]
    code, body = verify_json(signed.store, "orders")
    assert code == 0 and body["checkpoint"]["seq"] == 21 and body["checkpoint"]["matches"]


@pytest.mark.parametrize("rebuilt", [False, True], ids=["tree-kept", "tree-rebuilt"])
def test_a_rewritten_event_with_recomputed_chains_is_caught_through_the_checkpoint(
    signed: Signed, rebuilt: bool
) -> None:
    kept = asyncio.run(signed.store.merkle.checkpoint())
    assert kept is not None
    rewritten = rewrite_event(signed.events, 6)  # an event of o1; every later hash recomputed
    assert rewritten[5].entity_key == "o1"
    asyncio.run(replace_log(signed.store, rewritten))
    if rebuilt:  # the stored nodes rebuilt from the rewritten log too, the checkpoint kept
        asyncio.run(rebuild_tree(signed.store))
        asyncio.run(signed.store.merkle.add_checkpoint(kept))
    for scope in (("orders", "o1"), ("orders",)):
        code, body = verify_json(signed.store, *scope)
        assert code == 2 and body["valid"] is False, scope
        assert body["checkpoint"]["matches"] is False and body["checkpoint"]["pending"] is False
        code, text = run(signed.store, "verify", *scope)
        assert code == 2 and "DOES NOT MATCH the events" in text
        # The reason is the checkpoint's, said by the API and the CLI alike.
        reason = body["checkpoint"]["reason"]
        assert f"\n  {reason}" in text
        if len(scope) == 2:
            assert body["reason"] == reason
    # o1's newest event inside (seq 18) has a recomputed hash: its leaf is not the signed one.
    _, body = verify_json(signed.store, "orders", "o1")
    assert body["reason"].startswith(
        "seq 18 is not shown to be in the tree of the latest checkpoint (21 events): "
    )
    assert body["reason"].endswith("; events or the stored tree were rewritten")
    _, body = verify_json(signed.store, "orders")
    assert body["checkpoint"]["reason"] == (
        "the root of the first 21 events, recomputed from their hashes, is not the latest"
        " checkpoint's: events were rewritten"
    )
    # The chains alone say nothing: every entity chain still links.
    assert verify_json(signed.store, "orders", "o1")[1]["first_invalid_version"] is None
    # An entity the rewrite did not touch: its own leaf is unchanged, so with the stored
    # tree kept it holds; with the tree rebuilt its proof carries the rewritten subtree
    # and no longer reaches the signed root.
    code, body = verify_json(signed.store, "orders", "o2")
    expected = (2, False, False) if rebuilt else (0, True, True)
    assert (code, body["valid"], body["checkpoint"]["matches"]) == expected


def test_the_checkpoints_last_event_is_held_and_the_reason_says_how(signed: Signed) -> None:
    # o0's events are seqs 1, 5, ..., 21: its newest is the checkpoint's last event.
    assert newest_seq(signed, "o0") == 21
    by = f"signed by {key_name(signed)}"
    code, body = verify_json(signed.store, "orders", "o0")
    assert code == 0 and body["valid"] is True and body["checkpoint"]["seq"] == 21
    assert body["checkpoint"]["reason"] == (
        f"the newest event of orders/o0 in the latest checkpoint (21 events, {by}), seq 21,"
        " is in its tree (its inclusion proof from the stored tree, the leaf from the event's"
        " own hash)"
    )
    code, body = verify_json(signed.store, "orders")
    assert code == 0 and body["valid"] is True and body["checkpoint"]["seq"] == 21
    assert body["checkpoint"]["reason"] == (
        f"the newest event of stream orders in the latest checkpoint (21 events, {by}), seq 21,"
        " is in its tree (the root of the first 21 events, recomputed from their hashes)"
    )


def test_a_log_cut_back_under_the_checkpoint_fails_a_stream_and_the_log(signed: Signed) -> None:
    # The newest 8 events removed and the recorded head rewritten: every chain still links.
    asyncio.run(replace_log(signed.store, signed.events[:13]))
    removed = "the log has 13 events, fewer than the latest checkpoint's 21: events were removed"
    code, body = verify_json(signed.store, "orders")
    assert code == 2 and body["valid"] is False and body["invalid"] == []
    check = body["checkpoint"]
    assert (check["matches"], check["pending"], check["seq"]) == (False, False, 13)
    assert check["reason"] == removed
    code, text = run(signed.store, "verify", "orders")
    assert code == 2 and f"DOES NOT MATCH the events\n  {removed}" in text
    code, body = verify_json(signed.store)
    assert code == 2 and body["valid"] is False and body["head_matches"] is True
    assert body["first_invalid_seq"] is None
    assert body["reason"] == body["checkpoint"]["reason"] == removed
    code, text = run(signed.store, "verify")
    assert code == 2 and removed in text
