"""Settings at their edges: MongoDB's naming rules, a list naming nothing, and variables that are
no setting.

Database and collection names are held to MongoDB's naming restrictions ("MongoDB Limits and
Thresholds") when settings are built, so a bad one is one line naming the variable and the
character, before anything connects. An `EVENTSTORE_*` variable that is no setting (a typo) is a
WARNING naming it and the setting it may have meant.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from eventstore import settings
from eventstore.settings import PREFIX, SETTING_NAMES, Settings, SettingsError, load

DB_REFUSED = '/\\. "$*<>:|?\x00'


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        load(environ)
    assert "\n" not in str(raised.value)
    return str(raised.value)


# -- database names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"EVENTSTORE_STORE_DB": "a/b"},
            "EVENTSTORE_STORE_DB cannot hold '/': a MongoDB database name has none of "
            "/\\. \"$*<>:|? and no NUL, got 'a/b'",
        ),
        (
            {"EVENTSTORE_SOURCE_DB": "a.b"},
            "EVENTSTORE_SOURCE_DB cannot hold '.': a MongoDB database name has none of "
            "/\\. \"$*<>:|? and no NUL, got 'a.b'",
        ),
    ],
)
def test_a_database_name_mongodb_refuses_is_one_line_naming_the_variable(
    environ: dict[str, str], line: str
) -> None:
    assert refusal(environ) == line


@pytest.mark.parametrize("char", list(DB_REFUSED))
@pytest.mark.parametrize("setting", ["store_db", "source_db"])
def test_every_character_mongodb_refuses_in_a_database_name_is_named(
    setting: str, char: str
) -> None:
    values: dict[str, Any] = {setting: f"shop{char}x"}
    with pytest.raises(SettingsError) as raised:
        Settings(**values)
    assert raised.value.setting == setting
    assert str(raised.value).startswith(f"{setting.upper()} cannot hold {char!r}: ")


def test_a_flag_with_a_bad_database_name_is_named_as_the_flag() -> None:
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_STORE_DB": "audit"}, {"store_db": "a b"})
    assert str(raised.value).startswith("--store-db cannot hold ' ': ")


def test_a_database_name_is_at_most_63_bytes() -> None:
    assert Settings(store_db="x" * 63).store_db == "x" * 63
    assert refusal({"EVENTSTORE_STORE_DB": "x" * 64}) == (
        "EVENTSTORE_STORE_DB must be at most 63 bytes (MongoDB's limit), got 64 bytes"
    )
    # bytes, not characters: 32 two-byte letters are 64 bytes
    assert refusal({"EVENTSTORE_SOURCE_DB": "é" * 32}).endswith("got 64 bytes")
    assert Settings(source_db="é" * 31).source_db == "é" * 31


def test_a_database_name_of_undecodable_bytes_is_refused() -> None:
    # os.environ holds a variable's bytes that are not UTF-8 as lone surrogates
    assert refusal({"EVENTSTORE_STORE_DB": "a\udcffb"}).startswith(
        "EVENTSTORE_STORE_DB must be UTF-8 text"
    )


def test_names_mongodb_takes_are_taken() -> None:
    s = load({"EVENTSTORE_STORE_DB": "audit-log_2", "EVENTSTORE_SOURCE_DB": "Shop#1"})
    assert (s.store_db, s.source_db) == ("audit-log_2", "Shop#1")


# -- collection names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (
            "or$ders",
            "EVENTSTORE_COLLECTIONS cannot hold '$' in a collection name, got 'or$ders'",
        ),
        (
            "orders,a\x00b",
            "EVENTSTORE_COLLECTIONS cannot hold '\\x00' in a collection name, got 'a\\x00b'",
        ),
        (
            "orders,system.views",
            "EVENTSTORE_COLLECTIONS cannot name a collection beginning with system. "
            "(MongoDB's own), got 'system.views'",
        ),
    ],
)
def test_a_collection_name_mongodb_refuses_is_one_line_naming_the_variable(
    value: str, line: str
) -> None:
    assert refusal({"EVENTSTORE_COLLECTIONS": value}) == line


def test_collection_names_mongodb_takes_are_taken() -> None:
    s = load({"EVENTSTORE_COLLECTIONS": "orders,system,systems,order.items,_x"})
    assert s.collections == ("orders", "system", "systems", "order.items", "_x")


def test_a_collection_name_built_in_code_is_checked_too() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings(collections=("orders", "pay$"))
    assert str(raised.value) == "COLLECTIONS cannot hold '$' in a collection name, got 'pay$'"


# -- a list that names nothing ----------------------------------------------------------------


def test_operations_of_only_commas_says_it_names_no_operation() -> None:
    assert refusal({"EVENTSTORE_OPERATIONS": ",,"}) == (
        "EVENTSTORE_OPERATIONS takes insert, update, replace, delete or all, "
        "but names no operation type"
    )
    assert refusal({"EVENTSTORE_OPERATIONS": "insert,upsert"}) == (
        "EVENTSTORE_OPERATIONS takes insert, update, replace, delete or all; unknown: upsert"
    )


# -- variables that are no setting ------------------------------------------------------------


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_misspelt_variable_is_a_warning_naming_the_setting_meant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    s = load({"EVENTSTORE_ORDERFIELDS": '{"status": "state"}', "EVENTSTORE_URI": "memory://"})
    assert s.order_fields == ()  # ignored, as the warning says
    assert warnings(caplog) == [
        "EVENTSTORE_ORDERFIELDS is no setting (did you mean EVENTSTORE_ORDER_FIELDS?): ignored"
    ]


def test_a_variable_like_no_setting_is_named_without_a_guess() -> None:
    assert settings.unknown_variables({"EVENTSTORE_LOG_LEVEL": "debug", "PATH": "/bin"}) == [
        "EVENTSTORE_LOG_LEVEL is no setting: ignored"
    ]
    assert settings.unknown_variables({"EVENTSTORE_url": "x", "EVENTSTORE_BATCHSIZE": "5"}) == [
        "EVENTSTORE_BATCHSIZE is no setting (did you mean EVENTSTORE_BATCH_SIZE?): ignored",
        "EVENTSTORE_url is no setting (did you mean EVENTSTORE_URI?): ignored",
    ]
    # a name that would act on a terminal is shown escaped
    assert settings.unknown_variables({"EVENTSTORE_\x1b[2J": ""}) == [
        "'EVENTSTORE_\\x1b[2J' is no setting: ignored"
    ]


def test_no_variable_the_project_names_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every setting (what `serve --workers N` exports to its workers too), and the read key
    # the explorer's curl commands take from the user's shell.
    caplog.set_level(logging.INFO)
    environ = {PREFIX + name.upper(): "" for name in SETTING_NAMES}
    environ["EVENTSTORE_KEY"] = "a-read-key"
    assert settings.unknown_variables(environ) == []
    load(environ)
    assert warnings(caplog) == []
