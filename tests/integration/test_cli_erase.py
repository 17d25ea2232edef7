"""`eventstore erase` as a user runs it: confirmation, exit codes, the request it queues."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from typing import Any

import pytest

from eventstore.cli import main
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.model import ERASED
from eventstore.sources.memory import MemoryChangeFeed
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning
from tests.integration.test_cli_history import URI, populated

ERASE = ["erase", "orders", "ORD-1", "--reason", "GDPR art. 17", "--actor", "dpo"]


def run(store: Any, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main([*argv, *URI], out=out, store=store), out.getvalue()


def queued(store: Any) -> list[Any]:
    result: list[Any] = asyncio.run(store.erasures.queued())
    return result


def test_without_yes_and_without_stdin_it_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = populated()
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdin", closed)
    code, out = run(store, *ERASE)
    assert code == 1 and out == ""
    assert "pass --yes" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # at its end: no answer
    code, _ = run(store, *ERASE)
    assert code == 1 and "no answer on stdin" in capsys.readouterr().err
    assert queued(store) == []


def test_it_asks_and_only_yes_confirms(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = populated()
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    code, _ = run(store, *ERASE)
    err = capsys.readouterr().err
    assert code == 1 and "Erase the payload of every event of orders/ORD-1?" in err
    assert "not confirmed" in err and queued(store) == []
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    code, out = run(store, *ERASE, "--json")
    assert code == 0
    [request] = queued(store)
    assert json.loads(out) == {"request": request.id}
    assert (request.entity_key, request.reason, request.actor) == ("ORD-1", "GDPR art. 17", "dpo")


def test_what_would_refuse_the_request_is_said_before_asking(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = populated(twins=True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    for argv, message in (
        (["orders", "nope", "--reason", "r", "--actor", "a"], "no entity 'nope'"),
        (["orders", "42", "--reason", "r", "--actor", "a"], "names 2 entities"),
        (["orders", "ORD-2", "--reason", " ", "--actor", "a"], "reason is required"),
        (["orders", "$stream", "--reason", "r", "--actor", "a"], "not erasable"),
    ):
        code, out = run(store, "erase", *argv)
        err = capsys.readouterr().err
        assert code == 1 and out == "" and message in err and "Erase the payload" not in err
    assert sys.stdin.read() == "yes\n"  # nothing was asked: the answer is still there
    assert queued(store) == []


def test_a_request_already_queued_is_reported_without_asking(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = populated()
    assert run(store, *ERASE, "--yes")[0] == 0
    [request] = queued(store)
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no answer: asking would refuse
    code, out = run(store, *ERASE, "--json")
    assert code == 0 and json.loads(out) == {"request": request.id, "already_queued": True}
    assert "Erase the payload" not in capsys.readouterr().err
    assert queued(store) == [request]


def test_yes_skips_the_question_and_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    store = populated(twins=True)
    code, out = run(store, *ERASE, "--yes")
    assert code == 0 and "erasure of orders/ORD-1 requested" in out
    assert "Erase the payload" not in capsys.readouterr().err
    for key, message in (("nope", "no entity 'nope'"), ("42", "names 2 entities")):
        code, out = run(store, "erase", "orders", key, "--reason", "r", "--actor", "a", "--yes")
        err = capsys.readouterr().err
        assert code == 1 and out == "" and message in err and "Traceback" not in err
    code, _ = run(store, "erase", "orders", "ORD-2", "--actor", "a", "--yes")
    assert code == 1 and "--reason" in capsys.readouterr().err
    code, _ = run(store, "erase", "orders", "ORD-2", "--reason", " ", "--actor", "a", "--yes")
    assert code == 1 and "reason is required" in capsys.readouterr().err


def test_carried_out_by_capture_then_a_repeat_says_already_erased() -> None:
    clock = FakeClock()
    store = MemoryStore()

    async def scenario() -> None:
        # One loop for the feed; the CLI runs in a thread with its own (as a user's shell would).
        feed = MemoryChangeFeed(clock=clock)
        await start_from_the_beginning(store)
        orders = feed.collection("orders")
        await orders.insert_one({"_id": "ORD-1", "email": "ann@example.org"})
        await orders.update_one({"_id": "ORD-1"}, {"$set": {"status": "paid"}})
        await orders.update_one({"_id": "ORD-1"}, {"$set": {"status": "shipped"}})
        await ingester(store, feed, clock).run(until_idle=True)
        code, _ = await asyncio.to_thread(run, store, *ERASE, "--yes")
        assert code == 0
        await ingester(store, feed, clock).run(until_idle=True)

    asyncio.run(scenario())
    events = asyncio.run(all_events(store))
    assert events[-1].type == ERASED
    assert [e.document for e in events if e.entity_key == "ORD-1"] == [None, None, None]
    assert "ann@" not in repr(events)
    code, out = run(store, *ERASE, "--yes")
    assert code == 0 and "already erased" in out and f"seq {events[-1].seq}" in out
    code, out = run(store, "verify", "--json")
    assert code == 0 and json.loads(out)["events_erased"] == 3
    code, out = run(store, "verify", "orders", "ORD-1", "--json")
    data = json.loads(out)
    assert code == 0 and [e["erased_by"] for e in data["erased"]] == [events[-1].seq] * 3
    code, out = run(store, "state", "orders", "ORD-1", "--json")
    assert code == 0 and json.loads(out)["erased"] is True and json.loads(out)["document"] is None
    code, out = run(store, "diff", "orders", "ORD-1", "1", "3")
    assert code == 0 and out.splitlines() == [
        "orders/ORD-1: version 1 -> 3",
        "  (erased: a version's data was removed by an erasure; what changed cannot be told)",
    ]
    code, out = run(store, "diff", "orders", "ORD-1", "1", "3", "--json")
    assert code == 0 and json.loads(out)["erased"] is True


def test_a_typed_key_is_named_typed_and_its_twin_is_another_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`int:42` beside the string "42": the question and the answer name the entity alone."""
    store = populated(twins=True)
    erase_int = ["erase", "orders", "int:42", "--reason", "r", "--actor", "dpo"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    code, _ = run(store, *erase_int)
    assert code == 1
    assert "Erase the payload of every event of orders/int:42?" in capsys.readouterr().err
    code, out = run(store, *erase_int, "--yes")
    assert code == 0 and out.startswith("erasure of orders/int:42 requested: ")
    code, out = run(store, "erase", "orders", "str:42", "--reason", "r", "--actor", "a", "--yes")
    assert code == 0 and out.startswith("erasure of orders/str:42 requested: ")
    first, second = queued(store)
    assert (first.entity_id, second.entity_id) == (42, "42")
    code, out = run(store, *erase_int, "--yes")
    assert (code, out) == (0, f"request {first.id} for orders/int:42 is already queued\n")
