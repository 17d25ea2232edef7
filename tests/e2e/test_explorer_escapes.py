"""The explorer shows keys, actors and values with their control characters escaped (Chromium).

An order whose key, actor and a field hold a bidirectional override and an escape
character: raw, the override would reorder the text around it, so one key could be
made to look like another. The page shows `\\u202e` and `\\u001b` as text, and its
JSON view still reads back as the document the API returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest

from api import create_app
from eventstore.clock import FakeClock
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
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

KEY = "K-\u202e1-X"  # shown raw, it would read "K-X-1"
ACTOR = "ev\u202eil\x1b[31m"
HIDDEN = ("\u202e", "\x1b", "\x9b")


async def order_with_controls() -> Any:
    clock = FakeClock(datetime(2026, 5, 1, 9, 0, tzinfo=UTC))
    store = await open_test_store("memory")
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": KEY, "status": "new", "note": "a\x9bb", "updatedBy": ACTOR})
    clock.advance(60)
    await orders.update_one({"_id": KEY}, {"$set": {"status": "paid\u202e", "updatedBy": ACTOR}})
    await ingester(store, feed, clock).run(until_idle=True)
    return create_app(Settings(uri="memory://", source="simulator", lease_seconds=5.0), store=store)


@pytest.fixture(scope="module")
def escapes_server(chromium: str) -> Iterator[InProcessServer]:  # noqa: F811
    with serving(order_with_controls) as server:
        yield server


def test_controls_from_the_documents_are_shown_escaped(
    escapes_server: InProcessServer,
    page: tuple[Page, Console],  # noqa: F811
) -> None:
    p, console = page
    base = escapes_server.base
    with httpx.Client(base_url=base, timeout=10) as http:
        state = http.get(f"/v1/streams/orders/entities/{quote(KEY, safe='')}/state").json()
    assert state["document"]["status"] == "paid\u202e"  # the API is exact

    p.goto(f"{base}/explorer#/entity/orders/{quote(KEY, safe='')}")
    p.wait_for_function("key => document.getElementById('state-json').dataset.key === key", arg=KEY)
    title = p.locator("#entity-title").inner_text()
    assert title == "K-\\u202e1-X"
    actors = p.eval_on_selector_all("#timeline .actor", "els => els.map(e => e.textContent)")
    assert actors == ["ev\\u202eil\\u001b[31m"] * 2
    shown = p.evaluate("() => document.getElementById('entity').innerText")
    assert not any(c in shown for c in HIDDEN), repr(shown)
    # The JSON view escapes them as JSON does: it reads back as the document.
    assert json.loads(p.locator("#state-json").text_content() or "") == state["document"]
    shot(p, "escaped-controls")
    console.assert_clean()
