"""m0014 on the wire: `event_payloads` gets its index, the writer may store parts, the eraser remove them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from eventstore.migrate import Skip
from migrations import m0014_create_event_payloads as m0014
from tests.contract.test_migrations_wire import context
from tests.contract.wire import Wire

Client = AsyncMongoClient[dict[str, Any]]


def on_payloads(actions: list[str]) -> list[dict[str, Any]]:
    return [{"resource": {"db": "eventstore", "collection": "event_payloads"}, "actions": actions}]


async def test_the_index_is_created_and_each_role_gets_what_it_does(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0014.up(client["eventstore"], context(client)))
    create = await wire.receives("createIndexes")
    create.replies()
    writer = await wire.receives("grantPrivilegesToRole")
    writer.replies()
    eraser = await wire.receives("grantPrivilegesToRole")
    eraser.replies()
    await wire.result(running)

    assert create.doc["createIndexes"] == "event_payloads"
    assert create.doc["indexes"] == [
        {"key": {"stream": 1, "entity_id": 1, "seq": 1}, "name": "stream_1_entity_id_1_seq_1"}
    ]
    assert writer.doc["grantPrivilegesToRole"] == "eventstoreWriter"
    assert writer.doc["privileges"] == on_payloads(["find", "insert"])
    assert eraser.doc["grantPrivilegesToRole"] == "eventstoreEraser"
    assert eraser.doc["privileges"] == on_payloads(["find", "remove"])


async def test_a_deployment_without_the_roles_needs_no_grant(client: Client, wire: Wire) -> None:
    running = asyncio.create_task(m0014.up(client["eventstore"], context(client)))
    (await wire.receives("createIndexes")).replies()
    for role in ("eventstoreWriter", "eventstoreEraser"):
        (await wire.receives("grantPrivilegesToRole")).command_err(
            code=31, errmsg=f"Could not find role: {role}@eventstore"
        )
    await wire.result(running)


async def test_a_user_who_may_not_manage_roles_is_told_what_to_run(
    client: Client, wire: Wire
) -> None:
    running = asyncio.create_task(m0014.up(client["eventstore"], context(client)))
    (await wire.receives("createIndexes")).replies()
    (await wire.receives("grantPrivilegesToRole")).command_err(code=13, errmsg="not authorized")
    with pytest.raises(Skip, match="grant eventstoreWriter large events' payloads"):
        await wire.result(running)
