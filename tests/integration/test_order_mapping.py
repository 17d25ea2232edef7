"""ORDER_* settings through the CLI: rows built with another mapping say `rebuild needed`
until rebuilt; a mapped rebuild reads the shop's fields."""

from __future__ import annotations

import io
import json
from typing import Any

from eventstore.cli import main
from tests.integration.test_cli_history import populated


def run(store: object, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main([*argv, "--uri", "memory://"], out=out, store=store), out.getvalue()


def status(store: object, *flags: str) -> dict[str, dict[str, Any]]:
    code, out = run(store, "projections", "status", "--json", *flags)
    assert code == 0
    return {r["name"]: r for r in json.loads(out)}


def test_a_changed_mapping_says_rebuild_needed_until_rebuilt() -> None:
    store = populated()
    assert run(store, "project", "--until-caught-up")[0] == 0
    assert not any(r["rebuild_needed"] for r in status(store).values())
    mapped = ("--paid-statuses", "shipped")
    assert all(r["rebuild_needed"] for r in status(store, *mapped).values())
    code, out = run(store, "projections", "status", *mapped)
    assert code == 0 and out.count("rebuild needed") == 4
    assert run(store, "projections", "rebuild", "revenue_by_day", *mapped)[0] == 0
    after = status(store, *mapped)
    assert (
        not after["revenue_by_day"]["rebuild_needed"] and after["order_summary"]["rebuild_needed"]
    )
    # and now the default mapping is the one that differs for that model
    assert status(store)["revenue_by_day"]["rebuild_needed"]
    # only ORD-1's shipping counts as revenue now (paid is not a paid status here)
    rows = store.read_models._tables["rm_revenue_by_day"]
    assert [(r["orders"], str(r["revenue"])) for r in rows.values()] == [(1, "0")]


def test_a_mapped_rebuild_reads_the_shops_fields() -> None:
    store = populated()  # ORD-1 and ORD-2: {status, updatedBy}
    fields = json.dumps({"status": "updatedBy"})  # any path: here, who changed it
    code, _ = run(store, "projections", "rebuild", "orders_by_status", "--order-fields", fields)
    assert code == 0
    rows = store.read_models._tables["rm_orders_by_status"]
    assert {k: r["count"] for k, r in rows.items() if r["count"]} == {"alice": 1, "bob": 1}
