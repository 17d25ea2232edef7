"""A plugin projection over the API: listed in status, rebuilt by the admin API, its rows
(with `_seq` kept out) and one row by key, equal to the direct computation from the log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from eventstore.cli.bootstrap import build_app
from tests.api.conftest import ADMIN_KEY, build_log, settings
from tests.api.test_api_projections import _until_done
from tests.integration.test_plugin_projections import per_actor_day, readme_example

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_a_plugin_is_listed_rebuilt_and_served_like_a_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "api_shop_projections.py").write_text(readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "api_shop_projections", raising=False)
    log = await build_log("memory", orders=5, changes=30)
    app = build_app(
        settings(admin_key=ADMIN_KEY, projections=("api_shop_projections:EVENTS_PER_ACTOR",)),
        store=log.store,
    )
    expected = per_actor_day(log.events)
    async with AsyncTestClient(app) as client:
        listed = {s["name"]: s for s in (await client.get("/v1/projections")).json()}
        assert listed["events_per_actor"]["position"] == 0
        r = await client.post("/v1/admin/projections/events_per_actor/rebuild", headers=ADMIN)
        assert r.status_code == 202, r.text
        done = await _until_done(client, r.json()["job"])
        assert done["state"] == "succeeded" and done["projection"] == "events_per_actor"
        r = await client.get("/v1/projections/events_per_actor", params={"limit": 1000})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        assert {f"{i['day']}:{i['actor']}": i["events"] for i in items} == expected
        assert all(set(i) == {"day", "actor", "events"} for i in items)
        key = sorted(expected)[0]
        one = await client.get(f"/v1/projections/events_per_actor/{key}")
        assert one.status_code == 200 and one.json()["events"] == expected[key]
        missing = await client.get("/v1/projections/events_per_actor/1999-01-01:nobody")
        assert missing.status_code == 404
        # A plugin's rows are listed as written, in key order; their fields are no filters.
        keys = [f"{i['day']}:{i['actor']}" for i in items]
        assert keys == sorted(keys)
        refused = await client.get("/v1/projections/events_per_actor", params={"actor": "x"})
        assert refused.status_code == 400
        assert refused.json()["detail"] == (
            "events_per_actor takes no filters (its rows are listed as written, by key):"
            " 'actor' is not limit or after"
        )
        status = {s["name"]: s for s in (await client.get("/v1/projections")).json()}
        assert status["events_per_actor"]["lag"] == 0
        assert status["events_per_actor"]["rebuilt_at"] is not None


async def test_the_admin_api_rebuilds_with_workers_and_shows_the_partitions() -> None:
    log = await build_log("memory", orders=8, changes=60)
    app = build_app(settings(admin_key=ADMIN_KEY), store=log.store)
    url = "/v1/admin/projections/revenue_by_day/rebuild"
    async with AsyncTestClient(app) as client:
        for body, status, detail in [
            (b'{"workers": 0}', 422, "workers must be from 1 to 16, got 0"),
            (b'{"workers": 17}', 422, "workers must be from 1 to 16, got 17"),
            (b'{"workers": -3}', 422, "workers must be from 1 to 16, got -3"),
            (b'{"workers": "2"}', 400, 'workers must be a whole number from 1 to 16, got "2"'),
            (b'{"workers": true}', 400, "workers must be a whole number from 1 to 16, got true"),
            (b'{"workers": 2.5}', 400, "workers must be a whole number from 1 to 16, got 2.5"),
            (b'{"workers": 17.0}', 422, "workers must be from 1 to 16, got 17"),
            (b'{"threads": 2}', 400, 'the body takes only {"workers": N}'),
            (b"[2]", 400, 'the body takes only {"workers": N}'),
            (b"{", 400, 'the body must be JSON: {"workers": N}'),
        ]:
            r = await client.post(url, headers=ADMIN, content=body)
            assert r.status_code == status, (body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["detail"] == detail
            if status == 422:  # well formed but impossible: which field, and why
                assert r.json()["errors"] == [{"key": "workers", "message": detail}]
        assert await log.store.jobs.active("revenue_by_day") is None  # nothing was queued
        r = await client.post(url, headers=ADMIN, json={"workers": 2})
        assert r.status_code == 202, r.text
        done = await _until_done(client, r.json()["job"])
        assert done["state"] == "succeeded" and done["workers"] == 2, done
        assert [p["index"] for p in done["partitions"]] == [0, 1]
        assert all(p["state"] == "succeeded" for p in done["partitions"])
        # each claimed once, by this instance; a finished claim has no expiry
        assert {(p["attempts"], p["expires_at"], p["error"]) for p in done["partitions"]} == {
            (1, None, None)
        }
        assert len({p["owner"] for p in done["partitions"]}) == 1 and done["partitions"][0]["owner"]
        assert sum(p["total"] for p in done["partitions"]) == log.events[-1].seq
        # an empty body is one worker, as before
        r = await client.post(url, headers=ADMIN)
        assert r.status_code == 202
        done = await _until_done(client, r.json()["job"])
        assert done["state"] == "succeeded" and done["workers"] == 1 and done["partitions"] == []


async def test_a_running_service_supervises_and_follows_a_plugin_like_a_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from eventstore.cli.bootstrap import WorkloadOptions, open_service
    from eventstore.settings import Settings

    (tmp_path / "run_shop.py").write_text(readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "run_shop", raising=False)
    simulated = Settings(
        uri="memory://",
        source="simulator",
        lease_seconds=1.0,
        projections=("run_shop:EVENTS_PER_ACTOR",),
    )
    workload = WorkloadOptions(orders=5, changes=20, rate=0, seed=3)
    async with open_service(simulated, capture=True, workload=workload) as service:
        workers = service.workers()
        async with AsyncTestClient(service.app(workers=workers)) as http:
            for _ in range(300):
                status = {s["name"]: s for s in (await http.get("/v1/projections")).json()}
                mine = status["events_per_actor"]
                if mine["position"] >= 25 and mine["lag"] == 0:
                    break
                await asyncio.sleep(0.02)
            assert mine["position"] == 25 and mine["state"] == "running", mine
            listed = {w["name"]: w for w in (await http.get("/v1/workers")).json()}
            assert listed["projection:events_per_actor"]["state"] == "running"
            assert listed["projection:events_per_actor"]["kind"] == "projection"
            items = (await http.get("/v1/projections/events_per_actor")).json()["items"]
            events = await service.store.events.read(after_seq=0, limit=1000)
            assert {f"{i['day']}:{i['actor']}": i["events"] for i in items} == per_actor_day(events)
            metrics = (await http.get("/metrics")).text
            assert 'eventstore_projection_position{projection="events_per_actor"} 25.0' in metrics


async def test_a_plugin_row_is_served_with_every_field_it_wrote() -> None:
    """Only the runner's `_seq` (and the stored key) are not the row's own: a field of the
    plugin's that happens to be called `seq` (the built-in models' own name) is served."""
    from api import create_app
    from eventstore.memory.store import MemoryStore
    from projections import Projection, Write

    def keys(change: Any) -> list[str]:
        return ["all"]

    def apply(rows: Any, change: Any) -> list[Write]:
        return [Write(key="all", row={"seq": change.event.seq})]

    mine = Projection(name="last_seq", collection="rm_last_seq", keys=keys, apply=apply)
    store = MemoryStore()
    await store.read_models.write("rm_last_seq", [("all", {"seq": 41, "note": "x", "_seq": 41})])
    app = create_app(settings(), store=store, projections_=[mine])
    async with AsyncTestClient(app) as client:
        listed = (await client.get("/v1/projections/last_seq")).json()
        assert listed["items"] == [{"seq": 41, "note": "x"}]
        assert (await client.get("/v1/projections/last_seq/all")).json() == {"seq": 41, "note": "x"}
