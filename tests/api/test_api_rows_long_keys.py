"""A read model's rows page past a row whose key is long: the server's own `next` is taken.

An outside tester found the cursor of a key of about 430 characters or more refused by the
listing that gave it ("after: at most 600 characters"): every row after it was
unreachable by paging (a long order `_id`, a long currency in `revenue_by_day`'s key).
"""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from eventstore.cli.bootstrap import build_app
from eventstore.memory.store import MemoryStore
from tests.api.conftest import settings

KEYS = ["str:" + "A" * 500, "str:" + "B" * 5_000, "str:" + "C" * 30_000, "str:D"]


@pytest.mark.parametrize("limit", [1, 2])
async def test_rows_page_past_long_keys_with_the_cursor_the_listing_gave(limit: int) -> None:
    store = MemoryStore()
    await store.read_models.write(
        "rm_order_summary", [(key, {"entity_key": key[4:], "status": "paid"}) for key in KEYS]
    )
    app = build_app(settings(), store=store)
    seen: list[str] = []
    async with AsyncTestClient(app) as client:
        params: dict[str, str | int] = {"limit": limit}
        for _ in range(10):
            r = await client.get("/v1/projections/order_summary", params=params)
            assert r.status_code == 200, r.text[:300]
            page = r.json()
            seen += [row["typed_key"] for row in page["items"]]
            if page["next"] is None:
                break
            params = {"limit": limit, "after": page["next"]}
    assert seen == KEYS
