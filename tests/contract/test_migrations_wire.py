"""Migrations on the wire: the commands each step sends, and the runner on a replica set."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

import pytest
from bson import Int64
from mockupdb import MockupDB, Request
from pymongo import AsyncMongoClient

from eventstore.migrate import MigrationContext, MigrationError, load_steps, migrate
from eventstore.model import EVENT_TYPES
from eventstore.settings import Settings
from migrations import (
    m0001_create_events_collection,
    m0004_enable_pre_images,
    m0005_create_writer_role,
    m0007_allow_rejected_events,
)
from tests.contract.wire import HELLO, Wire, first_batch

Client = AsyncMongoClient[dict[str, Any]]

ALL_STEPS = [
    "m0001_create_events_collection",
    "m0002_create_event_indexes",
    "m0003_create_state_collections",
    "m0004_enable_pre_images",
    "m0005_create_writer_role",
]
# Runs whose every step is asserted take these; later steps have their own tests.
OWN_STEPS = [step for step in load_steps() if step.name in ALL_STEPS]
EVENT_FIELDS = [
    "_id",
    "seq",
    "stream",
    "entity_key",
    "version",
    "type",
    "occurred_at",
    "recorded_at",
    "hash",
    "prev_hash",
    "log_hash",
]


def context(client: Client, **settings: Any) -> MigrationContext:
    return MigrationContext(
        settings=Settings(uri="mongodb://localhost", **settings),
        source=client["shop"],
        real_server=True,
    )


async def test_events_collection_is_created_with_its_validator(client: Client, wire: Wire) -> None:
    running = asyncio.create_task(
        m0001_create_events_collection.up(client["eventstore"], context(client))
    )
    create = await wire.receives("create")
    create.replies()
    await wire.result(running)

    assert create.namespace == "eventstore"
    command = create.doc
    assert command["create"] == "events"
    assert command["validationLevel"] == "strict"
    assert command["validationAction"] == "error"
    schema = command["validator"]["$jsonSchema"]
    assert sorted(schema["required"]) == sorted(EVENT_FIELDS)
    properties = schema["properties"]
    # The types of its time: later ones come with their own steps (m0007: rejected,
    # m0012: erased).
    assert properties["type"] == {"enum": list(m0001_create_events_collection.TYPES)}
    assert set(EVENT_TYPES) - set(m0001_create_events_collection.TYPES) == {"rejected", "erased"}
    assert properties["seq"]["bsonType"] == ["long", "int"]
    assert properties["version"]["bsonType"] == ["long", "int"]
    assert properties["_id"] == {"bsonType": "string"}
    assert properties["occurred_at"] == properties["recorded_at"] == {"bsonType": "date"}
    for name in ("stream", "entity_key", "hash", "prev_hash", "log_hash"):
        assert properties[name] == {"bsonType": "string"}


async def test_an_existing_events_collection_gets_the_validator_by_collmod(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(
        m0001_create_events_collection.up(client["eventstore"], context(client))
    )
    create = await wire.receives("create")
    create.command_err(code=48, errmsg="Collection eventstore.events already exists.")
    collmod = await wire.receives("collMod")
    collmod.replies()
    await wire.result(running)

    expected = dict(create.doc)
    del expected["create"]
    assert collmod.doc["collMod"] == "events"
    for key in ("validator", "validationLevel", "validationAction"):
        assert collmod.doc[key] == expected[key]


async def test_pre_images_are_enabled_on_each_captured_collection(
    client: Client, wire: Wire
) -> None:
    ctx = context(client, pre_images="required", collections=("orders", "customers"))
    running = asyncio.create_task(m0004_enable_pre_images.up(client["eventstore"], ctx))
    orders = await wire.receives("collMod")
    orders.replies()
    customers = await wire.receives("collMod")
    customers.command_err(code=26, errmsg="ns does not exist: shop.customers")
    created = await wire.receives("create")
    created.replies()
    await wire.result(running)

    enabled = {"enabled": True}
    assert orders.namespace == customers.namespace == created.namespace == "shop"
    assert orders.doc["collMod"] == "orders"
    assert orders.doc["changeStreamPreAndPostImages"] == enabled
    assert customers.doc["collMod"] == "customers"
    assert created.doc["create"] == "customers"
    assert created.doc["changeStreamPreAndPostImages"] == enabled


def privileges_by_collection(command: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for privilege in command["privileges"]:
        assert privilege["resource"]["db"] == "eventstore"
        found[privilege["resource"]["collection"]] = privilege["actions"]
    return found


async def test_the_writer_role_may_append_events_but_never_change_them(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(
        m0005_create_writer_role.up(client["eventstore"], context(client))
    )
    info = await wire.receives("rolesInfo")
    info.replies({"roles": []})
    create = await wire.receives("createRole")
    create.replies()
    await wire.result(running)

    assert info.doc["rolesInfo"] == "eventstoreWriter"
    assert create.namespace == "eventstore"
    assert create.doc["createRole"] == "eventstoreWriter"
    assert create.doc["roles"] == []
    read_write = ["find", "insert", "update", "remove"]
    assert privileges_by_collection(create.doc) == {
        "events": ["find", "insert"],
        "checkpoints": read_write,
        "snapshots": read_write,
        "leases": read_write,
        "jobs": read_write,
    }


async def test_an_existing_writer_role_is_updated(client: Client, wire: Wire) -> None:
    running = asyncio.create_task(
        m0005_create_writer_role.up(client["eventstore"], context(client))
    )
    (await wire.receives("rolesInfo")).replies(
        {"roles": [{"role": "eventstoreWriter", "db": "eventstore"}]}
    )
    update = await wire.receives("updateRole")
    update.replies()
    await wire.result(running)

    assert update.doc["updateRole"] == "eventstoreWriter"
    assert privileges_by_collection(update.doc)["events"] == ["find", "insert"]


class ReplicaSet:
    """A mockupdb responder that plays a replica set for whole migration runs.

    It keeps the `migrations` records it is sent, logs every command outside
    `admin`, and answers the commands named in `failures` with that error.
    """

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self.failures: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    # What listIndexes answers: a store m0002 indexed before m0006 existed.
    event_indexes = ("_id_", "seq_1", "changed_fields_1", "actor_1", "type_1")

    def commands(self) -> list[str]:
        with self._lock:
            return [f"{db}.{name}" for db, name, _ in self.log]

    def sent(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [doc for _, logged, doc in self.log if logged == name]

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    def handle(self, request: Request) -> bool:
        if request.namespace == "admin":
            return False  # handshakes, monitoring, closing: the fixture's housekeeping
        name: str = request.command_name
        doc: dict[str, Any] = dict(request.doc)
        db: str = request.namespace
        with self._lock:
            self.log.append((db, name, doc))
        if name in self.failures:
            code, errmsg = self.failures[name]
            return bool(request.command_err(code=code, errmsg=errmsg))
        if name == "hello":
            return bool(request.replies(HELLO))
        if name == "find":
            assert doc["find"] == "migrations"
            with self._lock:
                stored = list(self.records.values())
            reply = first_batch(stored, post_batch=None, ns=f"{db}.migrations", cursor_id=Int64(0))
            return bool(request.replies(reply))
        if name == "update":
            with self._lock:
                for update in doc["updates"]:
                    key = update["q"]["_id"]
                    self.records[key] = {"_id": key, **update["u"]["$set"]}
            return bool(request.replies({"n": 1}))
        if name == "listCollections":
            empty = first_batch(
                [], post_batch=None, ns=f"{db}.$cmd.listCollections", cursor_id=Int64(0)
            )
            return bool(request.replies(empty))
        if name == "rolesInfo":
            return bool(request.replies({"roles": []}))
        if name == "listIndexes":
            found = first_batch(
                [{"v": 2, "key": {n.rsplit("_", 1)[0]: 1}, "name": n} for n in self.event_indexes],
                post_batch=None,
                ns=f"{db}.{request.doc['listIndexes']}",
                cursor_id=Int64(0),
            )
            return bool(request.replies(found))
        return bool(request.replies())  # create, createIndexes, collMod, createRole, dropIndexes


@pytest.fixture
def replica_set(mockup: MockupDB) -> ReplicaSet:
    responder = ReplicaSet()
    mockup.autoresponds(responder.handle)
    return responder


async def test_a_full_run_applies_every_step_once(client: Client, replica_set: ReplicaSet) -> None:
    settings = Settings(uri="mongodb://localhost", pre_images="when-available")
    first = await migrate(client, settings, steps=OWN_STEPS)

    assert first.real_server is True
    assert first.applied == ALL_STEPS
    assert sorted(replica_set.records) == ALL_STEPS
    assert all(isinstance(r["applied_at"], datetime) for r in replica_set.records.values())
    assert replica_set.records["m0004_enable_pre_images"]["fingerprint"] == "shop:orders"
    ddl = [c for c in replica_set.commands() if not c.endswith((".update", ".listCollections"))]
    assert ddl == [
        "eventstore.hello",
        "eventstore.find",
        "eventstore.create",  # events, with its validator
        "eventstore.createIndexes",
        "eventstore.create",  # checkpoints
        "eventstore.create",  # snapshots
        "eventstore.create",  # leases
        "eventstore.create",  # jobs
        "shop.collMod",
        "eventstore.rolesInfo",
        "eventstore.createRole",
    ]
    indexes = replica_set.sent("createIndexes")[0]["indexes"]
    assert [(i["name"], i.get("unique", False)) for i in indexes] == [
        ("seq_1", True),
        ("stream_1_entity_id_1_version_1", True),
        ("stream_1_occurred_at_1", False),
        ("stream_1_seq_1", False),
        ("occurred_at_1", False),
        ("changed_fields_1_seq_1", False),
        ("actor_1_seq_1", False),
        ("type_1_seq_1", False),
        ("stream_1_entity_key_1", False),
    ]

    replica_set.clear()
    second = await migrate(client, settings, steps=OWN_STEPS)

    assert second.applied == []
    assert second.already_applied == ALL_STEPS
    assert replica_set.commands() == ["eventstore.hello", "eventstore.find"]


async def test_a_new_captured_collection_reruns_the_pre_image_step(
    client: Client, replica_set: ReplicaSet
) -> None:
    await migrate(client, Settings(uri="mongodb://localhost", pre_images="when-available"))
    replica_set.clear()

    wider = Settings(
        uri="mongodb://localhost", pre_images="when-available", collections=("orders", "customers")
    )
    report = await migrate(client, wider)

    assert report.applied == ["m0004_enable_pre_images"]
    assert str(report).splitlines()[3] == "applied m0004_enable_pre_images (settings changed)"
    assert [doc["collMod"] for doc in replica_set.sent("collMod")] == ["orders", "customers"]


async def test_a_failing_step_on_a_real_server_stops_the_run(
    client: Client, replica_set: ReplicaSet
) -> None:
    replica_set.failures["createIndexes"] = (67, "cannot create index")

    with pytest.raises(MigrationError) as raised:
        await migrate(client, Settings(uri="mongodb://localhost"))

    assert str(raised.value) == ("m0002_create_event_indexes failed: cannot create index (code 67)")
    assert raised.value.report.applied == ["m0001_create_events_collection"]
    assert sorted(replica_set.records) == ["m0001_create_events_collection"]
    assert replica_set.commands()[-1] == "eventstore.createIndexes"  # nothing after it


async def test_a_failing_first_step_reports_nothing_applied(client: Client, wire: Wire) -> None:
    running = asyncio.create_task(migrate(client, Settings(uri="mongodb://localhost")))
    (await wire.receives("hello")).replies(HELLO)
    (await wire.receives("find")).replies(
        first_batch([], post_batch=None, ns="eventstore.migrations", cursor_id=Int64(0))
    )
    (await wire.receives("create")).command_err(
        code=13, errmsg="not authorized on eventstore to execute command"
    )
    with pytest.raises(
        MigrationError,
        match=r"^m0001_create_events_collection failed: not authorized .* \(code 13\)$",
    ) as raised:
        await wire.result(running)
    assert raised.value.report.steps == []


async def test_the_writer_role_is_skipped_when_the_user_may_not_create_roles(
    client: Client, replica_set: ReplicaSet
) -> None:
    replica_set.failures["rolesInfo"] = (13, "not authorized on eventstore to execute command")

    report = await migrate(client, Settings(uri="mongodb://localhost"), steps=OWN_STEPS)

    assert report.applied == ALL_STEPS[:3]
    assert report.skipped == ["m0004_enable_pre_images", "m0005_create_writer_role"]
    lines = str(report).splitlines()
    assert lines[3] == "skipped m0004_enable_pre_images: PRE_IMAGES is off"
    assert lines[4].startswith(
        "skipped m0005_create_writer_role: the connected user may not manage roles (code 13)"
    )
    assert lines[5] == "3 applied, 2 skipped, 0 already applied"
    assert "m0005_create_writer_role" not in replica_set.records


async def test_a_default_run_takes_every_step_of_the_package_in_order(
    client: Client, replica_set: ReplicaSet
) -> None:
    report = await migrate(client, Settings(uri="mongodb://localhost"))

    names = [step.name for step in report.steps]
    assert names == sorted(names)
    assert names == [step.name for step in load_steps()]
    assert names[: len(ALL_STEPS)] == ALL_STEPS


async def test_the_query_index_step_creates_every_index_and_drops_the_superseded_ones(
    client: Client, replica_set: ReplicaSet
) -> None:
    step = [s for s in load_steps() if s.name == "m0006_create_query_and_state_indexes"]
    report = await migrate(client, Settings(uri="mongodb://localhost"), steps=step)

    assert report.applied == ["m0006_create_query_and_state_indexes"]
    created = {
        c["createIndexes"]: [i["name"] for i in c["indexes"]]
        for c in replica_set.sent("createIndexes")
    }
    assert "changed_fields_1_seq_1" in created["events"] and "type_1_seq_1" in created["events"]
    assert created["snapshots"] == ["stream_1_entity_id_1_version_1"]
    assert created["jobs"] == ["active_1"]
    dropped = [c["index"] for c in replica_set.sent("dropIndexes")]
    assert dropped == ["changed_fields_1", "actor_1", "type_1"]


async def test_the_workers_step_creates_the_collection_once(
    client: Client, replica_set: ReplicaSet
) -> None:
    step = [s for s in load_steps() if s.name == "m0008_create_workers_collection"]
    report = await migrate(client, Settings(uri="mongodb://localhost"), steps=step)

    assert report.applied == ["m0008_create_workers_collection"]
    assert [c["create"] for c in replica_set.sent("create")] == ["workers"]


async def test_rejected_events_are_allowed_by_collmod_of_the_whole_validator(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(
        m0007_allow_rejected_events.up(client["eventstore"], context(client))
    )
    collmod = await wire.receives("collMod")
    collmod.replies()
    await wire.result(running)

    assert collmod.namespace == "eventstore" and collmod.doc["collMod"] == "events"
    assert collmod.doc["validationLevel"] == "strict"
    assert collmod.doc["validationAction"] == "error"
    schema = collmod.doc["validator"]["$jsonSchema"]
    # collMod replaces the validator whole: everything of m0001's is sent again.
    before = m0001_create_events_collection.VALIDATOR["$jsonSchema"]
    assert sorted(schema["required"]) == sorted(EVENT_FIELDS) == sorted(before["required"])
    assert {k: v for k, v in schema["properties"].items() if k != "type"} == {
        k: v for k, v in before["properties"].items() if k != "type"
    }
    # Every type the model knew then, `rejected` included (m0012 adds `erased`).
    assert schema["properties"]["type"] == {"enum": sorted(EVENT_TYPES - {"erased"})}
    assert "rejected" in schema["properties"]["type"]["enum"]


async def test_rejected_events_step_creates_events_when_it_is_missing(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(
        m0007_allow_rejected_events.up(client["eventstore"], context(client))
    )
    collmod = await wire.receives("collMod")
    collmod.command_err(code=26, errmsg="ns does not exist: eventstore.events")
    create = await wire.receives("create")
    create.replies()
    await wire.result(running)

    assert create.doc["create"] == "events"
    assert create.doc["validator"] == collmod.doc["validator"]
    assert "rejected" in create.doc["validator"]["$jsonSchema"]["properties"]["type"]["enum"]


async def test_a_store_migrated_before_m0007_gets_only_the_rejected_type_step(
    client: Client, replica_set: ReplicaSet
) -> None:
    settings = Settings(uri="mongodb://localhost")
    earlier = [s for s in load_steps() if s.name < "m0007"]
    await migrate(client, settings, steps=earlier)
    replica_set.clear()

    steps = [s for s in load_steps() if s.name < "m0008"]
    report = await migrate(client, settings, steps=steps)

    assert report.applied == ["m0007_allow_rejected_events"]
    assert report.skipped == ["m0004_enable_pre_images"]  # PRE_IMAGES is off: never recorded
    [collmod] = replica_set.sent("collMod")
    assert collmod["collMod"] == "events"
    assert "rejected" in collmod["validator"]["$jsonSchema"]["properties"]["type"]["enum"]
    assert "m0007_allow_rejected_events" in replica_set.records
