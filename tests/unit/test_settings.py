"""Settings: EVENTSTORE_* variables, CLI overrides, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from eventstore.settings import _CHECKS, Redaction, Settings, SettingsError, load


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
        ({"lease_seconds": 0}, "LEASE_SECONDS must be more than 0, got 0"),
        ({"lease_seconds": float("inf")}, "LEASE_SECONDS must be more than 0, got inf"),
        ({"lease_seconds": float("nan")}, "LEASE_SECONDS must be more than 0, got nan"),
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
        ({"read_keys": ("k1", " ")}, "READ_KEYS must be a list of non-empty names"),
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
