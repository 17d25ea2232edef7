"""Settings: EVENTSTORE_* variables, CLI overrides, validation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventstore.settings import (
    _CHECKS,
    SETTING_NAMES,
    Redaction,
    Settings,
    SettingsError,
    load,
)


def test_defaults_match_the_design() -> None:
    s = load({})
    assert s.uri is None
    assert (s.source, s.source_db, s.store_db) == ("mongo", "shop", "eventstore")
    assert s.collections == ("orders",)
    assert s.operations == ("insert", "update", "replace", "delete")
    assert (s.actor_field, s.pre_images, s.snapshot_every, s.batch_size) == (
        "updatedBy",
        "off",
        100,
        1000,
    )
    assert (s.lease_seconds, s.server_timeout_ms) == (10.0, 5000)
    assert s.admin_key is None and s.read_keys == ()
    assert s.unhealthy_after == 30.0


def test_environment_is_read_and_flags_override_it() -> None:
    env = {"EVENTSTORE_SOURCE_DB": "envdb", "EVENTSTORE_COLLECTIONS": "orders, refunds"}
    s = load(env, {"source_db": "flagdb", "collections": None})
    assert s.source_db == "flagdb"
    assert s.collections == ("orders", "refunds")


def test_unhealthy_after_is_read_from_its_variable_and_flag() -> None:
    assert load({"EVENTSTORE_UNHEALTHY_AFTER": "2.5"}).unhealthy_after == 2.5
    assert load({}, {"unhealthy_after": "45"}).unhealthy_after == 45.0
    with pytest.raises(SettingsError, match="UNHEALTHY_AFTER"):
        Settings(unhealthy_after=0)  # checked whenever a Settings is built, not only when read


def test_redaction_paths_and_masks() -> None:
    s = load({"EVENTSTORE_REDACT": "customer.email,shipping.street:***"})
    assert s.redact == (Redaction("customer.email"), Redaction("shipping.street", "***"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EVENTSTORE_BATCH_SIZE", "zero", "BATCH_SIZE"),
        ("EVENTSTORE_BATCH_SIZE", "0", "at least 1"),
        # int() reads these as 1000 and 3; a setting is read in ASCII digits only
        ("EVENTSTORE_BATCH_SIZE", "1_000", "BATCH_SIZE must be a whole number, got '1_000'"),
        ("EVENTSTORE_STATE_CACHE", "\u0663", "STATE_CACHE must be a whole number"),
        ("EVENTSTORE_PRE_IMAGES", "sometimes", "PRE_IMAGES"),
        ("EVENTSTORE_OPERATIONS", "insert,upsert", "upsert"),
        ("EVENTSTORE_URI", "http://x", "mongodb://"),
        ("EVENTSTORE_SOURCE", "kafka", "SOURCE"),
        ("EVENTSTORE_REDACT", "a..b", "REDACT"),
        ("EVENTSTORE_UNHEALTHY_AFTER", "soon", "UNHEALTHY_AFTER must be a number"),
        ("EVENTSTORE_UNHEALTHY_AFTER", "0", "UNHEALTHY_AFTER must be more than 0"),
    ],
)
def test_bad_values_are_clear_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load({name: value})


def test_keys_never_show_in_the_settings_repr() -> None:
    s = load({"EVENTSTORE_ADMIN_KEY": "s3cret-admin", "EVENTSTORE_READ_KEYS": "r1,r2"})
    assert s.admin_key == "s3cret-admin"
    assert "s3cret" not in repr(s) and "r1" not in repr(s)


def test_a_failed_migration_is_one_clear_message() -> None:
    from eventstore.errors import user_message
    from eventstore.migrate import MigrationError, MigrationReport

    message = user_message(
        MigrationError(
            "m0001_create_events_collection: not authorized",
            MigrationReport(real_server=True, steps=[]),
        )
    )
    assert message is not None and message.startswith(
        "migration failed: m0001_create_events_collection"
    )


# -- validated whenever a Settings is built, not only when read from the environment ------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"snapshot_every": 0}, "SNAPSHOT_EVERY must be at least 1, got 0"),
        ({"batch_size": -5}, "BATCH_SIZE must be at least 1, got -5"),
        ({"server_timeout_ms": 0}, "SERVER_TIMEOUT_MS must be at least 1, got 0"),
        ({"batch_size": "10"}, "BATCH_SIZE must be a whole number, got '10'"),
        ({"batch_size": True}, "BATCH_SIZE must be a whole number, got True"),
        (
            {"lease_seconds": 0},
            "LEASE_SECONDS must be more than 0 and at most 86400 (a day), got 0",
        ),
        ({"lease_seconds": float("inf")}, "LEASE_SECONDS must be more than 0 and at most 86400"),
        ({"lease_seconds": float("nan")}, "LEASE_SECONDS must be more than 0 and at most 86400"),
        ({"lease_seconds": 1e12}, "LEASE_SECONDS must be more than 0 and at most 86400"),
        ({"checkpoint_interval": 86_401}, "CHECKPOINT_INTERVAL must be more than 0 and at most"),
        ({"unhealthy_after": 10**30}, "UNHEALTHY_AFTER must be more than 0 and at most 86400"),
        ({"server_timeout_ms": 10**9}, "SERVER_TIMEOUT_MS must be at most 3600000 (an hour)"),
        ({"uri": "http://x"}, "URI must start with mongodb://"),
        ({"source": "kafka"}, "SOURCE takes mongo, simulator or ndjson:PATH, got 'kafka'"),
        ({"source": "ndjson:"}, "SOURCE takes mongo, simulator or ndjson:PATH"),
        ({"source_db": " "}, "SOURCE_DB must not be empty"),
        ({"store_db": ""}, "STORE_DB must not be empty"),
        ({"actor_field": ""}, "ACTOR_FIELD must not be empty"),
        ({"collections": ()}, "COLLECTIONS needs at least one collection name"),
        ({"collections": ("orders", "")}, "COLLECTIONS must be a list of non-empty names"),
        ({"operations": ("insert", "upsert")}, "OPERATIONS takes insert, update"),
        ({"operations": ()}, "OPERATIONS takes insert, update"),
        ({"redact": (Redaction("a..b"),)}, "REDACT has a malformed path: 'a..b'"),
        ({"redact": ("customer.email",)}, "REDACT must be a list of field paths"),
        ({"pre_images": "sometimes"}, "PRE_IMAGES takes one of off, when-available, required"),
        ({"bad_input": "skip"}, "BAD_INPUT takes one of stop, record, got 'skip'"),
        ({"admin_key": ""}, "ADMIN_KEY must not be empty"),
        ({"read_keys": ("k1", " ")}, "READ_KEYS must be a list of non-empty keys"),
    ],
)
def test_a_settings_built_in_code_is_validated(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings(**values)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert raised.value.setting == next(iter(values))


def test_snapshot_every_zero_is_refused_at_construction() -> None:
    with pytest.raises(SettingsError, match=r"^SNAPSHOT_EVERY must be at least 1, got 0$"):
        Settings(snapshot_every=0)


def test_a_copy_with_a_bad_value_is_refused_too() -> None:
    with pytest.raises(SettingsError, match="BATCH_SIZE must be at least 1"):
        msgspec.structs.replace(Settings(), batch_size=0)


def test_decoding_settings_checks_them_too() -> None:
    with pytest.raises(msgspec.ValidationError, match="SNAPSHOT_EVERY must be at least 1"):
        msgspec.convert({"snapshot_every": 0}, Settings)


def test_every_setting_has_a_check() -> None:
    missing = set(Settings.__struct_fields__) - set(_CHECKS)
    assert not missing, f"add a check to eventstore.settings._CHECKS for {sorted(missing)}"
    assert set(_CHECKS) == set(Settings.__struct_fields__)


def test_good_values_pass() -> None:
    s = Settings(
        uri="mongodb+srv://h/x",
        source="ndjson:-",
        collections=["orders", "refunds"],  # type: ignore[arg-type]  # a list is accepted too
        operations=("insert",),
        redact=(Redaction("customer.email", "***"),),
        pre_images="required",
        snapshot_every=1,
        batch_size=1,
        lease_seconds=0.2,
        server_timeout_ms=1,
        admin_key="k",
        read_keys=("r",),
    )
    assert s.lease_seconds == 0.2 and s.batch_size == 1


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({"EVENTSTORE_SNAPSHOT_EVERY": "0"}, "EVENTSTORE_SNAPSHOT_EVERY must be at least 1, got 0"),
        ({"EVENTSTORE_STATE_CACHE": "0"}, "EVENTSTORE_STATE_CACHE must be at least 1, got 0"),
        (
            {"EVENTSTORE_STATE_CACHE": "lots"},
            "EVENTSTORE_STATE_CACHE must be a whole number, got 'lots'",
        ),
        (
            {"EVENTSTORE_BATCH_SIZE": "many"},
            "EVENTSTORE_BATCH_SIZE must be a whole number, got 'many'",
        ),
        (
            {"EVENTSTORE_LEASE_SECONDS": "soon"},
            "EVENTSTORE_LEASE_SECONDS must be a number of seconds, got 'soon'",
        ),
        ({"EVENTSTORE_STORE_DB": "  "}, "EVENTSTORE_STORE_DB must not be empty"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(environ: dict[str, str], line: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(environ)
    assert str(raised.value) == line


def test_a_bad_flag_is_named_as_the_flag() -> None:
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_BATCH_SIZE": "5"}, {"batch_size": "0"})
    assert str(raised.value) == "--batch-size must be at least 1, got 0"


def test_the_cli_prints_a_bad_variable_as_one_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventstore.cli import main

    monkeypatch.setenv("EVENTSTORE_SNAPSHOT_EVERY", "0")
    assert main(["verify", "--uri", "memory://"]) == 1
    err = capsys.readouterr().err
    assert err == "eventstore: error: EVENTSTORE_SNAPSHOT_EVERY must be at least 1, got 0\n"


def test_verifiable_log_settings_parse_and_default() -> None:
    from eventstore.notes import COSIGNATURE, Signer
    from eventstore.settings import Witness, load

    wkey = Signer.generate("w.example", kind=COSIGNATURE).verifier_key()
    s = load(
        {
            "EVENTSTORE_SIGNING_KEY": "/k/log.key",
            "EVENTSTORE_CHECKPOINT_INTERVAL": "0.5",
            "EVENTSTORE_PUBLISH_CHECKPOINTS": "dir:/srv/cp, https://example.org/cp",
            "EVENTSTORE_WITNESSES": f"https://w.example/={wkey}",
        }
    )
    assert s.origin == "eventstore/eventstore"
    assert s.signer_state_path == "/k/log.key.state"
    assert s.checkpoint_interval == 0.5
    assert s.publish_checkpoints == ("dir:/srv/cp", "https://example.org/cp")
    assert s.witnesses == (Witness("https://w.example/", wkey),)
    assert Settings(log_origin="o", signer_state="/s").origin == "o"
    assert Settings().signer_state_path is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EVENTSTORE_CHECKPOINT_INTERVAL": "0"}, "CHECKPOINT_INTERVAL must be more than 0"),
        ({"EVENTSTORE_PUBLISH_CHECKPOINTS": "ftp://x"}, "PUBLISH_CHECKPOINTS takes dir:PATH"),
        ({"EVENTSTORE_PUBLISH_CHECKPOINTS": "dir:"}, "PUBLISH_CHECKPOINTS takes dir:PATH"),
        ({"EVENTSTORE_WITNESSES": "https://w=not-a-key"}, "WITNESSES has a malformed verifier"),
        ({"EVENTSTORE_WITNESSES": "w=a+b+c"}, "WITNESSES takes URL=VERIFIER_KEY"),
    ],
)
def test_bad_verifiable_log_settings_are_refused(environ: dict[str, str], message: str) -> None:
    from eventstore.settings import load

    with pytest.raises(SettingsError, match=message):
        load(environ)


def test_state_cache_reaches_every_projection_runner_and_sizes_the_rebuild() -> None:
    from eventstore.cli.bootstrap import open_service
    from projections.orders import ORDER_SUMMARY
    from projections.runner import REBUILD_STATES, ProjectionRunner, StateCache

    settings = load({"EVENTSTORE_URI": "memory://", "EVENTSTORE_STATE_CACHE": "25"})
    assert settings.state_cache == 25 and Settings().state_cache == 20_000

    async def runner_of() -> ProjectionRunner:
        async with open_service(settings) as service:
            return service.runner(ORDER_SUMMARY)

    runner = asyncio.run(runner_of())
    assert runner.state_cache == 25 and isinstance(runner.cache, StateCache)
    assert runner.cache._size == 25
    assert runner.rebuild_states == REBUILD_STATES
    big = ProjectionRunner(runner.store, ORDER_SUMMARY, clock=runner.clock, state_cache=600_000)
    assert big.rebuild_states == 600_000  # a rebuild never keeps fewer than following
    assert isinstance(big.cache, StateCache) and big.cache._size == 600_000


# -- seconds and milliseconds: bounded, and written in ASCII digits --------------------------------


@pytest.mark.parametrize("name", ["LEASE_SECONDS", "CHECKPOINT_INTERVAL", "UNHEALTHY_AFTER"])
@pytest.mark.parametrize(
    "value",
    [
        "86400.5",
        "86401",
        "1000000000000",  # `now + timedelta(seconds=...)` overflowed
        "99999999999999999999999",
        "-1",
        "0.000",
    ],
)
def test_a_seconds_setting_is_more_than_0_and_at_most_a_day(name: str, value: str) -> None:
    assert getattr(load({f"EVENTSTORE_{name}": "86400"}), name.lower()) == 86_400
    with pytest.raises(SettingsError) as raised:
        load({f"EVENTSTORE_{name}": value})
    # the value as it was written (not `86401.0`, `1e+23`, `-1.0`)
    assert str(raised.value) == (
        f"EVENTSTORE_{name} must be more than 0 and at most 86400 (a day), got {value}"
    )


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("lease_seconds", "86401", "must be more than 0 and at most 86400 (a day), got 86401"),
        ("checkpoint_interval", "0.00", "must be more than 0 and at most 86400 (a day), got 0.00"),
        ("unhealthy_after", " 90000 ", "must be more than 0 and at most 86400 (a day), got 90000"),
        ("snapshot_every", "00", "must be at least 1, got 00"),
        ("state_cache", "-0", "must be at least 1, got -0"),
        ("batch_size", "-007", "must be at least 1, got -007"),
        ("server_timeout_ms", "03600001", "must be at most 3600000 (an hour), got 03600001"),
    ],
)
def test_a_number_out_of_range_is_quoted_as_it_was_written_by_variable_or_flag(
    name: str, value: str, problem: str
) -> None:
    variable, flag = f"EVENTSTORE_{name.upper()}", "--" + name.replace("_", "-")
    with pytest.raises(SettingsError) as raised:
        load({variable: value})
    assert (str(raised.value), raised.value.problem) == (f"{variable} {problem}", problem)
    with pytest.raises(SettingsError) as raised:
        load({}, {name: value})
    assert str(raised.value) == f"{flag} {problem}"


def test_server_timeout_ms_is_at_most_an_hour() -> None:
    assert load({"EVENTSTORE_SERVER_TIMEOUT_MS": "3600000"}).server_timeout_ms == 3_600_000
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_SERVER_TIMEOUT_MS": "1000000000"})  # PyMongo's own limit, a billion
    assert str(raised.value) == (
        "EVENTSTORE_SERVER_TIMEOUT_MS must be at most 3600000 (an hour), got 1000000000"
    )


@pytest.mark.parametrize(
    "value",
    ["+5", "1_000", "\u0663", "\uff11", "1e3", "inf", "nan", "0x10", "1,5", "5 s", ".5", "5."],
)
def test_seconds_are_written_in_ascii_digits_with_an_optional_fraction(value: str) -> None:
    # float() reads every one of these; a setting is a number only in ASCII digits
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_LEASE_SECONDS": value})
    assert str(raised.value) == (
        f"EVENTSTORE_LEASE_SECONDS must be a number of seconds, got {value!r}"
    )


def test_seconds_flags_are_read_as_the_variables_are() -> None:
    with pytest.raises(SettingsError) as raised:
        load({}, {"lease_seconds": "\u0663"})
    assert str(raised.value) == "--lease-seconds must be a number of seconds, got '\u0663'"
    with pytest.raises(SettingsError) as raised:
        load({}, {"checkpoint_interval": "1_0"})
    assert str(raised.value) == "--checkpoint-interval must be a number of seconds, got '1_0'"
    s = load({"EVENTSTORE_LEASE_SECONDS": " 2.5 ", "EVENTSTORE_UNHEALTHY_AFTER": "0.5"})
    assert (s.lease_seconds, s.unhealthy_after) == (2.5, 0.5)
    assert load({}, {"checkpoint_interval": "10"}).checkpoint_interval == 10.0


def test_the_cli_refuses_a_lease_too_long_for_a_date_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventstore.cli import main

    monkeypatch.setenv("EVENTSTORE_LEASE_SECONDS", "1000000000000")
    assert main(["verify", "--uri", "memory://"]) == 1
    assert capsys.readouterr().err == (
        "eventstore: error: EVENTSTORE_LEASE_SECONDS must be more than 0 and at most 86400"
        " (a day), got 1000000000000\n"
    )
    assert main(["verify", "--uri", "memory://", "--lease-seconds", "86401"]) == 1
    assert capsys.readouterr().err == (
        "eventstore: error: --lease-seconds must be more than 0 and at most 86400"
        " (a day), got 86401\n"
    )


# -- a value of only spaces is refused; an empty one is not given ----------------------------------


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_a_value_of_only_spaces_is_refused_for_every_setting(name: str) -> None:
    variable = "EVENTSTORE_" + name.upper()
    with pytest.raises(SettingsError) as raised:
        load({variable: " \t "})
    assert str(raised.value) == f"{variable} must not be empty"
    assert raised.value.setting == name


@pytest.mark.parametrize(
    "name",
    ["redact", "read_keys", "publish_checkpoints", "witnesses", "cors_origins", "projections"],
)
def test_a_list_of_only_commas_is_refused(name: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load({}, {name: " , ,"})
    assert str(raised.value) == "--" + name.replace("_", "-") + " must not be empty"


def test_an_empty_value_is_the_setting_not_given() -> None:
    s = load({"EVENTSTORE_SIGNING_KEY": "", "EVENTSTORE_READ_KEYS": "", "EVENTSTORE_REDACT": ""})
    assert (s.signing_key, s.read_keys, s.redact) == (None, (), ())
    assert load({"EVENTSTORE_SIGNING_KEY": " /k/log.key "}).signing_key == "/k/log.key"


def test_a_blank_signing_key_flag_is_an_error_not_unsigned_checkpoints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from eventstore.cli import main

    assert main(["verify", "--uri", "memory://", "--signing-key", "  "]) == 1
    assert capsys.readouterr().err == "eventstore: error: --signing-key must not be empty\n"


def test_a_read_key_never_shows_in_its_error() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings(read_keys=("s3cret-read", ""))
    assert str(raised.value) == "READ_KEYS must be a list of non-empty keys"


# -- files --------------------------------------------------------------------------------------


def test_an_order_fields_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b" " * 9000 + b'{"total": "Betr\xe4g"}')  # past the first 8 KiB read
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_ORDER_FIELDS": f"@{path}"})
    assert str(raised.value) == (
        f"EVENTSTORE_ORDER_FIELDS cannot read {str(path)!r}: not UTF-8 (at byte 9015)"
    )


# -- URLs and origins ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://a.example:99999", False),
        ("https://a.example:0", False),
        ("https://a.example:65536", False),
        ("https://a.example:65535", True),
        ("http://[::1]:1", True),
    ],
)
def test_a_cors_origins_port_is_1_to_65535(origin: str, ok: bool) -> None:
    if ok:
        assert load({"EVENTSTORE_CORS_ORIGINS": origin}).cors_origins == (origin,)
        return
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_CORS_ORIGINS": f"https://b.example,{origin}"})
    assert str(raised.value) == (
        f"EVENTSTORE_CORS_ORIGINS has an origin whose port is not a number from 1 to 65535:"
        f" {origin!r}"
    )


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("http://", "the URL names no host"),
        ("https://:8443/cp", "the URL names no host"),
        ("https://cp.example:99999/", "the port is not a number from 1 to 65535"),
        ("https://cp.example:0/", "the port is not a number from 1 to 65535"),
    ],
)
def test_a_publish_target_url_names_a_host_and_a_port(target: str, problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_PUBLISH_CHECKPOINTS": f"dir:/srv/cp,{target}"})
    assert str(raised.value) == (
        f"EVENTSTORE_PUBLISH_CHECKPOINTS has a target that is not a valid URL ({problem}):"
        f" {target!r}"
    )


def _witness_key(name: str) -> str:
    from eventstore.notes import COSIGNATURE, Signer

    return Signer.generate(name, kind=COSIGNATURE).verifier_key()


def test_a_witness_listed_twice_is_refused() -> None:
    key, other = _witness_key("w.example"), _witness_key("v.example")
    for second in (f"https://w.example/={other}", f"https://v.example/={key}"):
        with pytest.raises(SettingsError) as raised:
            load({"EVENTSTORE_WITNESSES": f"https://w.example/={key}, {second}"})
        assert str(raised.value) == (
            "EVENTSTORE_WITNESSES lists one witness twice (each URL and key at most once):"
            f" {second!r}"
        )
    two = load({"EVENTSTORE_WITNESSES": f"https://w.example/={key},https://v.example/={other}"})
    assert len(two.witnesses) == 2


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("=x", "takes URL=VERIFIER_KEY with an http(s) URL, got '=x'"),
        ("w.example=a+b+c", "takes URL=VERIFIER_KEY with an http(s) URL, got 'w.example=a+b+c'"),
        ("ftp://w.example", "takes URL=VERIFIER_KEY with an http(s) URL, got 'ftp://w.example'"),
        ("https://=k", "has a URL that is not valid (the URL names no host): 'https://=k'"),
    ],
)
def test_a_bad_witness_is_shown_as_it_was_written(written: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_WITNESSES": written})
    assert str(raised.value) == f"EVENTSTORE_WITNESSES {message}"
