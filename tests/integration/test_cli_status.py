"""`eventstore status`: the stored worker states of every instance, as a table or JSON."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from eventstore.cli import main
from eventstore.memory.store import MemoryStore
from eventstore.worker_state import WorkerRecord


def run(store: MemoryStore, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["status", "--uri", "memory://", *argv], out=out, store=store), out.getvalue()


def test_status_shows_every_instance_and_marks_stale_ones() -> None:
    store = MemoryStore()
    now = datetime.now(UTC)
    asyncio.run(
        store.workers.put(
            [
                WorkerRecord(
                    name="ingester:shop",
                    kind="capture",
                    instance="a:1",
                    state="retrying",
                    since=now,
                    restarts=3,
                    last_error="AutoReconnect: connection refused",
                    position=40,
                    lag_seconds=2.25,
                    updated_at=now,
                ),
                WorkerRecord(
                    name="projection:order_summary",
                    kind="projection",
                    instance="b:2",
                    state="running",
                    since=now - timedelta(hours=1),
                    position=38,
                    lag=2,
                    updated_at=now - timedelta(seconds=31),  # 3 x LEASE_SECONDS (10) ago
                ),
            ]
        )
    )
    code, out = run(store, "--json")
    assert code == 0
    body = json.loads(out)
    assert [(w["name"], w["instance"], w["state"]) for w in body] == [
        ("ingester:shop", "a:1", "retrying"),
        ("projection:order_summary", "b:2", "stale"),
    ]
    assert body[0]["last_error"] == "AutoReconnect: connection refused"
    assert (body[0]["lag"], body[0]["lag_seconds"], body[1]["lag"]) == (None, 2.25, 2)

    code, out = run(store)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == [
        "NAME",
        "KIND",
        "INSTANCE",
        "STATE",
        "SINCE",
        "RESTARTS",
        "POSITION",
        "LAG",
        "LAG_S",
    ]
    assert lines[1].split()[:4] == ["ingester:shop", "capture", "a:1", "retrying"]
    assert lines[1].split()[5:] == ["3", "40", "-", "2.2"]
    assert lines[2] == "    last error: AutoReconnect: connection refused"
    assert lines[3].split()[3] == "stale"


def test_status_of_a_store_without_workers_says_so() -> None:
    code, out = run(MemoryStore())
    assert code == 0 and out.startswith("no worker states recorded")


def test_a_fresh_memory_store_is_said_to_be_empty_and_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Opened by the command itself, memory:// holds nothing another process captured: the
    # answer (0 events, valid) stays, and standard error says why it is empty.
    assert main(["verify", "--uri", "memory://"], out=io.StringIO()) == 0
    assert capsys.readouterr().err.startswith(
        "note: memory:// is a store inside one process, and this command's is new and empty"
    )
    # A store given to the command (the service's own) is not a fresh one: no note.
    assert main(["verify", "--uri", "memory://"], out=io.StringIO(), store=MemoryStore()) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "--json"],
        ["verify"],
        ["verify", "--json"],
        ["projections", "status"],
        ["projections", "status", "--json"],
        ["subscriptions", "list"],
        ["subscriptions", "list", "--json"],
    ],
)
def test_the_memory_note_follows_the_answer(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both streams into one, as `2>&1` on an unbuffered terminal shows them: the answer first.
    both = io.StringIO()
    monkeypatch.setattr(sys, "stderr", both)
    assert main([*argv, "--uri", "memory://"], out=both) == 0
    answer, note = both.getvalue().rstrip("\n").rsplit("\n", 1)
    assert note.startswith("note: memory:// is a store inside one process"), both.getvalue()
    assert answer and "note:" not in answer, both.getvalue()


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["history", "orders", "a"], "no entity 'a' in stream 'orders'"),
        (["state", "orders", "a", "--version", "3"], "no entity 'a' in stream 'orders'"),
        (["diff", "orders", "a", "1", "2"], "no entity 'a' in stream 'orders'"),
        (["verify", "orders", "a"], "no entity 'a' in stream 'orders'"),
        (["verify", "nostream"], "unknown stream 'nostream' (captured: orders)"),
        (
            ["erase", "orders", "a", "--reason", "r", "--actor", "x", "--yes"],
            "no entity 'a' in stream 'orders'",
        ),
        (["proof", "1"], "no checkpoint has been made yet"),
        (["subscriptions", "status", "x"], "no subscription 'x'"),
        (["subscriptions", "parked", "x"], "no subscription 'x'"),
        (["subscriptions", "remove", "x"], "no subscription 'x'"),
    ],
)
def test_finding_nothing_in_a_fresh_memory_store_says_why_in_its_one_error_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    assert main([*argv, "--uri", "memory://"], out=io.StringIO()) == 1
    assert capsys.readouterr().err == (
        f"eventstore: error: {error} (this command's memory:// store is new and empty: ask a"
        " running service through its HTTP API, or give a MongoDB URI)\n"
    )
    # The service's own store, given to the command: the error alone.
    assert main([*argv, "--uri", "memory://"], out=io.StringIO(), store=MemoryStore()) == 1
    assert capsys.readouterr().err == f"eventstore: error: {error}\n"
