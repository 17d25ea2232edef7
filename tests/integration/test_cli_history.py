"""history / state / diff / verify as a user runs them, in-process on pre-populated stores.

The log is written by the ingester over the memory feed. Tampering is done the
way someone with write access to the database could: on the memory store by
reaching into its structures, on the mongo store (mongomock) with raw edits of
the `events` collection.
"""

from __future__ import annotations

import asyncio
import io
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bson import Int64, ObjectId

from eventstore.chain import entity_hash, next_log_hash, payload_commit, seal
from eventstore.cli import main
from eventstore.clock import FakeClock
from eventstore.codec import event_doc
from eventstore.keys import typed_key
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.memory.store import MemoryStore
from eventstore.model import GENESIS_HASH, Checkpoint, Event, Head
from eventstore.mongo.collections import EVENTS
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.helpers import EVENT_KEYS, resealed
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import ROLE, all_events, ingester, start_from_the_beginning

URI = ["--uri", "memory://"]
OID = ObjectId("65f000000000000000000042")


def populated(kind: str = "memory", *, twins: bool = False) -> Any:
    """seq 1: ORD-1 created, 2: ORD-2 created, 3: ORD-1 paid, 4: ORD-1 shipped.

    With `twins`, then orders with `_id` 42 and "42" (one bare key, two entities).
    """

    async def build() -> Store:
        clock = FakeClock()
        store = await open_test_store(kind)
        feed = MemoryChangeFeed(clock=clock)
        await start_from_the_beginning(store)
        orders = feed.collection("orders")
        for n in (1, 2):
            clock.advance(1)
            await orders.insert_one({"_id": f"ORD-{n}", "status": "pending", "updatedBy": "alice"})
        for status in ("paid", "shipped"):
            clock.advance(1)
            await orders.update_one(
                {"_id": "ORD-1"}, {"$set": {"status": status, "updatedBy": "bob"}}
            )
        if twins:
            clock.advance(1)
            await orders.insert_one({"_id": 42, "status": "pending"})
            await orders.insert_one({"_id": "42", "status": "pending"})
        await ingester(store, feed, clock).run(until_idle=True)
        return store

    return asyncio.run(build())


def run(store: Any, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main([*argv, *URI], out=out, store=store), out.getvalue()


def test_history_state_and_diff_print_the_design_json() -> None:
    store = populated(twins=True)
    code, out = run(store, "history", "orders", "ORD-1", "--json")
    data = json.loads(out)
    assert code == 0 and (data["stream"], data["entity_key"], data["next"]) == (
        "orders",
        "ORD-1",
        None,
    )
    assert list(data) == ["stream", "entity_key", "events", "next"]
    assert [list(e) for e in data["events"]] == [EVENT_KEYS] * 3
    assert [(e["seq"], e["version"], e["type"], e["actor"]) for e in data["events"]] == [
        (1, 1, "created", "alice"),
        (3, 2, "updated", "bob"),
        (4, 3, "updated", "bob"),
    ]
    second = data["events"][1]
    assert second["diff"] == [
        {"path": "status", "op": "changed", "before": "pending", "after": "paid"},
        {"path": "updatedBy", "op": "changed", "before": "alice", "after": "bob"},
    ]
    assert second["changes"]["updatedFields"] == {"status": "paid", "updatedBy": "bob"}
    assert second["occurred_at"] == "2026-01-01T00:00:03.000Z"
    assert second["entity_id"] == "ORD-1" and second["document"] is None
    assert len(second["hash"]) == 64 and second["prev_hash"] == data["events"][0]["hash"]

    code, out = run(store, "state", "orders", "ORD-1", "--at", second["occurred_at"], "--json")
    state = json.loads(out)
    assert code == 0 and list(state)[:8] == [
        "stream",
        "entity_key",
        "version",
        "as_of",
        "exists",
        "uncertain",
        "gap",
        "document",
    ]
    assert (state["version"], state["as_of"], state["exists"], state["uncertain"]) == (
        2,
        "2026-01-01T00:00:03.000Z",
        True,
        False,
    )
    assert state["gap"] is None and state["document"]["status"] == "paid"
    # one millisecond earlier, in another zone: version 1
    code, out = run(
        store, "state", "orders", "ORD-1", "--at", "2026-01-01T01:00:02.999+01:00", "--json"
    )
    assert code == 0 and json.loads(out)["version"] == 1
    # after year 9999 once in UTC: after every event, the latest state
    code, out = run(
        store, "state", "orders", "ORD-1", "--at", "9999-12-31T23:30:00-01:00", "--json"
    )
    assert code == 0 and json.loads(out)["version"] == 3

    code, out = run(store, "diff", "orders", "ORD-1", "1", "3", "--json")
    assert code == 0 and json.loads(out) == {
        "from_version": 1,
        "to_version": 3,
        "changes": [
            {"path": "status", "op": "changed", "before": "pending", "after": "shipped"},
            {"path": "updatedBy", "op": "changed", "before": "alice", "after": "bob"},
        ],
        "erased": False,
    }
    code, out = run(store, "state", "orders", "int:42", "--json")
    assert code == 0 and json.loads(out)["document"] == {"_id": 42, "status": "pending"}


def test_the_tables_are_readable() -> None:
    store = populated()
    code, out = run(store, "history", "orders", "ORD-1", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "orders/ORD-1"
    assert lines[1].split() == ["ver", "seq", "occurred_at", "type", "actor", "changes"]
    assert lines[3].split()[:5] == ["2", "3", "2026-01-01T00:00:03.000Z", "updated", "bob"]
    assert "status (changed), updatedBy (changed)" in lines[3]
    assert lines[-1] == "(more: --from-version 3)"

    code, out = run(store, "state", "orders", "ORD-1", "--version", "2")
    assert code == 0 and out.splitlines()[0] == (
        "orders/ORD-1  version 2  as of 2026-01-01T00:00:03.000Z"
    )
    assert json.loads("\n".join(out.splitlines()[1:]))["status"] == "paid"

    code, out = run(store, "diff", "orders", "ORD-1", "2", "3")
    assert code == 0 and out.splitlines() == [
        "orders/ORD-1: version 2 -> 3",
        '  changed  status: "paid" -> "shipped"',
    ]
    code, out = run(store, "diff", "orders", "ORD-1", "3", "3")
    assert code == 0 and "(no differences)" in out

    code, out = run(store, "verify")
    assert code == 0 and out.startswith("log: valid, 4 events checked, head seq 4")
    assert "the recorded head matches" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["state", "orders", "ORD-1", "--at", "2026-01-01T00:00:02"], "has no zone"),
        (["state", "orders", "ORD-1", "--at", "yesterday"], "not an RFC 3339 time"),
        (["state", "orders", "ORD-1", "--at", "2026-02-30T00:00:00Z"], "not a valid time"),
        (["state", "orders", "ORD-1", "--at", "2025-12-31T23:59:59Z"], "no recorded state"),
        # valid, and before year 1 once in UTC: before the first event (was "out of range")
        (
            ["state", "orders", "ORD-1", "--at", "0001-01-01T00:30:00+01:00"],
            "no recorded state at 0001-01-01T00:00:00.000Z",
        ),
        (["state", "orders", "ORD-9"], "no entity 'ORD-9' in stream 'orders'"),
        (["state", "refunds", "ORD-1"], "unknown stream 'refunds'"),
        (["state", "orders", "42"], "use one of int:42, str:42"),
        (["history", "orders", "42"], "use one of int:42, str:42"),
        (["state", "orders", "ORD-1", "--version", "9"], "has no version 9: its latest is 3"),
        (["state", "orders", "ORD-1", "--version", "0"], "must be 1 or more: 0"),
        (["state", "orders", "ORD-1", "--version", "-1"], "must be 1 or more: -1"),
        (["history", "orders", "ORD-1", "--limit", "1.5"], "not a whole number: '1.5'"),
        # int() reads each of these as a number; the command line reads ASCII digits only
        (["history", "orders", "ORD-1", "--limit", "1_0"], "not a whole number: '1_0'"),
        (["history", "orders", "ORD-1", "--limit", "+5"], "not a whole number: '+5'"),
        (["state", "orders", "ORD-1", "--version", "\u0663"], "not a whole number"),
        (["diff", "orders", "ORD-1", " 1", "2"], "not a whole number: ' 1'"),
        (
            ["state", "orders", "ORD-1", "--version", "2", "--at", "2026-01-01T00:00:02Z"],
            "not both",
        ),
        (["diff", "orders", "ORD-1", "3", "1"], "from_version 3 is after to_version 1"),
        (["diff", "orders", "ORD-1", "1", "7"], "no version 7"),
        (
            ["history", "orders", "ORD-1", "--from-version", "7"],
            "has no version 7: its latest is 3",
        ),
        (["history", "orders", "ORD-1", "--from-version", "3", "--to-version", "2"], "after"),
        (["history", "orders", "ORD-1", "--limit", "5000"], "limit must be between"),
        (["state", "orders", "oid:nothex"], "24 hexadecimal"),
        (["state", "orders"], "required"),
        (["verify", "orders", "--head"], "about the whole log"),
        (["verify", "--against-head", "/nonexistent/head.json"], "no such file"),
        (["verify", "orders", "ORD-9"], "no entity 'ORD-9'"),
        (["verify", "refunds"], "unknown stream 'refunds'"),
    ],
)
def test_questions_that_cannot_be_answered_exit_1_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(populated(twins=True), *argv)
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err and out == ""


def test_a_malformed_exported_head_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = tmp_path / "head.json"
    head.write_text('{"seq": "4"}')
    assert run(populated(), "verify", "--against-head", str(head))[0] == 1
    assert "is not an exported head" in capsys.readouterr().err
    head.write_text("[" * 5000 + "]" * 5000)
    assert run(populated(), "verify", "--against-head", str(head))[0] == 1
    err = capsys.readouterr().err
    assert "JSON nested too deeply" in err and "Traceback" not in err


def test_without_a_uri_the_commands_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["state", "orders", "ORD-1"], out=io.StringIO()) == 1
    assert "no URI" in capsys.readouterr().err
    # memory:// without a given store is an empty in-process log
    assert main(["state", "orders", "ORD-1", *URI], out=io.StringIO()) == 1
    assert "no entity 'ORD-1'" in capsys.readouterr().err


def _controls(text: str) -> list[str]:
    """The characters of `text` a terminal would act on (newlines between lines aside)."""
    return [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]


def test_values_from_the_log_cannot_drive_the_terminal_or_forge_lines() -> None:
    key, actor = "o\x1b[2J1", "ev\x1b]0;title\x07il\nFORGED: valid"

    async def build() -> Store:
        clock = FakeClock()
        store = MemoryStore()
        feed = MemoryChangeFeed(clock=clock)
        await start_from_the_beginning(store)
        orders = feed.collection("orders")
        await orders.insert_one({"_id": key, "status": "new\x9b31m", "updatedBy": actor})
        clock.advance(1)
        await orders.update_one({"_id": key}, {"$set": {"st\x1b[1mx": "a\r\nb\u202e"}})
        await ingester(store, feed, clock).run(until_idle=True)
        return store

    store = asyncio.run(build())
    for argv, lines in (
        (["history", "orders", key], 4),
        (["state", "orders", key], 7),
        (["diff", "orders", key, "1", "2"], 2),
        (["verify", "orders", key], 2),
        (["verify", "orders"], 2),
    ):
        code, out = run(store, *argv)
        assert code == 0 and _controls(out) == [] and "\u202e" not in out, (argv, out)
        assert len(out.splitlines()) == lines, (argv, out)  # no line forged by a value
    code, out = run(store, "history", "orders", key)
    assert "ev\\x1b]0;title\\x07il\\x0aFORGED: valid" in out and "st\\x1b[1mx (added)" in out
    code, out = run(store, "diff", "orders", key, "1", "2")
    assert '"a\\r\\nb\\u202e"' in out  # JSON's escapes, then the bidi override escaped too
    # --json is exact: the values as recorded
    code, out = run(store, "history", "orders", key, "--json")
    events = json.loads(out)["events"]
    assert [e["actor"] for e in events] == [actor, actor]


def test_version_prints_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"], out=io.StringIO()) == 0
    assert capsys.readouterr().out == f"eventstore {metadata.version('eventstore')}\n"


@pytest.mark.parametrize("kind", ["memory", "mongo"])
def test_verify_a_clean_log_entity_and_stream_and_export_the_head(
    kind: str, tmp_path: Path
) -> None:
    store = populated(kind)
    code, out = run(store, "verify", "orders", "ORD-1", "--json")
    assert code == 0 and json.loads(out) == {
        "valid": True,
        "events_checked": 3,
        "first_invalid_version": None,
        "reason": None,
        "checkpoint": None,
    }
    code, out = run(store, "verify", "orders", "--json")
    assert code == 0 and json.loads(out) == {
        "valid": True,
        "entities_checked": 2,
        "events_checked": 4,
        "invalid": [],
        "checkpoint": None,
    }
    code, out = run(store, "verify", "--json")
    verdict = json.loads(out)
    assert code == 0 and verdict["valid"] and verdict["head_matches"] is True
    assert verdict["head"]["seq"] == 4 and verdict["first_invalid_seq"] is None
    code, out = run(store, "verify", "--head")
    assert code == 0 and json.loads(out) == verdict["head"]
    (tmp_path / "head.json").write_text(out)
    code, out = run(store, "verify", "--against-head", str(tmp_path / "head.json"))
    assert code == 0 and "the exported head matches" in out


# -- tampering ------------------------------------------------------------------------------


def memory_tamper(store: MemoryStore, change: str) -> None:
    """Edit the memory log behind the service's back: rebuild its structures from edited events."""
    events = asyncio.run(all_events(store))
    if change == "byte":  # "paid" -> "pair": one byte of seq 3's stored data
        e = events[2]
        assert e.changes is not None
        fields = {**e.changes["updatedFields"], "status": "pair"}
        events[2] = msgspec.structs.replace(e, changes={**e.changes, "updatedFields": fields})
    elif change in ("strip-payload", "claim-erased"):
        claim = 4 if change == "claim-erased" else None
        events[2] = msgspec.structs.replace(events[2], changes=None, salt=None, erased_by=claim)
    elif change == "delete-middle":
        del events[2]
    elif change in ("truncate", "truncate-and-rewind"):
        del events[-1]
    elif change == "forge":
        events = [*events[:2], forged(events[1]), *events[2:]]
        events = [msgspec.structs.replace(e, seq=i + 1) for i, e in enumerate(events)]
    elif change == "forge-and-rewrite":
        events = resealed([*events[:2], forged(events[1]), *events[2:]])
    elif change == "swap":
        a, b = events[1], events[2]
        events[1], events[2] = (
            msgspec.structs.replace(b, seq=a.seq),
            msgspec.structs.replace(a, seq=b.seq),
        )
    events = rewritten(events, change) or events
    log = MemoryEventLog()
    for e in events:
        tk = typed_key(e.entity_id)
        log._by_id[e.id] = e
        log._by_seq.append(e)
        log._by_entity.setdefault((e.stream, tk), []).append(e)
        log._entities.setdefault(e.stream, set()).add(tk)
    for entity in log._by_entity.values():
        entity.sort(key=lambda e: e.version)
    store.events = log
    if change in ("truncate-and-rewind", "reseal-first"):
        asyncio.run(_rewind_checkpoint(store, events[-1]))


def mongo_tamper(store: MongoStore, change: str) -> None:
    """Edit the `events` collection directly, as a user with write access could."""

    async def edit() -> None:
        events = store.db[EVENTS]
        old = await all_events(store)
        if change == "byte":
            await events.update_one({"seq": 3}, {"$set": {"changes.updatedFields.status": "pair"}})
        elif change in ("strip-payload", "claim-erased"):
            claim = Int64(4) if change == "claim-erased" else None
            gone = {"changes": None, "salt": None, "erased_by": claim}
            await events.update_one({"seq": 3}, {"$set": gone})
        elif change == "delete-middle":
            await events.delete_one({"seq": 3})
        elif change in ("truncate", "truncate-and-rewind"):
            await events.delete_one({"seq": 4})
        elif change == "forge":
            before = await store.events.read(after_seq=1, limit=1)
            for seq in range(4, 2, -1):  # make room: seq is unique
                await events.update_one({"seq": seq}, {"$set": {"seq": seq + 1}})
            await events.insert_one(event_doc(forged(before[0])))
        elif change == "forge-and-rewrite":
            whole = resealed([*old[:2], forged(old[1]), *old[2:]])
            await events.delete_many({})
            await events.insert_many([event_doc(e) for e in whole])
        elif change == "swap":
            await events.update_one({"seq": 2}, {"$set": {"seq": -2}})
            await events.update_one({"seq": 3}, {"$set": {"seq": 2}})
            await events.update_one({"seq": -2}, {"$set": {"seq": 3}})
        elif new := rewritten(old, change):
            await events.delete_many({})
            await events.insert_many([event_doc(e) for e in new])
            if change == "reseal-first":
                await _rewind_checkpoint(store, new[-1])
        if change == "truncate-and-rewind":
            newest = await store.events.read(after_seq=2, limit=1)
            await _rewind_checkpoint(store, newest[0])

    asyncio.run(edit())


def rewritten(events: list[Event], change: str) -> list[Event] | None:
    """The log after a tampering that only one check of the verifiers can see (else None).

    - relink: ORD-1's version 2 (seq 3) edited and its hash recomputed; version 3 still
      links to the old hash (the entity chain's prev_hash check).
    - log-hash: only seq 2's log_hash changed (not covered by `hash`: the log_hash check).
    - reseal-first: ORD-1's version 1 resealed, every later log_hash and the checkpoint's
      head recomputed, version 2's prev_hash left (the whole log's prev_hash check along seq).
    """
    if change == "relink":
        e = events[2]
        assert e.changes is not None
        fields = {**e.changes["updatedFields"], "status": "pair"}
        edited = msgspec.structs.replace(e, changes={**e.changes, "updatedFields": fields})
        if edited.salt:  # the payload's commitment recomputed too, as a tamperer would
            edited = msgspec.structs.replace(edited, commit=payload_commit(edited, edited.salt))
        return [*events[:2], msgspec.structs.replace(edited, hash=entity_hash(edited)), *events[3:]]
    if change == "log-hash":
        other = next_log_hash(GENESIS_HASH, "not the hash of seq 1")
        return [events[0], msgspec.structs.replace(events[1], log_hash=other), *events[2:]]
    if change == "reseal-first":
        first = events[0]
        assert first.document is not None
        document = {**first.document, "status": "void"}
        resealed_first = seal(
            msgspec.structs.replace(first, document=document),
            prev_hash=GENESIS_HASH,
            prev_log_hash=GENESIS_HASH,
            salt=bytes.fromhex(first.salt) if first.salt else None,
        )
        out = [resealed_first]
        for e in events[1:]:
            out.append(msgspec.structs.replace(e, log_hash=next_log_hash(out[-1].log_hash, e.hash)))
        return out
    return None


def forged(previous: Event) -> Event:
    """A well-formed event of an order that never existed, sealed to follow `previous` in the log."""
    event = Event(
        id="forged",
        seq=previous.seq + 1,
        stream="orders",
        entity_id="ORD-9",
        entity_key="ORD-9",
        version=1,
        type="created",
        occurred_at=previous.occurred_at,
        cluster_time=None,
        recorded_at=previous.recorded_at,
        document={"_id": "ORD-9", "status": "paid", "updatedBy": "mallory"},
        actor="mallory",
    )
    return seal(event, prev_hash=GENESIS_HASH, prev_log_hash=previous.log_hash)


async def _rewind_checkpoint(store: Store, newest: Event) -> None:
    """Also move the recorded head back, hiding the truncation from the checkpoint."""
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None
    head = Head(seq=newest.seq, log_hash=newest.log_hash)
    await store.checkpoints.put(Checkpoint(name=ROLE, token=cp.token, head=head))


# change -> (first invalid seq of the log, words of its reason, ORD-1's verdict
# (first invalid version, words) or None when its chain holds, the stream's invalid entities).
# seq is part of what is hashed, so renumbering events (to insert or swap) breaks each one moved.
TAMPERING = {
    "byte": (
        3,
        "hash of seq 3 does not match its content",
        (2, "hash of version 2"),
        [("ORD-1", 2)],
    ),
    "delete-middle": (3, "seq 3 missing (found seq 4)", (2, "missing version 2"), [("ORD-1", 2)]),
    # an erasure done by hand: payload and salt removed, every hash left valid, no erased record
    "strip-payload": (
        3,
        "payload of seq 3 is missing without an erased record",
        (2, "payload of version 2 is missing without an erased record"),
        [("ORD-1", 2)],
    ),
    # the same, claiming an erasure that seq 4 (an update, not an erased event) never recorded
    "claim-erased": (
        3,
        "seq 4 does not record erasing orders/ORD-1",
        (2, "payload of version 2 is missing without an erased record"),
        [("ORD-1", 2)],
    ),
    "truncate": (4, "truncated", None, []),
    # the forged event itself is well sealed: the events pushed along by it are not
    "forge": (
        4,
        "hash of seq 4 does not match its content",
        (2, "hash of version 2"),
        [("ORD-1", 2)],
    ),
    # every hash recomputed: only the head recorded (or exported) before tells
    "forge-and-rewrite": (4, "log_hash at seq 4 differs from the recorded head", None, []),
    "swap": (
        2,
        "hash of seq 2 does not match its content",
        (2, "hash of version 2"),
        [("ORD-1", 2), ("ORD-2", 1)],
    ),
    # each of these is seen by one check only (tests/unit/test_chain_checks.py)
    "relink": (
        3,
        "log_hash of seq 3 does not chain from seq 2",
        (3, "prev_hash of version 3 does not link to version 2"),
        [("ORD-1", 3)],
    ),
    "log-hash": (2, "log_hash of seq 2 does not chain from seq 1", None, []),
    "reseal-first": (
        3,
        "seq 3: prev_hash of orders/ORD-1 version 2 does not link to version 1",
        (2, "prev_hash of version 2 does not link to version 1"),
        [("ORD-1", 2)],
    ),
}


@pytest.mark.parametrize("kind", ["memory", "mongo"])
@pytest.mark.parametrize("change", list(TAMPERING))
def test_tampering_is_named_and_exits_2(kind: str, change: str, tmp_path: Path) -> None:
    first_seq, reason, entity, invalid = TAMPERING[change]
    store = populated(kind)
    _, head = run(store, "verify", "--head")
    (tmp_path / "head.json").write_text(head)
    if kind == "memory":
        memory_tamper(store, change)
    else:
        mongo_tamper(store, change)

    code, out = run(store, "verify", "--json")
    verdict = json.loads(out)
    assert code == 2 and verdict["valid"] is False, verdict
    assert verdict["first_invalid_seq"] == first_seq and reason in verdict["reason"], verdict
    code, out = run(store, "verify", "--against-head", str(tmp_path / "head.json"), "--json")
    assert code == 2 and json.loads(out)["valid"] is False
    code, out = run(store, "verify")
    assert code == 2 and "TAMPERED" in out and f"first invalid seq {first_seq}" in out

    code, out = run(store, "verify", "orders", "ORD-1", "--json")
    if entity is None:
        assert code == 0 and json.loads(out)["valid"]
    else:
        version, words = entity
        bad = json.loads(out)
        assert code == 2 and bad["first_invalid_version"] == version and words in bad["reason"]
    code, out = run(store, "verify", "orders", "--json")
    stream = json.loads(out)
    assert code == (2 if invalid else 0) and stream["valid"] is not bool(invalid)
    assert [(i["entity_key"], i["first_invalid_version"]) for i in stream["invalid"]] == invalid


@pytest.mark.parametrize("kind", ["memory", "mongo"])
def test_a_truncation_hidden_from_the_checkpoint_is_caught_by_the_exported_head(
    kind: str, tmp_path: Path
) -> None:
    store = populated(kind)
    _, head = run(store, "verify", "--head")
    (tmp_path / "head.json").write_text(head)
    if kind == "memory":
        memory_tamper(store, "truncate-and-rewind")
    else:
        mongo_tamper(store, "truncate-and-rewind")
    code, out = run(store, "verify", "--json")
    assert code == 0 and json.loads(out)["head"]["seq"] == 3  # the checkpoint was rewound too
    code, out = run(store, "verify", "--against-head", str(tmp_path / "head.json"), "--json")
    verdict = json.loads(out)
    assert code == 2 and verdict["head_matches"] is False
    assert verdict["first_invalid_seq"] == 4 and "truncated" in verdict["reason"]
    code, out = run(store, "verify", "--against-head", str(tmp_path / "head.json"))
    assert code == 2 and "the exported head DOES NOT MATCH" in out


def test_an_object_id_and_its_hex_string_are_told_apart(capsys: pytest.CaptureFixture[str]) -> None:
    async def build() -> MemoryStore:
        clock = FakeClock()
        store = MemoryStore()
        feed = MemoryChangeFeed(clock=clock)
        await start_from_the_beginning(store)
        await feed.collection("orders").insert_one({"_id": OID, "by": "oid"})
        await feed.collection("orders").insert_one({"_id": str(OID), "by": "str"})
        await ingester(store, feed, clock).run(until_idle=True)
        return store

    store = asyncio.run(build())
    code, _ = run(store, "state", "orders", str(OID))
    assert code == 1 and f"use one of oid:{OID}, str:{OID}" in capsys.readouterr().err
    code, out = run(store, "state", "orders", f"oid:{OID}", "--json")
    assert code == 0 and json.loads(out)["document"] == {"_id": str(OID), "by": "oid"}
    code, out = run(store, "history", "orders", f"oid:{OID}", "--json")
    assert code == 0 and json.loads(out)["events"][0]["entity_id"] == {"$oid": str(OID)}
    code, out = run(store, "history", "orders", f"str:{OID}", "--json")
    assert json.loads(out)["events"][0]["entity_id"] == str(OID)
