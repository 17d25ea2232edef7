"""`/v1/workers`, restarting a failed worker, and readiness under supervision.

The app runs in the test client's own thread and loop: the tests poll, never await its events.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from pymongo.errors import AutoReconnect, OperationFailure

from api import create_app
from api.metrics import Metrics
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.subscriptions.manager import SubscriptionManager
from eventstore.supervisor import Supervisor
from eventstore.worker_state import RUNNING, STANDBY, WorkerRecord
from tests.api.conftest import ADMIN_KEY, READ_KEY, settings
from tests.e2e.processes import free_port
from tests.helpers import LogBuilder
from tests.realsinks import SECRET
from tests.supervision import ScriptedWorker, until

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
READ = {"authorization": f"Bearer {READ_KEY}"}


def supervised_app(
    store: MemoryStore, clock: FakeClock, *workers: ScriptedWorker, **kw: Any
) -> tuple[Any, Supervisor]:
    s = settings(admin_key=ADMIN_KEY, read_keys=(READ_KEY,), lease_seconds=10, **kw)
    sup = Supervisor(
        clock=clock,
        instance="here:1",
        lease_seconds=10,
        workers=store.workers,
        secrets=[ADMIN_KEY, READ_KEY],
        rng_seed=3,
    )
    for w in workers:
        sup.add(w)
    app = create_app(s, store=store, clock=clock, supervisor=sup, capture="ingester:shop")

    async def start() -> None:
        await sup.start()

    async def stop() -> None:
        await sup.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app, sup


async def test_workers_lists_every_instance_with_stale_ones_marked() -> None:
    clock = FakeClock(advance_on_sleep=False)
    store = MemoryStore()
    other = WorkerRecord(
        name="ingester:shop",
        kind="capture",
        instance="there:2",
        state=STANDBY,
        since=clock.now(),
        updated_at=clock.now(),
    )
    gone = WorkerRecord(
        name="projection:order_summary",
        kind="projection",
        instance="gone:3",
        state=RUNNING,
        since=clock.now() - timedelta(minutes=5),
        updated_at=clock.now() - timedelta(seconds=31),
        position=12,
        lag=3,
    )
    await store.workers.put([other, gone])
    capture = ScriptedWorker("ingester:shop", [])
    app, _ = supervised_app(store, clock, capture)
    async with AsyncTestClient(app) as client:
        await until(capture.running.is_set)
        assert (await client.get("/v1/workers")).status_code == 401  # read keys apply
        r = await client.get("/v1/workers", headers=READ)
        assert r.status_code == 200
        body = r.json()
        assert [(w["name"], w["instance"], w["state"]) for w in body] == [
            ("ingester:shop", "here:1", "running"),
            ("ingester:shop", "there:2", "standby"),
            ("projection:order_summary", "gone:3", "stale"),
        ]
        assert set(body[0]) == {
            "name",
            "kind",
            "instance",
            "state",
            "since",
            "restarts",
            "last_error",
            "position",
            "lag",
            "lag_seconds",
        }
        assert body[0]["kind"] == "capture" and body[0]["position"] == 1
        assert body[0]["since"] == "2026-01-01T00:00:00.000Z"
        assert (body[2]["position"], body[2]["lag"]) == (12, 3)


async def test_a_failed_capture_makes_the_process_unready_until_restarted() -> None:
    clock = FakeClock(advance_on_sleep=False)
    store = MemoryStore()
    capture = ScriptedWorker(
        "ingester:shop",
        [OperationFailure(f"not authorized; uri mongodb://u:pw@db key {ADMIN_KEY}", 13)],
    )
    projection = ScriptedWorker(
        "projection:order_summary", [ValueError("a bug in apply")], kind="projection"
    )
    app, sup = supervised_app(store, clock, capture, projection)
    async with AsyncTestClient(app) as client:
        await until(lambda: all(s.state == "failed" for s in sup.workers))
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        error = "OperationFailure: not authorized; uri mongodb://***@db key ***"
        assert body["type"].endswith("/not-ready")
        assert body["detail"] == f"ingester:shop failed: {error}"
        assert body["workers"] == [
            {"name": "ingester:shop", "state": "failed", "last_error": error},
            {
                "name": "projection:order_summary",
                "state": "failed",
                "last_error": "ValueError: a bug in apply",
            },
        ]
        assert (await client.get("/health/live")).status_code == 200
        listed = (await client.get("/v1/workers", headers=READ)).json()
        assert [w["last_error"] for w in listed] == [error, "ValueError: a bug in apply"]
        assert ADMIN_KEY not in str(listed) and "pw@" not in str(listed)

        path = "/v1/admin/workers/ingester:shop/restart"
        assert (await client.post(path)).status_code == 401
        assert (await client.post(path, headers=READ)).status_code == 403
        # a body other than none or `{}` is refused, as every action refuses it, and
        # nothing is restarted (it was read as nothing)
        for body, key in ((b"[1,2,3", None), (b'{"force": true}', "force"), (b"[1]", "")):
            r = await client.post(path, headers=ADMIN, content=body)
            assert r.status_code == 400, (body, r.text)
            if key is not None:
                assert [e["key"] for e in r.json()["errors"]] == [key]
        assert sup.get("ingester:shop").state == "failed"  # type: ignore[union-attr]
        r = await client.post(path, headers=ADMIN, content=b"{}")
        assert r.status_code == 200, r.text
        assert r.json()["restarts"] == 1
        await until(capture.running.is_set)
        assert (await client.get("/health/ready")).status_code == 200
        # A projection's failure never takes readiness down.
        assert sup.get("projection:order_summary").state == "failed"  # type: ignore[union-attr]

        r = await client.post(path, headers=ADMIN)
        assert r.status_code == 409 and "running" in r.json()["detail"]
        r = await client.post("/v1/admin/workers/projection:nope/restart", headers=ADMIN)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_worker_of_another_instance_is_restarted_there() -> None:
    clock = FakeClock(advance_on_sleep=False)
    store = MemoryStore()
    await store.workers.put(
        [
            WorkerRecord(
                name="projection:order_summary",
                kind="projection",
                instance="there:2",
                state="failed",
                since=clock.now(),
                updated_at=clock.now(),
            )
        ]
    )
    app, _ = supervised_app(store, clock)
    async with AsyncTestClient(app) as client:
        r = await client.post("/v1/admin/workers/projection:order_summary/restart", headers=ADMIN)
        assert r.status_code == 409
        assert "there:2" in r.json()["detail"]


async def test_capture_retrying_past_unhealthy_after_is_unready_then_ready_again() -> None:
    clock = FakeClock(advance_on_sleep=False)
    store = MemoryStore()
    capture = ScriptedWorker("ingester:shop", [AutoReconnect("connection refused")] * 10_000)
    app, sup = supervised_app(store, clock, capture, unhealthy_after=5)
    async with AsyncTestClient(app) as client:
        await until(lambda: capture.runs > 2)
        assert (await client.get("/health/ready")).status_code == 200  # not for long yet
        clock.advance(5.5)
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["detail"].startswith("ingester:shop has been retrying for 6s")
        assert r.json()["workers"][0]["state"] in ("retrying", "starting", "running")
        capture.failures.clear()
        await until(capture.running.is_set)
        assert (await client.get("/health/ready")).status_code == 200
        entry = sup.get("ingester:shop")
        assert entry is not None and entry.restarts == capture.runs - 1


async def test_a_rebuild_run_here_is_a_supervised_worker(make_app: Any) -> None:
    from tests.api.conftest import build_log

    log = await build_log("memory", orders=3, changes=6)
    app = make_app(log.store, admin_key=ADMIN_KEY)
    async with AsyncTestClient(app) as client:
        r = await client.post("/v1/admin/projections/order_summary/rebuild", headers=ADMIN)
        assert r.status_code == 202
        job = r.json()["job"]
        states: list[str] = []

        def done() -> bool:
            rebuild = app.services.supervisor.get("rebuild:order_summary")
            states.append(rebuild.state if rebuild is not None else "absent")
            return states[-1] == "stopped"

        await until(done)
        found = (await client.get(f"/v1/admin/jobs/{job}", headers=ADMIN)).json()
        assert found["state"] == "succeeded" and found["processed"] == log.events[-1].seq
        [worker] = (await client.get("/v1/workers")).json()
        assert (worker["name"], worker["kind"], worker["state"]) == (
            "rebuild:order_summary",
            "rebuild",
            "stopped",
        )
        assert worker["position"] == log.events[-1].seq and worker["lag"] == 0
    await log.store.close()


async def test_a_deleted_subscription_leaves_the_workers_and_metrics_of_every_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deleted through instance a: a drops its workers at once, b at its next sync (failed or not)."""
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    clock = FakeClock(advance_on_sleep=False)
    store = MemoryStore()
    await store.events.append([LogBuilder().next("a")])
    sups: dict[str, Supervisor] = {}
    metrics: dict[str, Metrics] = {}
    managers: dict[str, SubscriptionManager] = {}
    for instance in ("a:1", "b:2"):
        metrics[instance] = Metrics()
        sups[instance] = Supervisor(
            clock=clock,
            instance=instance,
            lease_seconds=10,
            workers=store.workers,
            metrics=metrics[instance],
        )
        # Synced at start and when nudged (the test syncs b itself: b never hears of the delete).
        managers[instance] = SubscriptionManager(
            store, sups[instance], clock=clock, owner=instance, lease_seconds=10, every_s=3600
        )
        sups[instance].add(managers[instance])
        await sups[instance].start()
    app = create_app(  # the sink's `{"env"}` reference fails at start: the API may give it
        settings(admin_key=ADMIN_KEY, lease_seconds=10, api_secret_references=True),
        store=store,
        clock=clock,
        supervisor=sups["a:1"],
        metrics=metrics["a:1"],
    )
    hook = {"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/h"}
    bodies = {
        "gone2": {"sink": {**hook, "secret": {"env": "NOPE_NOT_SET"}}},  # fails at start
        "down": {"sink": {**hook, "secret": SECRET}, "start": "earliest"},  # connection refused
    }
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for name, body in bodies.items():
                r = await client.put(f"/v1/admin/subscriptions/{name}", json=body, headers=ADMIN)
                assert r.status_code == 201, r.text
            await managers["b:2"].sync()

            def states(name: str) -> list[str]:
                found = [s.get(f"subscription:{name}") for s in sups.values()]
                return sorted(f.state if f is not None else "absent" for f in found)

            await until(lambda: states("gone2") == ["failed", "failed"])
            await until(lambda: states("down") == ["retrying", "standby"])
            for sup in sups.values():
                await sup.publish()
            listed = (await client.get("/v1/workers")).json()
            assert sorted((w["name"], w["instance"]) for w in listed) == [
                ("subscription:down", "a:1"),
                ("subscription:down", "b:2"),
                ("subscription:gone2", "a:1"),
                ("subscription:gone2", "b:2"),
                ("subscriptions", "a:1"),
                ("subscriptions", "b:2"),
            ]
            page = (await client.get("/metrics")).text
            assert 'eventstore_worker_state{state="failed",worker="subscription:gone2"} 1.0' in page

            for name in bodies:
                r = await client.delete(f"/v1/admin/subscriptions/{name}", headers=ADMIN)
                assert r.status_code == 204
            await until(lambda: [s.name for s in sups["a:1"].workers] == ["subscriptions"])
            await managers["b:2"].sync()
            assert [s.name for s in sups["b:2"].workers] == ["subscriptions"]

            listed = (await client.get("/v1/workers")).json()
            assert [(w["name"], w["instance"]) for w in listed] == [
                ("subscriptions", "a:1"),
                ("subscriptions", "b:2"),
            ]
            pages = [(await client.get("/metrics")).text] + [
                m.exposition(None, up=True).decode() for m in metrics.values()
            ]
            for page in pages:
                assert "eventstore_worker_state" in page
                assert "gone2" not in page and "subscription:down" not in page
            r = await client.post("/v1/admin/workers/subscription:gone2/restart", headers=ADMIN)
            assert r.status_code == 404
            assert r.headers["content-type"].startswith("application/problem+json")
    finally:
        for sup in sups.values():
            await sup.stop()
