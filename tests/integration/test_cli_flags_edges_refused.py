"""The command line at its edges: flags a command would ignore are refused, before anything
connects; a number out of range is said so; `-v` follows the command too; a variable that is
no setting is a warning at start-up; and a rebuild's progress is a line of its own off a terminal.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli.parser import build_parser
from eventstore.cli.projections import ProgressBar
from eventstore.memory.store import MemoryStore
from projections.runner import RebuildProgress
from tests.integration.test_cli_history import populated
from tests.integration.test_cli_usage import MEMORY, error_line, run
from tests.realsinks import SECRET


def error_message(err: str) -> str:
    """The one error line's message (`error_line` checks it is one line, without control)."""
    return error_line(err).removeprefix("eventstore: error: ")


# -- numbers: the sign of a number is its range, not its spelling -------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--rate", "-5"], "argument --rate: must be 0 or more: -5"),
        (["ingest", *MEMORY, "--rate", "-0.5"], "argument --rate: must be 0 or more: -0.5"),
        (["ingest", *MEMORY, "--orders", "-1"], "argument --orders: must be 0 or more: -1"),
        (
            ["monitor", "http://127.0.0.1:9", "--key", "k", "--state", "s", "--interval", "-1"],
            "argument --interval: must be 1 or more seconds: -1",
        ),
        (["demo", "--rate", "x"], "argument --rate: not a number: 'x' (e.g. 5 or 0.5)"),
    ],
)
def test_a_negative_number_is_said_to_be_out_of_range(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv) == (1, "")
    assert error_message(capsys.readouterr().err) == message


def test_minus_zero_is_a_rate_of_zero() -> None:
    assert build_parser().parse_args(["ingest", "--rate", "-0"]).rate == 0.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["history", *MEMORY, "o", "k", "--limit", "-00"],
            "argument --limit: must be 1 or more: -00",
        ),
        (["ingest", *MEMORY, "--orders", "-01"], "argument --orders: must be 0 or more: -01"),
        (["run", *MEMORY, "--port", "070000"], "argument --port: not a port: 070000"),
        (
            ["projections", *MEMORY, "rebuild", "--all", "--workers", "017"],
            "--workers takes 1 to 16, got 017",
        ),
        (
            ["ingest", *MEMORY, "--source", "simulator", "--until-idle", "--rate", "5.50"],
            "--until-idle with --source simulator needs --rate 0: at --rate 5.50 the simulated "
            "traffic never ends, so capture is never idle (--rate 0 writes the --orders, "
            "captures them and stops)",
        ),
        (
            ["verify", *MEMORY, "--lease-seconds", "86401"],
            "--lease-seconds must be more than 0 and at most 86400 (a day), got 86401",
        ),
    ],
)
def test_a_number_refused_is_quoted_as_it_was_typed(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv) == (1, "")
    assert error_message(capsys.readouterr().err) == message


def test_the_options_read_by_the_parser_keep_the_text_typed() -> None:
    parsed = build_parser().parse_args(["run", "--rate", "5.50", "--port", "08080"])
    assert (parsed.rate, parsed.port, parsed.given_options) == (5.5, 8080, ("--rate", "--port"))
    assert parsed.written_options == {"--rate": "5.50", "--port": "08080"}


# -- -v after the command ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["migrate", *MEMORY], False),
        (["migrate", *MEMORY, "-v"], True),
        (["migrate", "--verbose", *MEMORY], True),
        (["-v", "migrate", *MEMORY], True),
        (["-v", "migrate", *MEMORY, "-v"], True),
    ],
)
def test_verbose_may_follow_the_command(
    argv: list[str], verbose: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured: list[bool] = []
    cli_main = importlib.import_module("eventstore.cli.main")
    monkeypatch.setattr(cli_main, "configure_logging", configured.append)
    assert run(*argv) == (0, "memory:// keeps everything in this process: nothing to migrate\n")
    assert configured == [verbose]


def test_every_command_takes_verbose_after_it() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert sub.choices is not None
    for name, command in dict(sub.choices).items():
        assert "-v" in command._option_string_actions, name


# -- demo ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--json"], "demo takes --json only with --report (serving prints no summary)"),
        (["--uri", "mongodb://db"], "demo runs on memory:// and takes no --uri (run does)"),
        (
            ["--source", "ndjson:x"],
            "demo captures the simulator's traffic and takes no --source (run and ingest do)",
        ),
        (
            ["--report", "--orders", "1", "--changes", "1", "--rate", "3"],
            "demo --report takes no --rate (it captures as fast as it can and serves nothing)",
        ),
        (
            ["--report", "--orders", "1", "--changes", "1", "--host", "::", "--port", "1"],
            "demo --report takes no --host or --port "
            "(it captures as fast as it can and serves nothing)",
        ),
    ],
)
def test_a_demo_flag_that_would_be_ignored_is_refused(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def serving(*_: Any) -> int:  # never serve here: a flag let through answers 99
        return 99

    monkeypatch.setattr(importlib.import_module("eventstore.cli.run"), "serve_demo", serving)
    assert run("demo", *argv) == (1, "")
    err = capsys.readouterr().err
    assert err.startswith("usage: eventstore demo ")
    assert error_message(err) == message


def test_the_simulator_flags_given_are_noted_for_the_command() -> None:
    parse = build_parser().parse_args
    assert parse(["ingest"]).given_options == ()
    assert parse(["ingest", "--orders", "5", "--seed", "2"]).given_options == ("--orders", "--seed")
    assert parse(["run", "--rate", "1"]).given_options == ("--rate",)
    assert parse(["demo", "--report", "--json"]).json is True


# -- subscriptions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "--file", "x.json"], "subscriptions list takes no --file"),
        (["status", "foo", "--file", "x.json"], "subscriptions status takes no --file"),
        (["pause", "foo", "--start", "latest"], "subscriptions pause takes no --start"),
        (["reset", "foo", "--start", "1", "--skip", "2"], "subscriptions reset takes no --skip"),
        (["list", "--actor", "kim"], "subscriptions list takes no --actor"),
        (["run", "--replay"], "subscriptions run takes no --replay"),
        (
            ["parked", "foo", "--replay", "--skip", "3"],
            "subscriptions parked takes --replay or --skip, not both",
        ),
        (
            ["parked", "foo", "--up-to", "3"],
            "subscriptions parked takes --up-to only with --replay",
        ),
        (
            ["parked", "foo", "--actor", "kim"],
            "subscriptions parked takes --actor only with --replay or --skip",
        ),
        (
            ["parked", "foo", "--skip", "3", "--json"],
            "subscriptions parked takes --json only to list (not with --replay or --skip)",
        ),
    ],
)
def test_a_subscriptions_flag_that_would_be_ignored_is_refused_first(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `foo` exists nowhere: the flags are refused before it is looked up
    assert run("subscriptions", *argv, *MEMORY, store=MemoryStore()) == (1, "")
    assert capsys.readouterr().err == f"eventstore: error: {message}\n"


def test_subscriptions_flags_of_their_own_action_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()
    body = tmp_path / "hook.json"
    sink = {"kind": "webhook", "url": "https://example.test/h", "secret": SECRET}
    body.write_text(json.dumps({"sink": sink}))
    add = ["subscriptions", "add", "h", "--file", str(body), "--actor", "kim", *MEMORY]
    assert run(*add, store=store) == (0, "created h\n")
    assert run("subscriptions", "parked", "h", "--json", *MEMORY, store=store) == (
        0,
        '{"items": [], "next": null}\n',
    )
    code, _ = run("subscriptions", "pause", "h", "--actor", "kim", "--json", *MEMORY, store=store)
    assert code == 0, capsys.readouterr().err


# -- projections --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["rebuild", "status"])
def test_a_projection_named_twice_is_refused(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = populated()
    argv = ["projections", action, "order_summary", "revenue_by_day", "order_summary", *MEMORY]
    assert run(*argv, store=store) == (1, "")
    assert capsys.readouterr().err == (
        f"eventstore: error: projections {action} names order_summary more than once\n"
    )
    assert "rm_order_summary" not in store.read_models._tables  # nothing was rebuilt


def test_a_rebuild_off_a_terminal_writes_lines_not_redrawn_frames(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run("projections", "rebuild", "order_summary", *MEMORY, store=populated())
    err = capsys.readouterr().err
    assert code == 0 and "order_summary: rebuilt from 4 events" in out
    assert "\r" not in err
    (line,) = err.splitlines()  # the bar once, finished, as a line of its own
    assert line.startswith("order_summary [##############################] 4/4 events, ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_off_a_terminal_is_a_line_every_so_often_and_one_at_the_end() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar("p", stream, every=10.0, monotonic=lambda: now[0])
    for second in range(1, 26):
        now[0] = float(second)
        bar(RebuildProgress(processed=second * 100, total=2500, seconds=float(second)))
    bar.done(RebuildProgress(processed=2500, total=2500))
    assert stream.getvalue().splitlines() == [
        "p [############..................] 1000/2500 events, 100/s, ETA 15s",
        "p [########################......] 2000/2500 events, 100/s, ETA 5s",
        "p [##############################] 2500/2500 events, 100/s, ETA 0s",
    ]


def test_the_progress_bar_on_a_terminal_is_redrawn_in_place() -> None:
    stream = _Terminal()
    bar = ProgressBar("p", stream)
    bar(RebuildProgress(processed=1, total=2, seconds=1.0))
    bar.done(RebuildProgress(processed=2, total=2))
    assert stream.getvalue() == (
        "\rp [###############...............] 1/2 events, 1/s, ETA 1s"
        "\rp [##############################] 2/2 events, 1/s, ETA 0s\n"
    )


# -- settings at start-up -----------------------------------------------------------------------


def test_a_misspelt_variable_is_a_warning_at_start_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EVENTSTORE_ORDERFIELDS", '{"status": "state"}')
    caplog.set_level(logging.INFO)
    assert run("migrate", *MEMORY)[0] == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "EVENTSTORE_ORDERFIELDS is no setting (did you mean EVENTSTORE_ORDER_FIELDS?): ignored"
    ]


def test_a_bad_database_name_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTSTORE_STORE_DB", "a/b")
    argv = ["verify", "--uri", "mongodb://127.0.0.1:9", "--server-timeout-ms", "200"]
    assert run(*argv) == (1, "")
    assert capsys.readouterr().err == (
        "eventstore: error: EVENTSTORE_STORE_DB cannot hold '/': a MongoDB database name has "
        "none of /\\. \"$*<>:|? and no NUL, got 'a/b'\n"
    )
