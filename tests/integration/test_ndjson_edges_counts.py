"""Every line that is a change is counted once in `ingest`'s summary: lines left out too.

A line of a collection not captured, or of another database than SOURCE_DB, is
counted as filtered (as a change filtered by OPERATIONS is), so recorded, already
recorded, filtered and rejected add up to the changes the file holds.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp, json_util

from eventstore.cli import main
from eventstore.memory.store import MemoryStore


def change(n: int, *, coll: str = "orders", db: str = "shop", op: str = "insert") -> str:
    doc: dict[str, Any] = {
        "_id": {"_data": f"82{n:032X}"},
        "operationType": op,
        "clusterTime": Timestamp(1_770_000_000, n),
        "ns": {"db": db, "coll": coll},
        "documentKey": {"_id": n},
    }
    if op == "insert":
        doc["fullDocument"] = {"_id": n}
    return json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS)


def ingest(path: Path, *args: str) -> str:
    out = io.StringIO()
    argv = ["ingest", "--uri", "memory://", "--source", f"ndjson:{path}", "--until-idle", *args]
    assert main(argv, out=out, store=MemoryStore()) == 0
    return out.getvalue().split(" in ")[0]


@pytest.mark.parametrize("batch_size", ["1", "1000"])
def test_lines_left_out_are_counted_as_filtered(tmp_path: Path, batch_size: str) -> None:
    path = tmp_path / "changes.ndjson"
    lines = [
        change(1),
        change(2, coll="carts"),  # a collection not captured
        change(3, db="legacy"),  # another database's orders
        change(4, op="delete"),  # an operation not captured
        change(5),
    ]
    path.write_text("\n".join(lines) + "\n")
    summary = ingest(path, "--operations", "insert", "--batch-size", batch_size)
    assert summary == (
        "recorded 2 events from 5 changes (0 already recorded, 3 filtered, 0 rejected)"
    )
