"""`eventstore subscriptions reset NAME --start X`: a start that is refused is said in the CLI's
words: `--start` and its forms (earliest, latest, a seq, an RFC 3339 time), never the API
body's `start.time` or `{"seq": N}`."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from eventstore.cli.main import main
from eventstore.memory.store import MemoryStore
from tests.helpers import LogBuilder
from tests.realsinks import SECRET


def run(store: MemoryStore, *argv: str) -> int:
    return main(["subscriptions", *argv, "--uri", "memory://"], out=io.StringIO(), store=store)


def added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> MemoryStore:
    """A store whose log has 3 events, with subscription `x`."""
    store = MemoryStore()
    log = LogBuilder()
    asyncio.run(store.events.append([log.next(k) for k in ("a", "b", "c")]))
    body = tmp_path / "sub.json"
    sink = {"kind": "webhook", "url": "https://example.test/h", "secret": SECRET}
    body.write_text(json.dumps({"sink": sink}))
    assert run(store, "add", "x", "--file", str(body)) == 0
    capsys.readouterr()
    return store


def refusal(store: MemoryStore, start: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert run(store, "reset", "x", "--start", start) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.removeprefix("eventstore: error: ").rstrip("\n")


@pytest.mark.parametrize("start", ["bogus", "yesterday", "1.5", '{"seq": 3}'])
def test_reset_with_a_start_that_does_not_read_names_every_accepted_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str
) -> None:
    store = added(tmp_path, capsys)
    assert refusal(store, start, capsys) == (
        f"--start: {start!r} is not earliest, latest, a seq or an RFC 3339 time"
    )


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (
            "2026-01-01T00:00:00",
            "--start: the time '2026-01-01T00:00:00' has no zone: add Z (UTC) or an offset "
            "such as +01:00",
        ),
        ("0", "--start: seq starts at 1"),
        (
            "5",
            "--start: seq 5 is beyond the log, whose head is seq 3: a subscription starts at "
            'most at seq 4 (the next event), or at "latest"',
        ),
    ],
)
def test_a_start_out_of_range_names_the_flag_not_the_api_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, message: str
) -> None:
    store = added(tmp_path, capsys)
    assert refusal(store, start, capsys) == message
    assert run(store, "reset", "x", "--start", "4") == 0  # the next event: taken
