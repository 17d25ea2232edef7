"""An option that takes one value, given twice, is refused with one line (exit 1).

argparse keeps the last one: `--redact amount --redact state` stored `amount` in the
immutable log, `--read-keys a --read-keys b` dropped key `a`, without a word. Which one
counts would be a guess (as the API says of a parameter given twice); no option of the
command line accumulates its values. One mechanism in the parser does it for every option
of every command, so the test walks them all.
"""

from __future__ import annotations

import argparse
import asyncio

import pytest

from eventstore.cli.parser import build_parser
from eventstore.memory.store import MemoryStore
from tests.integration.test_cli_flags_edges_refused import error_message
from tests.integration.test_cli_usage import MEMORY, run

REFUSAL = "given more than once (which one counts would be a guess): give it once"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options_taking_a_value(command: argparse.ArgumentParser) -> list[str]:
    """Every option of `command` that takes a value (not a flag)."""
    found = []
    for action in command._actions:
        if not action.option_strings or action.nargs == 0:
            continue  # a positional, or a flag (`--json`, `--yes`, `-h`)
        if action.help == argparse.SUPPRESS:
            continue  # refused whatever its value (`demo --uri`)
        found.append(action.option_strings[0])
    return found


COMMANDS = _commands()


def test_the_options_walked_here_are_every_command_s() -> None:
    options = {name: _options_taking_a_value(c) for name, c in COMMANDS.items()}
    assert all(options.values())  # each command takes one at least
    assert "--redact" in options["run"] and "--read-keys" in options["serve"]
    assert "--interval" in options["monitor"] and "--actor" in options["subscriptions"]
    assert "--host" in options["demo"] and "--redact" in options["demo"]
    assert "--uri" not in options["demo"]  # refused whatever its value


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_option_taking_one_value_given_twice_is_one_line_and_exit_1(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    said = {}
    for option in _options_taking_a_value(COMMANDS[command]):
        # "1" and "2" are values every one of them takes: what is refused is the repeat.
        code, out = run(command, option, "1", option, "2")
        err = capsys.readouterr().err
        assert (code, out) == (1, ""), option
        assert "usage:" not in err  # a value of an argument it takes: its one line alone
        said[option] = error_message(err)
    assert said == {option: f"argument {option}: {REFUSAL}" for option in said}


@pytest.mark.parametrize(
    "argv",
    [
        ["run", *MEMORY, "--redact", "amount", "--redact", "state"],
        ["run", *MEMORY, "--redact=amount", "--redact", "state"],
        ["ingest", *MEMORY, "--batch-size", "5", "--bat", "6"],  # an abbreviation is the option
        ["serve", *MEMORY, "--read-keys", "a", "--read-keys", "b"],
        ["demo", "--port", "1", "--port", "2"],
    ],
)
def test_the_repeats_the_report_found_are_refused_before_anything_runs(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()
    assert run(*argv, store=store) == (1, "")
    assert error_message(capsys.readouterr().err).endswith(REFUSAL)
    assert asyncio.run(store.events.head()).seq == 0  # nothing was captured


def test_a_key_given_twice_is_not_quoted_back(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("serve", *MEMORY, "--admin-key", "s3cret-one", "--admin-key", "s3cret-two")[0] == 1
    err = capsys.readouterr().err
    assert "s3cret" not in err
    assert error_message(err) == f"argument --admin-key: {REFUSAL}"


def test_an_option_given_once_and_flags_given_twice_are_taken() -> None:
    parsed = build_parser().parse_args(["projections", "status", "--json", "--json", *MEMORY])
    assert (parsed.json, parsed.setting_uri) == (True, "memory://")
    parsed = build_parser().parse_args(["run", "--redact", "amount", "--rate", "1"])
    assert (parsed.setting_redact, parsed.rate) == ("amount", 1.0)
