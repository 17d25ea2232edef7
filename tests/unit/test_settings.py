"""Settings: EVENTSTORE_* variables, CLI overrides, validation."""

from __future__ import annotations

import pytest

from eventstore.settings import Redaction, SettingsError, load


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


def test_redaction_paths_and_masks() -> None:
    s = load({"EVENTSTORE_REDACT": "customer.email,shipping.street:***"})
    assert s.redact == (Redaction("customer.email"), Redaction("shipping.street", "***"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EVENTSTORE_BATCH_SIZE", "zero", "BATCH_SIZE"),
        ("EVENTSTORE_BATCH_SIZE", "0", "at least 1"),
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
