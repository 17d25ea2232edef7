"""m0011 on the wire: the Merkle collections are created and the writer role may maintain them."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import Int64
from pymongo import AsyncMongoClient

from migrations import m0011_create_merkle_collections as m0011
from tests.contract.test_migrations_wire import context
from tests.contract.wire import Wire, first_batch

Client = AsyncMongoClient[dict[str, Any]]


def listing(names: list[str]) -> dict[str, Any]:
    docs = [{"name": n, "type": "collection"} for n in names]
    return first_batch(
        docs, post_batch=None, ns="eventstore.$cmd.listCollections", cursor_id=Int64(0)
    )


async def test_collections_are_created_and_the_writer_may_find_insert_update_not_remove(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0011.up(client["eventstore"], context(client)))
    (await wire.receives("listCollections")).replies(listing(["events", "merkle_checkpoints"]))
    # PyMongo's create_collection asks whether it exists first.
    (await wire.receives("listCollections")).replies(listing([]))
    create = await wire.receives("create")
    create.replies()
    grant = await wire.receives("grantPrivilegesToRole")
    grant.replies()
    await wire.result(running)

    assert create.doc["create"] == "merkle_nodes"
    assert grant.doc["grantPrivilegesToRole"] == "eventstoreWriter"
    assert grant.doc["privileges"] == [
        {
            "resource": {"db": "eventstore", "collection": "merkle_nodes"},
            "actions": ["find", "insert", "update"],
        },
        {
            "resource": {"db": "eventstore", "collection": "merkle_checkpoints"},
            "actions": ["find", "insert", "update"],
        },
    ]


async def test_a_deployment_without_the_writer_role_needs_no_grant(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0011.up(client["eventstore"], context(client)))
    (await wire.receives("listCollections")).replies(listing(list(m0011.COLLECTIONS)))
    (await wire.receives("grantPrivilegesToRole")).command_err(
        code=31, errmsg="Could not find role: eventstoreWriter@eventstore"
    )
    await wire.result(running)
