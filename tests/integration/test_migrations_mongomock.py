"""Migrations on mongomock-motor: what it cannot do is skipped with the reason, and runs are idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from mongomock_motor import AsyncMongoMockClient

from eventstore import migrate as migrate_module
from eventstore.clock import FakeClock
from eventstore.migrate import MigrationReport, load_steps, migrate, migrations_dir
from eventstore.settings import Settings

SETTINGS = Settings(uri="mongodb://localhost")
NOT_ON_MONGOMOCK = "needs a real MongoDB server (NotImplementedError: "
# The steps these tests assert on one by one; later steps have their own tests.
OWN_STEPS = [step for step in load_steps() if step.name < "m0006"]


def reasons(report: MigrationReport) -> dict[str, str]:
    return {step.name: str(step.reason) for step in report.steps if step.status == "skipped"}


async def test_migrations_skip_what_mongomock_lacks_and_apply_the_rest() -> None:
    client: Any = AsyncMongoMockClient(tz_aware=True)
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    report = await migrate(client, SETTINGS, steps=OWN_STEPS, clock=clock)

    assert report.real_server is False
    assert report.applied == ["m0002_create_event_indexes", "m0003_create_state_collections"]
    skipped = reasons(report)
    assert list(skipped) == [
        "m0001_create_events_collection",
        "m0004_enable_pre_images",
        "m0005_create_writer_role",
    ]
    assert skipped["m0001_create_events_collection"].startswith(NOT_ON_MONGOMOCK)
    assert skipped["m0004_enable_pre_images"] == "PRE_IMAGES is off"
    assert skipped["m0005_create_writer_role"].startswith(NOT_ON_MONGOMOCK)
    assert str(report).splitlines() == [
        f"skipped m0001_create_events_collection: {skipped['m0001_create_events_collection']}",
        "applied m0002_create_event_indexes",
        "applied m0003_create_state_collections",
        "skipped m0004_enable_pre_images: PRE_IMAGES is off",
        f"skipped m0005_create_writer_role: {skipped['m0005_create_writer_role']}",
        "2 applied, 3 skipped, 0 already applied",
    ]

    db = client["eventstore"]
    indexes = await db["events"].index_information()
    assert indexes["seq_1"]["unique"] is True
    assert indexes["stream_1_entity_id_1_version_1"]["unique"] is True
    assert {
        "stream_1_occurred_at_1",
        "stream_1_seq_1",
        "occurred_at_1",
        "changed_fields_1_seq_1",
        "actor_1_seq_1",
        "type_1_seq_1",
    } <= set(indexes)
    assert {"checkpoints", "snapshots", "leases", "jobs"} <= set(await db.list_collection_names())
    records = await db["migrations"].find({}, {"_id": 1, "applied_at": 1}).to_list(None)
    assert sorted(r["_id"] for r in records) == report.applied
    assert all(r["applied_at"] == clock.now() for r in records)


async def test_running_migrations_twice_applies_nothing_new() -> None:
    client: Any = AsyncMongoMockClient(tz_aware=True)
    first = await migrate(client, SETTINGS, steps=OWN_STEPS)

    second = await migrate(client, SETTINGS, steps=OWN_STEPS)

    assert second.applied == []
    assert second.already_applied == first.applied
    assert second.skipped == first.skipped
    assert await client["eventstore"]["migrations"].count_documents({}) == len(first.applied)


async def test_the_whole_package_runs_twice_without_applying_anything_new() -> None:
    client: Any = AsyncMongoMockClient(tz_aware=True)
    first = await migrate(client, SETTINGS)

    second = await migrate(client, SETTINGS)

    assert [step.name for step in first.steps] == [step.name for step in load_steps()]
    assert second.applied == []
    assert second.already_applied == first.applied
    assert await client["eventstore"]["migrations"].count_documents({}) == len(first.applied)


async def test_a_store_database_can_be_migrated_directly() -> None:
    client: Any = AsyncMongoMockClient(tz_aware=True)
    db = client["audit"]
    settings = Settings(uri="mongodb://localhost", pre_images="when-available")

    report = await migrate(db, settings, steps=OWN_STEPS)

    assert report.applied == ["m0002_create_event_indexes", "m0003_create_state_collections"]
    # The source database (SOURCE_DB) is reached through the store database's client.
    assert reasons(report)["m0004_enable_pre_images"].startswith(NOT_ON_MONGOMOCK)
    assert "jobs" in await db.list_collection_names()
    assert await client["eventstore"].list_collection_names() == []


def test_a_report_serializes_to_json_shapes() -> None:
    report = msgspec.convert(
        {
            "real_server": True,
            "steps": [
                {"name": "m0001_create_events_collection", "status": "applied"},
                {
                    "name": "m0004_enable_pre_images",
                    "status": "skipped",
                    "reason": "PRE_IMAGES is off",
                },
            ],
        },
        MigrationReport,
    )
    assert msgspec.to_builtins(report) == {
        "real_server": True,
        "steps": [
            {"name": "m0001_create_events_collection", "status": "applied", "reason": None},
            {
                "name": "m0004_enable_pre_images",
                "status": "skipped",
                "reason": "PRE_IMAGES is off",
            },
        ],
    }


async def test_the_workers_step_creates_the_collection_and_is_idempotent() -> None:
    client: Any = AsyncMongoMockClient(tz_aware=True)
    step = [s for s in load_steps() if s.name == "m0008_create_workers_collection"]

    first = await migrate(client, SETTINGS, steps=step)
    await client["eventstore"]["migrations"].delete_many({})  # as if never recorded
    again = await migrate(client, SETTINGS, steps=step)

    assert first.applied == again.applied == ["m0008_create_workers_collection"]
    assert "workers" in await client["eventstore"].list_collection_names()


async def test_the_subscriptions_step_creates_collections_and_indexes_idempotently() -> None:
    client: Any = AsyncMongoMockClient(tz_aware=True)
    step = [s for s in load_steps() if s.name == "m0009_create_subscription_collections"]

    first = await migrate(client, SETTINGS, steps=step)
    await client["eventstore"]["migrations"].delete_many({})  # as if never recorded
    again = await migrate(client, SETTINGS, steps=step)

    assert first.applied == again.applied == ["m0009_create_subscription_collections"]
    db = client["eventstore"]
    names = set(await db.list_collection_names())
    assert {
        "subscriptions",
        "subscription_settled",
        "subscription_parked",
        "admin_actions",
    } <= names
    info = await db["subscription_parked"].index_information()
    assert any(
        v.get("unique") and list(v["key"]) == [("name", 1), ("seq", 1)] for v in info.values()
    )


async def test_the_rejected_type_step_is_skipped_on_mongomock_and_tried_again_later() -> None:
    client: Any = AsyncMongoMockClient(tz_aware=True)
    step = [s for s in load_steps() if s.name == "m0007_allow_rejected_events"]

    first = await migrate(client, SETTINGS, steps=step)
    second = await migrate(client, SETTINGS, steps=step)

    # mongomock has no collMod: the validator needs a real server, said with the reason.
    for report in (first, second):
        assert report.skipped == ["m0007_allow_rejected_events"]
        assert reasons(report)["m0007_allow_rejected_events"].startswith(NOT_ON_MONGOMOCK)
    assert await client["eventstore"]["migrations"].count_documents({}) == 0
    assert "events" not in await client["eventstore"].list_collection_names()


# -- our steps, whatever `migrations` package comes first on sys.path ---------------------------

_DECOY_INIT = "# another project's migrations package\nNAMESPACE_EXISTS = 'not ours'\n"
_DECOY_STEP = """
async def up(db, ctx):
    await db["decoy"].insert_one({"ran": True})
"""
_RUN_FROM_HERE = """
import asyncio, importlib, json
from mongomock_motor import AsyncMongoMockClient
from eventstore.migrate import migrate
from eventstore.settings import Settings

async def main():
    client = AsyncMongoMockClient(tz_aware=True)
    report = await migrate(client, Settings(uri="mongodb://localhost"))
    db = client["eventstore"]
    print(json.dumps({
        "shadowing": importlib.import_module("migrations").__file__,
        "steps": [[s.name, s.status] for s in report.steps],
        "indexes": sorted(await db["events"].index_information()),
        "decoy_rows": await db["decoy"].count_documents({}),
    }))

asyncio.run(main())
"""


def test_migrate_run_beside_another_projects_migrations_applies_ours(tmp_path: Path) -> None:
    decoy = tmp_path / "migrations"
    decoy.mkdir()
    (decoy / "__init__.py").write_text(_DECOY_INIT)
    (decoy / "m0001_create_events_collection.py").write_text(_DECOY_STEP)
    (decoy / "m0099_their_own_step.py").write_text(_DECOY_STEP)

    # `python -c` puts the working directory first on sys.path, as `python -m eventstore` does.
    done = subprocess.run(
        [sys.executable, "-c", _RUN_FROM_HERE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    # The decoy is what a plain `import migrations` finds there: the bug's precondition holds.
    assert Path(result["shadowing"]).resolve() == (decoy / "__init__.py").resolve()
    ours = [step.name for step in load_steps()]
    assert [name for name, _ in result["steps"]] == ours
    assert dict(result["steps"])["m0002_create_event_indexes"] == "applied"
    assert dict(result["steps"])["m0003_create_state_collections"] == "applied"
    assert {"seq_1", "stream_1_entity_id_1_version_1"} <= set(result["indexes"])
    assert result["decoy_rows"] == 0


def test_steps_come_from_the_files_beside_the_eventstore_package() -> None:
    root = Path(migrate_module.__file__).resolve().parents[1]
    assert migrations_dir() == root / "migrations"
    names = sorted(p.stem for p in migrations_dir().glob("m[0-9][0-9][0-9][0-9]_*.py"))
    assert [step.name for step in load_steps()] == names
    assert all(step.up.__module__.startswith("_eventstore_migrations.") for step in load_steps())


def test_steps_import_their_own_package_relatively() -> None:
    """`from migrations import ...` would find another project's package first on sys.path."""
    import ast

    for path in sorted(migrations_dir().glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert (node.module or "").split(".")[0] != "migrations", path.name
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "migrations" for a in node.names), path.name
