"""history / state / diff / verify as a user runs them, in-process on a pre-populated memory store."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import msgspec
import pytest

from eventstore.cli import main
from eventstore.clock import FakeClock
from eventstore.keys import typed_key
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.memory.store import MemoryStore
from eventstore.model import Event
from eventstore.sources.memory import MemoryChangeFeed
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning

URI = ["--uri", "memory://"]


def populated() -> MemoryStore:
    async def build() -> MemoryStore:
        clock = FakeClock()
        store = MemoryStore()
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
        await ingester(store, feed, clock).run(until_idle=True)
        return store

    return asyncio.run(build())


def run(store: MemoryStore, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main([*argv, *URI], out=out, store=store), out.getvalue()


def test_history_state_and_diff_print_the_design_json() -> None:
    store = populated()
    code, out = run(store, "history", "orders", "ORD-1", "--json")
    data = json.loads(out)
    assert (
        code == 0
        and data["stream"] == "orders"
        and data["entity_key"] == "ORD-1"
        and data["next"] is None
    )
    assert [(e["version"], e["type"], e["actor"]) for e in data["events"]] == [
        (1, "created", "alice"),
        (2, "updated", "bob"),
        (3, "updated", "bob"),
    ]
    assert data["events"][1]["diff"][0] == {
        "path": "status",
        "op": "changed",
        "before": "pending",
        "after": "paid",
    }
    assert (
        data["events"][0]["occurred_at"].endswith("Z") and data["events"][0]["entity_id"] == "ORD-1"
    )

    at = data["events"][1]["occurred_at"]
    code, out = run(store, "state", "orders", "ORD-1", "--at", at, "--json")
    state = json.loads(out)
    assert code == 0 and state["version"] == 2 and state["document"]["status"] == "paid"
    assert set(state) >= {
        "stream",
        "entity_key",
        "version",
        "as_of",
        "exists",
        "uncertain",
        "gap",
        "document",
    }

    code, out = run(store, "diff", "orders", "ORD-1", "1", "3", "--json")
    assert code == 0 and json.loads(out) == {
        "from_version": 1,
        "to_version": 3,
        "changes": [
            {"path": "status", "op": "changed", "before": "pending", "after": "shipped"},
            {"path": "updatedBy", "op": "changed", "before": "alice", "after": "bob"},
        ],
    }

    code, out = run(store, "history", "orders", "ORD-1")
    assert code == 0 and "status (changed)" in out and "bob" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["state", "orders", "ORD-1", "--at", "2026-01-01T00:00:02"], "no zone"),
        (["state", "orders", "ORD-1", "--at", "yesterday"], "RFC 3339"),
        (["state", "orders", "ORD-9"], "no entity"),
        (["state", "orders", "ORD-1", "--version", "9"], "version 9"),
        (
            ["state", "orders", "ORD-1", "--version", "2", "--at", "2026-01-01T00:00:02Z"],
            "not both",
        ),
        (["diff", "orders", "ORD-1", "3", "1"], "after"),
        (["state", "orders", "oid:nothex"], "24 hexadecimal"),
        (["state", "orders"], "required"),
    ],
)
def test_bad_questions_exit_1_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(populated(), *argv)
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_verify_a_clean_log_entity_and_stream_and_export_the_head(tmp_path: Path) -> None:
    store = populated()
    assert run(store, "verify", "orders", "ORD-1")[0] == 0
    code, out = run(store, "verify", "orders", "--json")
    assert code == 0 and json.loads(out) == {
        "valid": True,
        "entities_checked": 2,
        "events_checked": 4,
        "invalid": [],
    }
    code, out = run(store, "verify", "--json")
    verdict = json.loads(out)
    assert (
        code == 0
        and verdict["valid"]
        and verdict["head_matches"] is True
        and verdict["head"]["seq"] == 4
    )
    code, out = run(store, "verify", "--head")
    (tmp_path / "head.json").write_text(out)
    assert json.loads(out) == verdict["head"]
    assert run(store, "verify", "--against-head", str(tmp_path / "head.json"))[0] == 0


def tamper(store: MemoryStore, change: str) -> None:
    """Edit the memory log behind the service's back, the way an attacker with write access could."""
    events = asyncio.run(all_events(store))
    if change == "byte":
        events[2] = msgspec.structs.replace(events[2], actor="mallory")
    elif change == "delete-middle":
        del events[1]
    elif change == "truncate":
        del events[-1]
    elif change == "forge":
        forged = msgspec.structs.replace(events[1], id="forged", seq=2)
        events.insert(1, forged)
        events = [
            msgspec.structs.replace(e, seq=i + 1) if i > 1 else e for i, e in enumerate(events)
        ]
    elif change == "swap":
        events[1], events[2] = events[2], events[1]
    store.events = raw_log(events)


def raw_log(events: list[Event]) -> MemoryEventLog:
    """A memory log holding exactly these events, bypassing every check (as a raw edit would)."""
    log = MemoryEventLog()
    for e in events:
        tk = typed_key(e.entity_id)
        log._by_id[e.id] = e
        log._by_seq.append(e)
        log._by_entity.setdefault((e.stream, tk), []).append(e)
        log._entities.setdefault(e.stream, set()).add(tk)
    for entity in log._by_entity.values():
        entity.sort(key=lambda e: e.version)
    return log


@pytest.mark.parametrize(
    ("change", "first_seq"),
    [("byte", 3), ("delete-middle", 2), ("truncate", 4), ("forge", 2), ("swap", 2)],
)
def test_tampering_is_named_and_exits_2(change: str, first_seq: int, tmp_path: Path) -> None:
    store = populated()
    _, head = run(store, "verify", "--head")
    (tmp_path / "head.json").write_text(head)
    tamper(store, change)
    code, out = run(store, "verify", "--json")
    verdict = json.loads(out)
    assert code == 2 and verdict["valid"] is False
    assert verdict["first_invalid_seq"] == first_seq, verdict
    assert verdict["reason"]
    code, out = run(store, "verify", "--against-head", str(tmp_path / "head.json"), "--json")
    assert code == 2 and json.loads(out)["valid"] is False
    if change == "byte":
        code, out = run(store, "verify", "orders", "ORD-1", "--json")
        assert code == 2 and json.loads(out)["first_invalid_version"] == 2
        code, out = run(store, "verify", "orders", "--json")
        assert code == 2 and json.loads(out)["invalid"][0]["entity_key"] == "ORD-1"
