"""`ingest` and `project` under supervision: transient faults retried, a fatal one is exit 1."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from eventstore.cli import main
from eventstore.memory.store import MemoryStore
from tests.faults import FaultyStore
from tests.integration.test_cli_capture import write_ndjson
from tests.integration.test_cli_history import populated

ADMIN_KEY = "cli-admin-key-123"


def run(*argv: str, store: object) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out, store=store), out.getvalue()


def ingest(path: Path, store: object) -> tuple[int, str]:
    return run(
        "ingest",
        "--uri",
        "memory://",
        "--source",
        f"ndjson:{path}",
        "--until-idle",
        "--batch-size",
        "4",
        store=store,
    )


def test_ingest_retries_a_dropped_connection_and_records_everything_once(tmp_path: Path) -> None:
    tokens = write_ndjson(tmp_path / "changes.ndjson", changes=20)
    store = FaultyStore(MemoryStore())
    store.faults.plan("events.append", AutoReconnect("connection reset"), after=True)
    code, out = ingest(tmp_path / "changes.ndjson", store)
    assert code == 0, out
    assert store.faults.raised["events.append"] == 1
    events = asyncio.run(store.inner.events.read(limit=1000))
    assert [e.id for e in events] == tokens
    assert [e.seq for e in events] == list(range(1, len(tokens) + 1))


def test_ingest_exits_1_with_one_line_when_capture_fails_fatally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_ADMIN_KEY", ADMIN_KEY)
    write_ndjson(tmp_path / "changes.ndjson", changes=10)
    store = FaultyStore(MemoryStore())
    refused = OperationFailure(
        f"not authorized on eventstore to execute insert (mongodb://app:pw@db, {ADMIN_KEY})", 13
    )
    store.faults.plan("events.append", *[refused] * 50)
    code, _ = ingest(tmp_path / "changes.ndjson", store)
    err = capsys.readouterr().err
    assert code == 1
    assert store.faults.calls["events.append"] == 1  # fatal: not retried
    lines = [line for line in err.splitlines() if line.startswith("eventstore: ")]
    assert lines == [
        "eventstore: error: capture failed: OperationFailure: not authorized on eventstore to "
        "execute insert (mongodb://***@db, ***)"
    ]
    assert "Traceback" not in err
    assert asyncio.run(store.inner.leases.get("ingester:shop")) is None  # released


def test_project_exits_1_when_a_projection_fails_fatally_and_the_others_finish(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = FaultyStore(populated())

    def summary(args: tuple[Any, ...]) -> bool:
        return bool(args and args[0] == "rm_order_summary")

    store.faults.plan("read_models.write", OperationFailure("not authorized", 13), when=summary)
    store.faults.plan("read_models.write", AutoReconnect("blip"), when=lambda _: True)
    code, out = run("project", "--until-caught-up", "--uri", "memory://", store=store)
    err = capsys.readouterr().err
    assert code == 1
    assert (
        "eventstore: error: projection failed: order_summary: OperationFailure: not authorized"
        in err
    )
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["order_summary"].startswith("position 0, ")
    for name in ("orders_by_status", "revenue_by_day", "customer_totals"):
        assert lines[name] == "position 4, stopped", lines
