"""`eventstore subscriptions reset NAME --start X`: a start that does not read lists the forms."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from eventstore.cli.main import main
from eventstore.memory.store import MemoryStore
from tests.realsinks import SECRET


def run(store: MemoryStore, *argv: str) -> int:
    return main(["subscriptions", *argv, "--uri", "memory://"], out=io.StringIO(), store=store)


@pytest.mark.parametrize("start", ["bogus", "yesterday", "1.5"])
def test_reset_with_a_start_that_does_not_read_names_every_accepted_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str
) -> None:
    store = MemoryStore()
    body = tmp_path / "sub.json"
    sink = {"kind": "webhook", "url": "https://example.test/h", "secret": SECRET}
    body.write_text(json.dumps({"sink": sink}))
    assert run(store, "add", "x", "--file", str(body)) == 0
    capsys.readouterr()
    assert run(store, "reset", "x", "--start", start) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.rstrip("\n").endswith(
        f'{start!r} is not an RFC 3339 time: a start is "latest", "earliest", a seq '
        '({"seq": N}) or an RFC 3339 time ({"time": "2026-01-01T00:00:00Z"})'
    )
