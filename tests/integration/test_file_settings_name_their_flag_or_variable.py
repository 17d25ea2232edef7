"""A file a setting names that is refused when it is read (SIGNING_KEY, SUBSCRIPTIONS) is one
error line naming the flag when the flag was given, else the variable, as every other
setting's line does (`--snapshot-every must be at least 1`)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.memory.store import MemoryStore
from eventstore.signing import write_key

BAD_KIND = (
    "subscription 'x': sink.kind: unknown sink kind 'bogus': use one of webhook, redis-pubsub, "
    "redis-invalidate, redis-stream"
)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bad subscriptions file, a key readable by others and an empty change file, in cwd."""
    monkeypatch.chdir(tmp_path)
    Path("subs_bad.json").write_text(json.dumps([{"name": "x", "sink": {"kind": "bogus"}}]))
    write_key("other644.key", "log.test")
    os.chmod("other644.key", 0o644)
    Path("x.ndjson").write_text("")
    return tmp_path


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    out = io.StringIO()
    assert main([*argv, "--uri", "memory://"], out=out, store=MemoryStore()) == 1
    err = capsys.readouterr().err
    assert out.getvalue() == "" and err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("eventstore: error: ").rstrip("\n")


CAPTURE = ["ingest", "--source", "ndjson:x.ndjson", "--until-idle"]
RUN = ["run", "--source", "ndjson:x.ndjson", "--port", "0"]
READABLE = "other644.key is readable by group or others (mode 0644); chmod 600 it"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*RUN, "--subscriptions", "subs_bad.json"], f"--subscriptions: subs_bad.json: {BAD_KIND}"),
        (
            ["subscriptions", "run", "--subscriptions", "subs_bad.json"],
            f"--subscriptions: subs_bad.json: {BAD_KIND}",
        ),
        ([*RUN, "--signing-key", "other644.key"], f"--signing-key {READABLE}"),
        ([*CAPTURE, "--signing-key", "other644.key"], f"--signing-key {READABLE}"),
    ],
)
def test_a_file_refused_names_the_flag_it_was_given_by(
    files: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert refused(argv, capsys) == message


@pytest.mark.parametrize(
    ("variable", "value", "argv", "message"),
    [
        (
            "EVENTSTORE_SUBSCRIPTIONS",
            "subs_bad.json",
            RUN,
            f"EVENTSTORE_SUBSCRIPTIONS: subs_bad.json: {BAD_KIND}",
        ),
        ("EVENTSTORE_SIGNING_KEY", "other644.key", RUN, f"EVENTSTORE_SIGNING_KEY {READABLE}"),
        ("EVENTSTORE_SIGNING_KEY", "other644.key", CAPTURE, f"EVENTSTORE_SIGNING_KEY {READABLE}"),
    ],
)
def test_a_file_refused_names_the_variable_it_came_from(
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert refused(argv, capsys) == message


def test_a_line_names_a_setting_by_where_it_came_from_only_at_its_start() -> None:
    from eventstore.settings import named_by_origin

    flags = {"signing_key": "k", "subscriptions": None}
    assert named_by_origin("SIGNING_KEY k: bad", flags) == "--signing-key k: bad"
    assert named_by_origin("SIGNER_STATE s is not a signer state") == (
        "EVENTSTORE_SIGNER_STATE s is not a signer state"
    )
    assert named_by_origin("EVENTSTORE_SUBSCRIPTIONS: f: x", flags) == (
        "EVENTSTORE_SUBSCRIPTIONS: f: x"
    )
    # another setting whose name begins alike, or a name inside the line: left as it is
    assert named_by_origin("SOURCE_DB x", {"source": "mongo"}) == "EVENTSTORE_SOURCE_DB x"
    assert named_by_origin("SIGNING_KEYS x", flags) == "SIGNING_KEYS x"
    assert named_by_origin("no SIGNING_KEY set", flags) == "no SIGNING_KEY set"
    assert named_by_origin("--signing-key k: bad", flags) == "--signing-key k: bad"
