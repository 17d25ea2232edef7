"""The explorer's projections view lists, per row, the values it could not use and why (Chromium).

An app served in this process over orders whose totals are not money ("abc", NaN,
a document, missing while paid) and one whose status is not a status (`true`); the
page's problem list is checked against the rows' `problems` as the API returns them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from bson import Decimal128

from api import create_app
from eventstore.clock import FakeClock
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
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


async def orders_with_bad_totals() -> Any:
    """Six orders: four totals that are not money (one fixed later), one that is, and one
    whose status is `true` (counted as not paid, and recorded)."""
    clock = FakeClock(datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    store = await open_test_store("memory")
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    totals: list[Any] = ["abc", float("nan"), None, {"amount": 3}, Decimal128("12.50"), "4.00"]
    for n, total in enumerate(totals, start=1):
        doc: dict[str, Any] = {
            "_id": f"P-{n}",
            "number": f"ORD-P{n}",
            "status": "paid" if n < 6 else True,
            "currency": "EUR",
            "customer": {"id": f"C-{n % 2}", "name": f"Customer {n % 2}"},
            "updatedBy": "alice",
        }
        if total is not None:
            doc["total"] = total
        await orders.insert_one(doc)
        clock.advance(60)
    # P-4's document total becomes a number: its row's problem is gone; P-1 is paid again
    await orders.update_one({"_id": "P-4"}, {"$set": {"total": "7.25", "updatedBy": "bob"}})
    await ingester(store, feed, clock).run(until_idle=True)
    for projection in ORDER_PROJECTIONS:
        await ProjectionRunner(store, projection, clock=clock).rebuild_now()
    return create_app(Settings(uri="memory://", source="simulator", lease_seconds=5.0), store=store)


@pytest.fixture(scope="module")
def problems_server(chromium: str) -> Iterator[InProcessServer]:  # noqa: F811
    with serving(orders_with_bad_totals) as server:
        yield server


ROWS_JS = """rows => rows.map(r => [r.dataset.row, Number(r.dataset.seq), r.cells[2].textContent,
  r.cells[3].textContent, r.dataset.reason, r.cells[0].textContent])"""


def expected_lines(items: list[dict[str, Any]], key: str, label: str) -> set[tuple[Any, ...]]:
    return {
        (
            key.format(**r),
            p["seq"],
            p["field"],
            "(none)" if p["value"] is None else p["value"],
            p["reason"],
            label.format(**r),
        )
        for r in items
        for p in r["problems"]
    }


def test_each_row_s_values_not_money_are_listed_with_their_reason(
    problems_server: InProcessServer,
    page: tuple[Page, Console],  # noqa: F811
) -> None:
    p, console = page
    base = problems_server.base
    with httpx.Client(base_url=base, timeout=10) as http:
        status = {s["name"]: s for s in http.get("/v1/projections").json()}
        summary = http.get("/v1/projections/order_summary").json()["items"]
        revenue = http.get("/v1/projections/revenue_by_day").json()["items"]
    expected = expected_lines(summary, "{entity_key}", "{number}")
    # one order per reason; P-4 was corrected, P-5 was money all along
    assert {(e[0], e[4]) for e in expected} == {
        ("P-1", "not_a_number"),
        ("P-2", "not_finite"),
        ("P-3", "missing"),
        ("P-6", "wrong_type"),
    }
    assert {e[3] for e in expected} == {"abc", "NaN", "(none)", "true"}
    assert {e[2] for e in expected if e[0] == "P-6"} == {"status"}

    p.goto(f"{base}/explorer#/projections")
    badge = p.locator("#projections tr[data-name='order_summary'] button.show-problems")
    badge.wait_for()
    assert badge.inner_text() == f"{status['order_summary']['problems']} unusable values"
    assert p.locator("#proj-problems").is_hidden()
    badge.click()
    p.wait_for_selector("#problems tbody tr.problem")
    got = p.eval_on_selector_all("#problems tbody tr.problem", ROWS_JS)
    assert {tuple(g) for g in got} == expected
    assert len(got) == len(expected)
    assert p.locator("#proj-problems-title").inner_text() == "Values order_summary could not use"
    assert (
        p.locator("#proj-problems-note")
        .inner_text()
        .startswith("4 of 6 rows hold a value they could not use now")
    )
    said = p.locator("#problems tr.problem[data-row='P-6'] td:last-child").inner_text()
    assert said == "wrong_type neither text nor a number: the order counts as not paid"
    shot(p, "projection-problems")

    # revenue_by_day: the day's EUR row carries the paid orders' problems
    p.click("#projections tr[data-name='revenue_by_day'] button.show-problems")
    p.wait_for_selector("#proj-problems[data-name='revenue_by_day'] #problems tbody tr.problem")
    got = p.eval_on_selector_all("#problems tbody tr.problem", ROWS_JS)
    assert {tuple(g) for g in got} == expected_lines(
        revenue, "{day}:{currency}", "{day} {currency}"
    )
    assert {g[4] for g in got} == {"not_a_number", "not_finite", "missing", "wrong_type"}

    # an order's row opens its timeline, where the seq of the problem is
    p.click("#projections tr[data-name='order_summary'] button.show-problems")
    p.wait_for_selector("#proj-problems[data-name='order_summary'] #problems tbody tr.problem")
    seq = next(e[1] for e in expected if e[0] == "P-2")
    p.click("#problems tr.problem[data-row='P-2'] a")
    p.wait_for_function("() => document.getElementById('state-json').dataset.key === 'P-2'")
    p.wait_for_selector(f"#timeline li.ev[data-seq='{seq}']")
    p.goto(f"{base}/explorer#/projections")
    p.click("#projections tr[data-name='order_summary'] button.show-problems")
    p.click("#proj-problems-close")
    assert p.locator("#proj-problems").is_hidden()
    console.assert_clean()
