"""The explorer's projections view shows any read model's rows, a plugin's too (Chromium).

An app served in this process over 60 orders and a plugin projection with one row
per order and actor (120 rows): its name opens its rows, 50 a page in key order, as
`GET /v1/projections/{name}` pages them; an order_summary row links to its timeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from api import create_app
from eventstore.clock import FakeClock
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from projections import Change, Projection, Write
from projections.orders import ORDER_PROJECTIONS
from projections.runner import ProjectionRunner
from tests.e2e.processes import InProcessServer, serving
from tests.e2e.test_explorer import (  # noqa: F401 (fixtures)
    browser,
    chromium,
    page,
    shot,
)
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import ingester, start_from_the_beginning

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.test_explorer import Console


def _keys(change: Change) -> list[str]:
    return [f"{change.event.entity_key}|{change.event.actor}"]


def _apply(rows: Any, change: Change) -> list[Write]:
    [key] = _keys(change)
    old = rows.get(key) or {"events": 0, "last": None}
    return [Write(key=key, row={"events": old["events"] + 1, "last": {"v": change.event.version}})]


PER_ORDER_ACTOR = Projection(
    name="per_order_actor", collection="rm_per_order_actor", keys=_keys, apply=_apply
)


async def sixty_orders() -> Any:
    """60 orders, each created by alice and paid by bob: 120 rows of the plugin."""
    clock = FakeClock(datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    store = await open_test_store("memory")
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    for n in range(60):
        await orders.insert_one(
            {
                "_id": f"R-{n:03d}",
                "number": f"ORD-R{n:03d}",
                "status": "pending",
                "updatedBy": "alice",
            }
        )
        await orders.update_one(
            {"_id": f"R-{n:03d}"}, {"$set": {"status": "paid", "updatedBy": "bob"}}
        )
        clock.advance(1)
    await ingester(store, feed, clock).run(until_idle=True)
    models = [*ORDER_PROJECTIONS, PER_ORDER_ACTOR]
    for projection in models:
        await ProjectionRunner(store, projection, clock=clock).rebuild_now()
    settings = Settings(uri="memory://", source="simulator", lease_seconds=5.0)
    return create_app(settings, store=store, projections_=models)


@pytest.fixture(scope="module")
def rows_server(chromium: str) -> Iterator[InProcessServer]:  # noqa: F811
    with serving(sixty_orders) as server:
        yield server


CELLS_JS = "rows => rows.map(r => [...r.cells].map(c => c.textContent))"


def test_a_plugin_s_rows_are_shown_a_page_at_a_time_as_the_api_pages_them(
    rows_server: InProcessServer,
    page: tuple[Page, Console],  # noqa: F811
) -> None:
    p, console = page
    base = rows_server.base
    with httpx.Client(base_url=base, timeout=10) as http:
        first = http.get("/v1/projections/per_order_actor", params={"limit": 50}).json()
        second = http.get(
            "/v1/projections/per_order_actor", params={"limit": 50, "after": first["next"]}
        ).json()
    assert len(first["items"]) == 50 and len(second["items"]) == 50 and second["next"]

    def shown(items: list[dict[str, Any]]) -> list[list[str]]:
        return [[str(r["events"]), f'{{"v":{r["last"]["v"]}}}'] for r in items]

    p.goto(f"{base}/explorer#/projections")
    assert p.locator("#proj-rows").is_hidden()
    p.click("#projections tr[data-name='per_order_actor'] button.show-rows")
    p.wait_for_selector("#proj-rows[data-name='per_order_actor'] #proj-rows-table tbody tr")
    assert p.locator("#proj-rows-title").inner_text() == "Rows of per_order_actor"
    heads = p.eval_on_selector_all("#proj-rows-table thead th", "hs => hs.map(h => h.textContent)")
    assert heads == ["events", "last"]
    assert p.eval_on_selector_all("#proj-rows-table tbody tr", CELLS_JS) == shown(first["items"])
    assert p.locator("#proj-rows-note").inner_text() == "Rows 1–50 in key order; more follow."
    assert p.locator("#rows-prev").is_disabled()
    p.click("#rows-next")
    p.wait_for_selector("#rows-page:text('page 2')")
    assert p.eval_on_selector_all("#proj-rows-table tbody tr", CELLS_JS) == shown(second["items"])
    assert p.locator("#proj-rows-note").inner_text() == "Rows 51–100 in key order; more follow."
    p.click("#rows-next")
    p.wait_for_selector("#rows-page:text('page 3')")
    assert p.locator("#proj-rows-note").inner_text() == "Rows 101–120 in key order."
    assert p.locator("#rows-next").is_disabled()
    p.click("#rows-prev")
    p.wait_for_selector("#rows-page:text('page 2')")
    assert p.eval_on_selector_all("#proj-rows-table tbody tr", CELLS_JS) == shown(second["items"])
    shot(p, "projection-rows")

    # An order_summary row links to its order's timeline.
    p.click("#projections tr[data-name='order_summary'] button.show-rows")
    p.wait_for_selector("#proj-rows[data-name='order_summary'] #rows-page:text('page 1')")
    link = p.locator("#proj-rows-table tbody tr").first.locator("td[data-column='entity_key'] a")
    assert link.inner_text() == "R-000"
    assert link.get_attribute("href") == "#/entity/orders/R-000"
    p.click("#proj-rows-close")
    assert p.locator("#proj-rows").is_hidden()
    console.assert_clean()
