"""m0012 on the wire: `erased` in the validator, the requests collection, the eraser role."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import Int64
from pymongo import AsyncMongoClient

from eventstore.model import EVENT_TYPES
from migrations import m0005_create_writer_role as m0005
from migrations import m0007_allow_rejected_events as m0007
from migrations import m0012_allow_erasure as m0012
from tests.contract.test_migrations_wire import context
from tests.contract.wire import Wire, first_batch

Client = AsyncMongoClient[dict[str, Any]]


def listing(names: list[str]) -> dict[str, Any]:
    docs = [{"name": n, "type": "collection"} for n in names]
    return first_batch(
        docs, post_batch=None, ns="eventstore.$cmd.listCollections", cursor_id=Int64(0)
    )


async def test_validator_collection_eraser_role_and_writer_grant(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0012.up(client["eventstore"], context(client)))
    collmod = await wire.receives("collMod")
    collmod.replies()
    (await wire.receives("listCollections")).replies(listing(["events"]))
    (await wire.receives("listCollections")).replies(listing([]))
    create = await wire.receives("create")
    create.replies()
    (await wire.receives("rolesInfo")).replies({"roles": []})
    role = await wire.receives("createRole")
    role.replies()
    grant = await wire.receives("grantPrivilegesToRole")
    grant.replies()
    await wire.result(running)

    # collMod replaces the validator whole: m0007's, with every type the model knows.
    schema = collmod.doc["validator"]["$jsonSchema"]
    assert schema["properties"]["type"] == {"enum": sorted(EVENT_TYPES)}
    before = m0007.OPTIONS["validator"]["$jsonSchema"]
    assert {k: v for k, v in schema["properties"].items() if k != "type"} == {
        k: v for k, v in before["properties"].items() if k != "type"
    }
    assert set(m0012.TYPES) - set(m0007.TYPES) == {"erased"}
    assert collmod.doc["validationLevel"] == "strict"
    assert create.doc["create"] == "erasure_requests"
    assert role.doc["createRole"] == "eventstoreEraser"
    assert role.doc["privileges"] == [
        {"resource": {"db": "eventstore", "collection": "events"}, "actions": ["find", "update"]},
        {
            "resource": {"db": "eventstore", "collection": "snapshots"},
            "actions": ["find", "remove"],
        },
        {
            "resource": {"db": "eventstore", "collection": "erasure_requests"},
            "actions": ["find", "insert", "update"],
        },
    ]
    assert grant.doc["grantPrivilegesToRole"] == "eventstoreWriter"
    assert grant.doc["privileges"] == [
        {
            "resource": {"db": "eventstore", "collection": "erasure_requests"},
            "actions": ["find", "insert", "update"],
        }
    ]
    # The writer role itself never gains update or remove on events.
    writer_events = [
        p for p in m0005.privileges("eventstore") if p["resource"]["collection"] == "events"
    ]
    assert writer_events == [
        {"resource": {"db": "eventstore", "collection": "events"}, "actions": ["find", "insert"]}
    ]
    assert all(p["resource"]["collection"] != "events" for p in grant.doc["privileges"])


async def test_an_existing_eraser_role_is_updated_and_missing_writer_role_is_fine(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0012.up(client["eventstore"], context(client)))
    (await wire.receives("collMod")).replies()
    (await wire.receives("listCollections")).replies(listing(["events", "erasure_requests"]))
    (await wire.receives("rolesInfo")).replies({"roles": [{"role": "eventstoreEraser"}]})
    update = await wire.receives("updateRole")
    update.replies()
    (await wire.receives("grantPrivilegesToRole")).command_err(
        code=31, errmsg="Could not find role: eventstoreWriter@eventstore"
    )
    await wire.result(running)
    assert update.doc["updateRole"] == "eventstoreEraser"
