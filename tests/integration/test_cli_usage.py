"""The command line's own errors, in-process: usage, refused arguments, and the error line.

Every error is one line on stderr, `eventstore: error: ...`, exit 1, whatever it
quotes: what was typed, a path or a setting is printed with its control characters
escaped, so it can neither forge a line nor act on the terminal.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli import main
from eventstore.memory.store import MemoryStore

MEMORY = ["--uri", "memory://"]
ESC = "\x1b[2J"


def run(*argv: str, store: Any = None) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out, store=store), out.getvalue()


def error_line(err: str) -> str:
    """The one `eventstore: error:` line of stderr (exactly one), checked to hold no control."""
    lines = [line for line in err.splitlines() if line.startswith("eventstore: error:")]
    assert len(lines) == 1, err
    assert "\x1b" not in err and "\u202e" not in err, err
    assert "Traceback" not in err
    return lines[0]


# -- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["status", "--bogus"], "usage: eventstore status "),
        (["verify", "--bogus"], "usage: eventstore verify "),
        (["keygen", "name", "--out", "k", "--json"], "usage: eventstore keygen "),
        (["run", "extra"], "usage: eventstore run "),
        (["projections", "status", "--bogus", "x"], "usage: eventstore projections "),
    ],
)
def test_an_unknown_argument_of_a_command_shows_that_command_s_usage(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(*argv, *MEMORY)
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    assert err.startswith(usage), err
    assert "COMMAND ..." not in err
    assert error_line(err).startswith("eventstore: error: unrecognized arguments: ")


def test_an_unknown_option_before_any_command_is_named_as_such(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("-x") == (1, "")
    err = capsys.readouterr().err
    assert err.startswith("usage: eventstore [-h]")
    assert error_line(err) == "eventstore: error: unrecognized arguments: -x"
    assert run() == (1, "")
    err = capsys.readouterr().err
    assert error_line(err) == "eventstore: error: the following arguments are required: COMMAND"


def test_projections_alone_asks_for_the_action_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("projections") == (1, "")
    err = capsys.readouterr().err
    assert error_line(err) == "eventstore: error: the following arguments are required: action"


def test_projection_names_may_follow_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("projections", "status", "--json", "order_summary", *MEMORY)
    assert code == 0, capsys.readouterr().err
    assert '"order_summary"' in out and "revenue_by_day" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["subscriptions", "list", "extra"], "subscriptions list takes no NAME, got 'extra'"),
        (["subscriptions", "run", "extra"], "subscriptions run takes no NAME, got 'extra'"),
        (
            ["verify", "--key", "log+1234abcd+AQ"],
            "--key is the key of a saved checkpoint: give it with --checkpoint FILE",
        ),
    ],
)
def test_an_argument_that_would_be_ignored_is_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `subscriptions run` would otherwise deliver until stopped: refused before it starts.
    code, out = run(*argv, *MEMORY, store=MemoryStore())
    assert (code, out) == (1, "")
    assert error_line(capsys.readouterr().err) == f"eventstore: error: {message}"


@pytest.mark.parametrize("interval", ["0", "0.5", "-1", "inf", "1e400", "nan", "1_0", "٣", ""])
def test_monitor_refuses_an_interval_under_a_second_or_not_finite(
    interval: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["monitor", "http://127.0.0.1:9", "--key", "k", "--state", str(tmp_path)]
    assert run(*argv, "--interval", interval, "--once") == (1, "")
    err = capsys.readouterr().err
    # a bad value of an argument the command takes: its one line, no usage (README)
    assert len(err.splitlines()) == 1, err
    assert error_line(err).startswith("eventstore: error: argument --interval: ")


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["projections", "rebuild", "order_summary", "--workers", "2.0"], False),
        (["projections", "rebuild", "order_summary", "--workers"], False),
        (["history", "orders", "x", "--limit", "+5"], False),
        (["history", "orders", "x", "--bogus"], True),  # an unknown argument: the usage
        (["projections", "frobnicate"], True),  # an unknown choice: the usage
        (["history"], True),  # a missing argument: the usage
    ],
)
def test_only_what_a_command_does_not_take_shows_its_usage(
    argv: list[str], usage: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv, "--uri", "memory://")[0] == 1
    err = capsys.readouterr().err
    assert err.startswith("usage: eventstore ") is usage, err
    assert error_line(err).startswith("eventstore: error: ")


def test_monitor_takes_an_interval_of_a_second_or_more() -> None:
    from eventstore.cli.parser import build_parser

    for text, seconds in (("1", 1.0), ("1.5", 1.5), ("60", 60.0), ("3600", 3600.0)):
        argv = ["monitor", "http://h", "--key", "k", "--state", "s", "--interval", text]
        assert build_parser().parse_args(argv).interval == seconds


# -- the error line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (
            ["projections", "status", "x\neventstore: all good"],
            "unknown projection x\\x0aeventstore: all good;",
        ),
        (["projections", "status", f"p{ESC}"], "unknown projection p\\x1b[2J;"),
        (["verify", "--against-head", f"f{ESC}"], "no such file: f\\x1b[2J"),
        (["state", "orders", "k", "--at", f"t{ESC}"], "\\x1b[2J"),
        (["status", f"{ESC}\u202e"], "unrecognized arguments: \\x1b[2J\\u202e"),
    ],
)
def test_an_error_line_quoting_control_characters_stays_one_escaped_line(
    argv: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(*argv, *MEMORY)
    assert (code, out) == (1, "")
    assert shown in error_line(capsys.readouterr().err)


def test_a_setting_with_control_characters_is_one_escaped_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTSTORE_OPERATIONS", f"a{ESC}")
    assert run("status", *MEMORY) == (1, "")
    line = error_line(capsys.readouterr().err)
    assert line.startswith("eventstore: error: EVENTSTORE_OPERATIONS ")
    assert line.endswith("a\\x1b[2J")


def test_a_source_path_with_control_characters_is_one_escaped_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run("ingest", "--source", f"ndjson:f{ESC}", "--until-idle", *MEMORY)
    assert (code, out) == (1, "")
    line = error_line(capsys.readouterr().err)
    assert line == "eventstore: error: capture failed: change file not found: f\\x1b[2J"


def test_an_argument_that_is_not_utf8_is_shown_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What Python makes of the byte 0xff in an argument (os.fsdecode: a lone surrogate).
    code, out = run("verify", "--against-head", "f\udcff", *MEMORY)
    assert (code, out) == (1, "")
    assert error_line(capsys.readouterr().err) == "eventstore: error: no such file: f\\udcff"


def test_a_failed_migration_is_its_line_then_the_steps_done_before_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventstore.cli import capture
    from eventstore.migrate import APPLIED, MigrationError, MigrationReport, StepResult

    report = MigrationReport(real_server=True, steps=[StepResult(name="m0001_a", status=APPLIED)])

    async def failing(args: Any, out: Any) -> int:
        raise MigrationError(f"m0002_b: not authorized{ESC}\nforged", report)

    monkeypatch.setattr(capture, "cmd_migrate", failing)
    assert run("migrate", *MEMORY) == (1, "")
    err = capsys.readouterr().err
    assert (
        error_line(err)
        == "eventstore: error: migration failed: m0002_b: not authorized\\x1b[2J\\x0aforged"
    )
    assert err.splitlines()[1:] == ["applied m0001_a", "1 applied, 0 skipped, 0 already applied"]


def test_ctrl_c_before_an_answer_is_exit_130_never_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A `verify` interrupted before its verdict must not read as "intact" (exit 0) to a
    # script: 130, as shells report SIGINT. (Services stop on their own and exit 0.)
    from eventstore.cli import history

    async def interrupted(*_: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(history, "cmd_verify", interrupted)
    assert main(["verify", "--uri", "memory://"], out=io.StringIO(), store=MemoryStore()) == 130


@pytest.mark.parametrize("rate", ["inf", "nan", "1_0", "+5", "\u0663", "1e3"])
def test_a_rate_is_plain_decimal_digits(rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    # float() reads each of these; `--rate inf` or `nan` would pace nothing sensibly.
    assert main(["demo", "--rate", rate], out=io.StringIO()) == 1
    assert "argument --rate: not a number" in capsys.readouterr().err


def test_a_negative_rate_is_said_to_be_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--rate", "-1"], out=io.StringIO()) == 1
    assert "argument --rate: must be 0 or more: -1" in capsys.readouterr().err


def test_checkpoint_interval_s_help_says_what_the_readme_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| `CHECKPOINT_INTERVAL` |")]
    meaning = row.split("|")[3].strip()
    assert run("ingest", "--help")[0] == 0  # the help goes to sys.stdout, not to `out`
    shown = " ".join(capsys.readouterr().out.split())
    help_text = "seconds between checkpoints, appending or idle (default 1)"
    assert f"--checkpoint-interval VALUE {help_text}" in shown
    assert meaning.startswith(help_text.removesuffix(" (default 1)") + ","), meaning
