"""The capture commands as a user runs them, in-process: exit codes, messages, output."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import pytest
from bson import json_util

from eventstore.cli import main
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator


def run(*argv: str, store: object = None) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out, store=store)
    return code, out.getvalue()


def write_ndjson(path: Path, *, changes: int = 40, bad_line: int | None = None) -> list[str]:
    """A captured stream as Extended JSON lines (relaxed), from a real feed; returns the tokens."""

    async def record() -> list[dict[str, object]]:
        feed = MemoryChangeFeed(clock=FakeClock(), db_name="shop")
        await Simulator(feed, seed=2, clock=FakeClock()).run(orders=5, changes=changes, rate=0)
        return [feed.entry_at(p).event for p in range(1, feed.position + 1)]  # type: ignore[union-attr]

    events = asyncio.run(record())
    lines = [json_util.dumps(e, json_options=json_util.RELAXED_JSON_OPTIONS) for e in events]
    if bad_line is not None:
        lines.insert(bad_line - 1, '{"_id": {"_data": "zz"}, "operationType": "insert", oops')
    path.write_text("\n".join(lines) + "\n")
    return [e["_id"]["_data"] for e in events]  # type: ignore[index]


def test_demo_reports_a_verified_capture() -> None:
    code, out = run("demo", "--report", "--orders", "5", "--changes", "60", "--json")
    summary = json.loads(out)
    assert code == 0
    assert summary["events"] == summary["changes"] >= 65
    assert summary["verified"] is True
    assert summary["head"]["seq"] == summary["events"]
    assert set(summary["by_type"]) <= {"created", "updated", "replaced", "deleted"}
    assert summary["by_type"]["created"] >= 5


def test_a_signal_while_the_report_captures_stops_it_between_batches_without_a_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    from eventstore.cli import demo

    batches: list[int] = []

    def interrupted_after_the_first_batch(label: str) -> object:
        def on_batch(stats: object) -> None:
            batches.append(1)
            if len(batches) == 1:  # Ctrl-C while the backlog is captured
                os.kill(os.getpid(), signal.SIGINT)

        return on_batch

    monkeypatch.setattr(demo, "Progress", interrupted_after_the_first_batch)
    before = signal.getsignal(signal.SIGINT)
    # Batches of 10 changes: the backlog of 5 orders and 200 changes is some 20 of them.
    argv = ["--orders", "5", "--changes", "200", "--batch-size", "10", "--json"]
    code, out = run("demo", "--report", *argv)
    assert (code, out) == (0, "")  # stopped as `run` and `demo` stop: exit 0, and no summary
    assert len(batches) <= 2  # not the ~20 batches of the whole backlog
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "demo: stopped before the report"
    assert "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_ingest_replays_an_ndjson_file_into_the_given_store(tmp_path: Path) -> None:
    tokens = write_ndjson(tmp_path / "changes.ndjson")
    store = MemoryStore()
    code, out = run(
        "ingest",
        "--uri",
        "memory://",
        "--source",
        f"ndjson:{tmp_path / 'changes.ndjson'}",
        "--until-idle",
        store=store,
    )
    assert code == 0
    assert out.startswith(f"recorded {len(tokens)} events")
    events = asyncio.run(store.events.read(limit=1000))
    assert [e.id for e in events] == tokens
    # the same file again: the checkpoint resumes after its last line, nothing is recorded twice
    code, out = run(
        "ingest",
        "--uri",
        "memory://",
        "--source",
        f"ndjson:{tmp_path / 'changes.ndjson'}",
        "--until-idle",
        store=store,
    )
    assert code == 0 and out.startswith("recorded 0 events")
    assert len(asyncio.run(store.events.read(limit=1000))) == len(tokens)


def test_a_malformed_line_stops_with_its_number_and_keeps_what_came_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = write_ndjson(tmp_path / "bad.ndjson", changes=10, bad_line=4)
    store = MemoryStore()
    code, _ = run(
        "ingest",
        "--uri",
        "memory://",
        "--source",
        f"ndjson:{tmp_path / 'bad.ndjson'}",
        "--until-idle",
        "--batch-size",
        "2",
        store=store,
    )
    err = capsys.readouterr().err
    assert code == 1
    # The supervised capture worker failed (fatal, not retried): the same line `run` gives.
    assert err.splitlines()[-1] == (
        "eventstore: error: capture failed: "
        "ndjson: line 4: not valid JSON (Expecting property name enclosed in double quotes, "
        "line 1 column 53)"
    )
    assert "Traceback" not in err
    assert [e.id for e in asyncio.run(store.events.read(limit=100))] == tokens[:3]


def test_bad_input_record_records_a_malformed_line_as_rejected_and_goes_on(
    tmp_path: Path,
) -> None:
    tokens = write_ndjson(tmp_path / "bad.ndjson", changes=10, bad_line=4)
    store = MemoryStore()
    argv = ["ingest", "--uri", "memory://", "--source", f"ndjson:{tmp_path / 'bad.ndjson'}"]
    code, out = run(*argv, "--until-idle", "--bad-input", "record", store=store)
    assert code == 0
    assert out.startswith(f"recorded {len(tokens) + 1} events")
    assert "1 rejected)" in out
    events = asyncio.run(store.events.read(limit=100))
    assert [e.type for e in events][3] == "rejected"
    assert [e.id for e in events if e.type != "rejected"] == tokens
    # The same file again: nothing new, the rejected line included.
    code, out = run(*argv, "--until-idle", "--bad-input", "record", store=store)
    assert code == 0 and out.startswith("recorded 0 events")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "--uri", "memory://", "--source", "mongo"], "needs a mongodb:// URI"),
        (
            ["ingest", "--uri", "memory://", "--source", "ndjson:/no/such/file.ndjson"],
            "/no/such/file.ndjson",
        ),
        (["ingest", "--source", "simulator"], "no URI"),
        (["ingest", "--uri", "mongodb://user:pw@:bad:port/"], "URI"),
        (["ingest", "--uri", "postgres://x"], "--uri must start with"),
        (
            ["ingest", "--uri", "memory://", "--batch-size", "0"],
            "--batch-size must be at least 1, got 0",
        ),
        (
            ["ingest", "--uri", "memory://", "--bad-input", "skip"],
            "--bad-input takes one of stop, record, got 'skip'",
        ),
        (["migrate", "--uri", "mongodb://h1,h2/?directConnection=true"], "URI"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(*argv)
    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert "Traceback" not in err and "pw" not in err


def test_unreachable_server_fails_within_the_server_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    code, _ = run("ingest", "--uri", "mongodb://127.0.0.1:1/", "--server-timeout-ms", "300")
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1 and "reach" in err and "Traceback" not in err
    assert elapsed < 5  # the 300 ms timeout, not the 5 s default or 30 s driver default


def test_migrate_on_memory_has_nothing_to_do() -> None:
    code, out = run("migrate", "--uri", "memory://")
    assert code == 0 and "nothing to migrate" in out


def test_migrate_json_on_memory_is_the_report_with_every_step_skipped_and_why() -> None:
    from eventstore.migrate import load_steps

    code, out = run("migrate", "--uri", "memory://", "--json")
    assert code == 0
    why = "memory:// keeps everything in this process: nothing to migrate"
    # the shape of the report on MongoDB: {real_server, steps: [{name, status, reason}]}
    assert json.loads(out) == {
        "real_server": False,
        "steps": [{"name": s.name, "status": "skipped", "reason": why} for s in load_steps()],
    }
    assert len(load_steps()) > 10


def test_environment_settings_apply_and_flags_override(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTSTORE_URI", "memory://")
    monkeypatch.setenv("EVENTSTORE_SOURCE", "mongo")
    code, _ = run("ingest")
    assert code == 1 and "needs a mongodb:// URI" in capsys.readouterr().err
    code, out = run(
        "ingest", "--source", "simulator", "--orders", "3", "--rate", "0", "--until-idle"
    )
    assert code == 0 and out.startswith("recorded 3 events")
