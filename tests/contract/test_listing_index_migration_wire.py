"""m0013 on the wire: the heads' index is created and the writer role may keep the index."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from eventstore.migrate import Skip
from migrations import m0013_create_listing_index as m0013
from tests.contract.test_migrations_wire import context
from tests.contract.wire import Wire

Client = AsyncMongoClient[dict[str, Any]]


async def test_the_index_is_created_and_the_writer_may_read_and_write_it(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0013.up(client["eventstore"], context(client)))
    create = await wire.receives("createIndexes")
    create.replies()
    grant = await wire.receives("grantPrivilegesToRole")
    grant.replies()
    await wire.result(running)

    assert create.doc["createIndexes"] == "entity_heads"
    assert create.doc["indexes"] == [{"key": {"stream": 1, "seq": -1}, "name": "stream_1_seq_-1"}]
    assert grant.doc["grantPrivilegesToRole"] == "eventstoreWriter"
    assert grant.doc["privileges"] == [
        {
            "resource": {"db": "eventstore", "collection": name},
            "actions": ["find", "insert", "update", "remove"],
        }
        for name in ("entity_heads", "stream_stats")
    ]


async def test_a_deployment_without_the_writer_role_needs_no_grant(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0013.up(client["eventstore"], context(client)))
    (await wire.receives("createIndexes")).replies()
    (await wire.receives("grantPrivilegesToRole")).command_err(
        code=31, errmsg="Could not find role: eventstoreWriter@eventstore"
    )
    await wire.result(running)


async def test_a_user_who_may_not_manage_roles_is_told_what_to_run(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0013.up(client["eventstore"], context(client)))
    (await wire.receives("createIndexes")).replies()
    (await wire.receives("grantPrivilegesToRole")).command_err(code=13, errmsg="not authorized")
    with pytest.raises(Skip, match="grant eventstoreWriter the listings' index"):
        await wire.result(running)
