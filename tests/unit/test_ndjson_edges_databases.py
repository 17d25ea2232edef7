"""Lines of another database than SOURCE_DB, and of collections not captured: left out, said why.

A change stream opened on one database never delivers another's changes: a line of
another database (a whole-cluster dump holds many) is no change of the captured
source, whatever its collection is called, so it is left out as the stream's `$match`
leaves it out, not recorded into the stream of its `ns.coll`, and not bad input
either (there is nothing to fix in it). Each line left out is logged at DEBUG with
why; each other database once at INFO, so a mistyped SOURCE_DB is seen.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.integration.ingest_helpers import settings
from tests.unit.test_ndjson_source import batches, change, keys, lines, write

LOGGER = "eventstore.sources.ndjson"


def token(n: int) -> dict[str, str]:
    return {"_data": f"82{n:032X}"}


def other_db_lines() -> str:
    return lines(
        change(1, db="shop"),
        change(2, db="legacy"),  # an `orders` of another database: not the captured one
        {"_id": token(3), "operationType": "dropDatabase", "ns": {"db": "legacy"}},
        {"_id": token(4), "operationType": "insert", "ns": {"db": "legacy", "coll": "orders"}},
        change(5, db="shop"),
        {**change(6, db="shop"), "ns": {"coll": "orders"}},  # no ns.db: cannot be told
        {"_id": token(7), "operationType": "dropDatabase", "ns": {"db": "shop"}},
        {"_id": token(8), "operationType": "invalidate"},
        change(9, db="admin", coll="carts"),
        change(10, db="legacy"),  # the last line, left out: the position moves past it
    )


async def test_lines_of_another_database_are_left_out_whatever_their_shape(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, other_db_lines())
    source = NdjsonChangeSource(path, collections=["orders"], source_db="shop")
    async with source.watch(None) as stream:
        batch = await stream.next_batch()
        assert batch is not None and await stream.next_batch() is None
    assert [c["_id"] for c in batch.changes] == [token(n) for n in (1, 5, 6, 7, 8)]
    assert [o.position for o in batch.origins or []] == [f"line {n}" for n in (1, 5, 6, 7, 8)]
    assert batch.resume_token == token(10)


async def test_without_a_database_named_every_databases_lines_pass(tmp_path: Path) -> None:
    path = write(tmp_path, lines(change(1, db="shop"), change(2, db="legacy")))
    async with NdjsonChangeSource(path, collections=["orders"]).watch(None) as stream:
        assert [keys(b) for b in await batches(stream)] == [[1, 2]]


async def test_each_line_left_out_is_logged_with_why_and_each_other_database_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, other_db_lines() + lines(change(11, coll="carts", db="shop")))
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    source = NdjsonChangeSource(path, collections=["orders"], source_db="shop")
    async with source.watch(None) as stream:
        await batches(stream)
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    debug = [m for level, m in said if level == logging.DEBUG]
    assert debug == [
        f"{path}: line 2: left out (filtered): of database 'legacy', not SOURCE_DB 'shop'",
        f"{path}: line 3: left out (filtered): of database 'legacy', not SOURCE_DB 'shop'",
        f"{path}: line 4: left out (filtered): of database 'legacy', not SOURCE_DB 'shop'",
        f"{path}: line 9: left out (filtered): of database 'admin', not SOURCE_DB 'shop'",
        f"{path}: line 10: left out (filtered): of database 'legacy', not SOURCE_DB 'shop'",
        f"{path}: line 11: left out (filtered): of collection 'carts', not one of COLLECTIONS",
    ]
    info = [m for level, m in said if level == logging.INFO]
    assert info == [
        f"{path}: changes of database 'legacy' are left out (filtered) from line 2 on:"
        " SOURCE_DB is 'shop'",
        f"{path}: changes of database 'admin' are left out (filtered) from line 9 on:"
        " SOURCE_DB is 'shop'",
    ]


async def test_a_collection_not_captured_is_logged_as_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    future: dict[str, Any] = {"_id": token(3), "operationType": "futureThing"}
    path = write(tmp_path, lines(change(1), change(2, coll="carts"), future))
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with NdjsonChangeSource(path, collections=["orders"]).watch(None) as stream:
        assert [keys(b) for b in await batches(stream)] == [[1]]
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        f"{path}: line 2: left out (filtered): of collection 'carts', not one of COLLECTIONS",
        f"{path}: line 3: left out (filtered): a 'futureThing' of no collection",
    ]


async def test_the_ingester_records_only_the_captured_databases_changes(tmp_path: Path) -> None:
    path = write(tmp_path, lines(*(change(n, db="legacy" if n % 2 else "shop") for n in range(6))))
    store = MemoryStore()
    s = settings(source=f"ndjson:{path}", source_db="shop")
    source = NdjsonChangeSource(path, collections=s.collections, source_db=s.source_db)
    await Ingester(store=store, source=source, settings=s, clock=FakeClock()).run(until_idle=True)
    events = await store.events.read(after_seq=0, limit=10)
    assert [(e.stream, e.entity_id) for e in events] == [
        ("orders", 0),
        ("orders", 2),
        ("orders", 4),
    ]
    checkpoint = await store.checkpoints.get(s.ingester_role)
    assert checkpoint is not None and checkpoint.token == token(5)  # past the last line, left out
