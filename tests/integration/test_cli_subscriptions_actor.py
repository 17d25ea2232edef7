"""`subscriptions ... --actor` follows the one rule of every actor the log keeps for good.

The admin action trail is append-only. `erase --actor` and the API's `Eventstore-Actor`
refuse an actor that is blank, longer than MAX_ACTOR characters, or holds a control
character or a bidirectional override (`eventstore.erasure.check_text` / `text_fault`);
`subscriptions add|remove|pause|resume|reset|parked --actor` passed it on unchecked, into
the trail. Now it is refused the same way, before anything is looked up or changed.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from eventstore.cli.main import main
from eventstore.erasure import MAX_ACTOR
from eventstore.memory.store import MemoryStore
from tests.integration.test_cli_flags_edges_refused import error_message
from tests.integration.test_cli_subscriptions import HOOK, run
from tests.integration.test_cli_usage import MEMORY
from tests.integration.test_cli_usage import run as run_cli

BAD_ACTORS = {
    "escape": ("a\x1bb", "--actor holds control characters (U+001B)"),
    "newline": ("a\nb", "--actor holds control characters (U+000A)"),
    "bidi-override": ("a\u202eb", "--actor holds control characters (U+202E)"),
    "too-long": ("a" * (MAX_ACTOR + 1), f"--actor has {MAX_ACTOR + 1} characters; at most 200"),
    "blank": ("   ", "--actor is required"),
    "empty": ("", "--actor is required"),
}


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "sub.json"
    path.write_text(json.dumps({"sink": HOOK, "start": "earliest"}))
    return path


@pytest.mark.parametrize("case", list(BAD_ACTORS))
def test_a_bad_actor_is_refused_and_nothing_is_done(
    case: str, body: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actor, message = BAD_ACTORS[case]
    store = MemoryStore()
    assert run(store, "add", "hooks", "--file", str(body), "--actor", actor) == (1, "")
    assert error_message(capsys.readouterr().err) == message
    assert asyncio.run(store.subscriptions.all()) == []
    assert asyncio.run(store.admin_actions.page()) == []


@pytest.mark.parametrize("action", [["pause", "hooks"], ["remove", "hooks"]])
def test_every_change_checks_its_actor_before_it_is_made(
    action: list[str], body: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()
    assert run(store, "add", "hooks", "--file", str(body), "--actor", "kim")[0] == 0
    assert run(store, *action, "--actor", "a\x1bb") == (1, "")
    assert error_message(capsys.readouterr().err).startswith("--actor holds control characters")
    [record] = asyncio.run(store.subscriptions.all())
    assert record.name == "hooks" and not record.paused
    actions = asyncio.run(store.admin_actions.page())
    assert [(a.action, a.actor) for a in actions] == [("create", "kim")]


@pytest.mark.parametrize("case", list(BAD_ACTORS))
def test_erase_refuses_the_same_actors(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The same rule: what `erase --actor` refuses (there on a missing entity's store, here
    # checked first), `subscriptions --actor` does, and for the same reason.
    actor, message = BAD_ACTORS[case]
    erase = ["erase", "orders", "1", "--reason", "r", "--actor", actor, "--yes", *MEMORY]
    assert run_cli(*erase, store=MemoryStore()) == (1, "")
    assert error_message(capsys.readouterr().err) == message.replace("--actor", "actor")


def test_an_actor_is_recorded_trimmed_as_the_api_records_it(body: Path) -> None:
    store = MemoryStore()
    assert run(store, "add", "hooks", "--file", str(body), "--actor", "  kim  ")[0] == 0
    actions = asyncio.run(store.admin_actions.page())
    assert [(a.action, a.actor) for a in actions] == [("create", "kim")]


def test_without_actor_the_login_name_is_recorded(
    body: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "auditor")
    store = MemoryStore()
    assert run(store, "add", "hooks", "--file", str(body))[0] == 0
    monkeypatch.setattr("getpass.getuser", lambda: "x\x1b]0;pwned\x07")  # not typed: not refused
    assert run(store, "pause", "hooks")[0] == 0
    actions = asyncio.run(store.admin_actions.page())
    assert [(a.action, a.actor) for a in actions] == [("create", "auditor"), ("pause", "unknown")]


def test_a_listing_needs_no_actor_and_says_nothing_of_one() -> None:
    out = io.StringIO()
    assert main(["subscriptions", "list", "--json", *MEMORY], out=out, store=MemoryStore()) == 0
    assert json.loads(out.getvalue()) == []


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        (" " + "a" * 200, None),  # trimmed, as recorded: 200 characters
        ("a" * 200 + "\n", None),
        (" " + "a" * 201, "at most 200 characters, got 201"),
        ("   ", "may not be empty"),
    ],
)
def test_the_api_and_the_cli_measure_an_actor_alike_trimmed(value: str, fault: str | None) -> None:
    """One rule for every actor the log keeps: the API's `text_fault` and the CLI's
    `check_text` measured a padded value apart (as sent, and trimmed)."""
    from eventstore.erasure import MAX_ACTOR, check_text, text_fault
    from eventstore.history import HistoryError

    assert text_fault(value, MAX_ACTOR) == fault
    if fault is None:
        assert check_text("actor", value, MAX_ACTOR) == value.strip()
    else:
        with pytest.raises(HistoryError):
            check_text("actor", value, MAX_ACTOR)
