"""LOG_ORIGIN follows the rule of key names: no spaces, `+`, control or bidi characters.

C2SP tlog-checkpoint asks an origin to hold neither Unicode spaces nor `+`, and Go's
`sumdb/note` refuses a note holding a control character as malformed: the service
must refuse such an origin at start-up instead of signing notes nobody else reads.
"""

from __future__ import annotations

import pytest

from eventstore.cli import main
from eventstore.notes import NoteError, Signer, Verifier, checkpoint_text, open_note, sign_note
from eventstore.settings import Settings, SettingsError, load

SPACES = "must be non-empty, without '+', spaces, tabs or newlines"
SHOWN = (
    "must be printable text: no control, format or bidirectional characters,"
    " no bytes that are not UTF-8"
)


@pytest.mark.parametrize(
    ("origin", "problem"),
    [
        ("shop\tlog", f"{SPACES}, got 'shop\\tlog'"),
        ("shop\x1b[2Jlog", f"{SHOWN}, got 'shop\\x1b[2Jlog'"),
        ("shop\u202elog", f"{SHOWN}, got 'shop\\u202elog'"),
        ("shop\u200blog", f"{SHOWN}, got 'shop\\u200blog'"),
        ("shop log", f"{SPACES}, got 'shop log'"),
        ("shop\u00a0log", f"{SPACES}, got 'shop\\xa0log'"),
        ("shop\u3000log", f"{SPACES}, got 'shop\\u3000log'"),
        ("shop+log", f"{SPACES}, got 'shop+log'"),
        ("", f"{SPACES}, got ''"),
    ],
)
def test_an_origin_that_does_not_show_as_it_is_is_refused_naming_the_setting(
    origin: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings(log_origin=origin)
    assert str(refused.value) == f"LOG_ORIGIN {problem}"
    assert refused.value.setting == "log_origin"
    if origin:  # an empty variable is the setting not given
        with pytest.raises(SettingsError) as refused:
            load({"EVENTSTORE_LOG_ORIGIN": origin})
        assert str(refused.value) == f"EVENTSTORE_LOG_ORIGIN {problem}"


@pytest.mark.parametrize("origin", ["grow.example/log", "audit.example.com/shop", "журнал/log"])
def test_an_origin_that_shows_as_it_is_is_kept(origin: str) -> None:
    assert load({"EVENTSTORE_LOG_ORIGIN": origin}).origin == origin


def test_start_up_with_a_tab_in_the_origin_is_one_error_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["verify", "--uri", "memory://", "--log-origin", "shop\tlog"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"eventstore: error: --log-origin {SPACES}, got 'shop\\tlog'\n"


@pytest.mark.parametrize("control", ["\t", "\x1b", "\r", "\x00"])
def test_a_signed_note_holding_a_control_character_is_refused_as_go_refuses_it(
    control: str,
) -> None:
    """Go's `note.Open`: a note holding an ASCII control character other than newline."""
    signer = Signer.generate("log.example")
    text = checkpoint_text(f"shop{control}log", 2, bytes(32))
    with pytest.raises(NoteError) as refused:
        open_note(sign_note(text, signer), Verifier.parse(signer.verifier_key()))
    assert str(refused.value) == (
        f"not a signed note: it holds the control character {control!r}"
        " (a note holds none but newlines)"
    )
