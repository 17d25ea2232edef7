"""The history render cache: a cached page is byte-for-byte the page folded afresh."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.conftest import AppFactory, AuditLog, build_log


async def test_cached_history_pages_equal_fresh_ones_and_skip_the_fold(
    make_app: AppFactory,
) -> None:
    log: AuditLog = await build_log("memory", orders=5, changes=60)
    busiest = max({e.entity_key for e in log.events}, key=lambda k: len(log.of(k)))
    url = f"/v1/streams/orders/entities/{busiest}/history"
    app = make_app(log.store)
    folds = 0
    latest = log.store.snapshots.latest

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal folds
        folds += 1  # only the folding path reads snapshots
        return await latest(*args, **kwargs)

    log.store.snapshots.latest = counted  # type: ignore[method-assign]
    async with AsyncTestClient(app) as client:
        pages = []
        for _ in range(2):  # the first walk folds and fills the cache, the second reads it
            walk, after = [], None
            while True:
                params: dict[str, Any] = {"limit": 3, **({"after": after} if after else {})}
                body = (await client.get(url, params=params)).json()
                walk.append(body)
                after = body["next"]
                if after is None:
                    break
            pages.append(walk)
        assert folds == len(pages[0])
        assert pages[0] == pages[1]
        assert [e["version"] for p in pages[1] for e in p["events"]] == list(
            range(1, len(log.of(busiest)) + 1)
        )
        # A fresh app (empty cache) renders the same bytes.
        async with AsyncTestClient(make_app(log.store)) as fresh:
            assert (await fresh.get(url, params={"limit": 3})).json() == pages[1][0]
