"""`eventstore diff` names the BSON types of a change of type alone, whose two sides print
alike in JSON (`"1.0"` a decimal, then a string); a change within one type prints as before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bson import Decimal128, Int64

from eventstore.memory.store import MemoryStore
from tests.integration.test_cli_history import run
from tests.integration.test_out_of_range_dates_capture import capture, insert, update


def test_diff_prints_both_types_of_a_change_of_type_alone(tmp_path: Path) -> None:
    store = MemoryStore()
    lines = [
        insert(1, {"_id": 1, "dec": Decimal128("1.0"), "i": 1, "s": "a"}),
        update(2, 1, {"dec": "1.0", "i": Int64(1), "s": "b"}),
    ]
    asyncio.run(capture(store, tmp_path, lines))

    code, out = run(store, "diff", "orders", "1", "1", "2")
    assert code == 0 and out.splitlines() == [
        "orders/1: version 1 -> 2",
        '  changed  dec: "1.0" (decimal) -> "1.0" (string)',
        "  changed  i: 1 (int) -> 1 (long)",
        '  changed  s: "a" -> "b"',
    ]
    code, out = run(store, "diff", "orders", "1", "1", "2", "--json")
    assert code == 0 and json.loads(out)["changes"] == [
        {
            "path": "dec",
            "op": "changed",
            "before": "1.0",
            "after": "1.0",
            "before_type": "decimal",
            "after_type": "string",
        },
        {
            "path": "i",
            "op": "changed",
            "before": 1,
            "after": 1,
            "before_type": "int",
            "after_type": "long",
        },
        {"path": "s", "op": "changed", "before": "a", "after": "b"},
    ]
