"""Liveness, readiness (store reachable, ingester caught up) and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from projections.orders import ORDER_SUMMARY
from projections.runner import ProjectionRunner
from tests.api.conftest import ADMIN_KEY, AppFactory, AuditLog, build_log, settings

UNREACHABLE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"
NAMES = ("order_summary", "orders_by_status", "revenue_by_day", "customer_totals")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text exposition, parsed by prometheus_client's parser: every sample once."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[(name, frozenset(labels.items()))]


async def test_live_and_ready(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/health/live")
    assert r.status_code == 200
    assert r.json()["status"] == "live"
    r = await client.get("/health/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "detail": "ready"}


async def test_not_ready_until_the_ingester_caught_up(audit_log: AuditLog) -> None:
    caught_up = False
    app = create_app(settings(), store=audit_log.store, caught_up=lambda: caught_up)
    async with AsyncTestClient(app) as client:
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/not-ready") and r.json()["status"] == 503
        assert "caught up" in r.json()["detail"]
        assert (await client.get("/health/live")).status_code == 200
        caught_up = True
        assert (await client.get("/health/ready")).status_code == 200


async def test_without_a_database_reads_answer_503_never_500() -> None:
    app = create_app(
        settings(uri=UNREACHABLE, server_timeout_ms=200, admin_key=ADMIN_KEY),
    )
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health/live")).status_code == 200
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["type"].endswith("/not-ready")
        assert r.json()["detail"] == "the database is not reachable yet"
        for path in (
            "/v1/events",
            "/v1/events?stream=orders&entity=ORD-X",
            "/v1/events/live?timeout=0.1",
            "/v1/streams",
            "/v1/streams/orders/entities",
            "/v1/projections",
            "/v1/projections/order_summary",
            "/v1/projections/order_summary/ORD-X",
        ):
            r = await client.get(path)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json"), path
            assert r.json()["status"] == 503
            assert "127.0.0.1" not in r.text
        r = await client.get("/v1/events", headers={"accept": "text/csv"})
        assert r.status_code == 503
        auth = {"authorization": f"Bearer {ADMIN_KEY}"}
        r = await client.post("/v1/admin/projections/order_summary/rebuild", headers=auth)
        assert r.status_code == 503, r.text
        r = await client.get("/v1/admin/jobs/x", headers=auth)
        assert r.status_code == 503, r.text
        # bad input is still a 400/404, not hidden behind the 503
        assert (await client.get("/v1/events?actr=bob")).status_code == 400
        r = await client.get("/metrics")
        assert r.status_code == 200
        found = samples(r.text)
        assert value(found, "eventstore_up") == 0
        assert not any(name == "eventstore_events_total" for name, _ in found)


async def test_metrics(make_app: AppFactory) -> None:
    log = await build_log("memory", orders=3, changes=6)
    head = log.events[-1].seq
    await ProjectionRunner(log.store, ORDER_SUMMARY, clock=log.clock).run(until_caught_up=True)
    try:
        async with AsyncTestClient(make_app(log.store)) as client:
            for _ in range(3):
                assert (await client.get("/v1/events", params={"limit": 2})).status_code == 200
            assert (await client.get("/v1/events?actr=x")).status_code == 400
            assert (await client.get("/v1/projections/order_summary/ORD-X")).status_code == 200
            assert (await client.get("/v1/projections/order_summary/a%2Fb")).status_code == 200
            assert (await client.get("/v1/projections/order_summary/nope")).status_code == 404
            assert (await client.get("/no/such/route")).status_code == 404
            r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "version=0.0.4" in r.headers["content-type"]
        found = samples(r.text)
        requests = "eventstore_http_requests_total"
        assert value(found, requests, method="GET", route="/v1/events", status="200") == 3
        assert value(found, requests, method="GET", route="/v1/events", status="400") == 1
        row = "/v1/projections/{name}/{key}"
        assert value(found, requests, method="GET", route=row, status="200") == 2
        assert value(found, requests, method="GET", route=row, status="404") == 1
        # label values are route templates: never a raw path (unbounded cardinality)
        routes = {dict(labels).get("route") for name, labels in found if name == requests}
        assert not any(r and ("ORD-X" in r or "nope" in r or "/no/such" in r) for r in routes)
        hist = "eventstore_http_request_duration_seconds"
        assert value(found, f"{hist}_count", method="GET", route="/v1/events") == 4
        assert value(found, f"{hist}_bucket", method="GET", route="/v1/events", le="+Inf") == 4
        assert value(found, f"{hist}_sum", method="GET", route="/v1/events") >= 0
        assert value(found, "eventstore_events_total") == head
        assert value(found, "eventstore_projection_lag_events", projection="order_summary") == 0
        for name in NAMES[1:]:
            assert value(found, "eventstore_projection_lag_events", projection=name) == head
            assert value(found, "eventstore_projection_position", projection=name) == 0
        assert value(found, "eventstore_projection_position", projection="order_summary") == head
        assert (
            value(found, "eventstore_projection_state", projection="order_summary", state="stopped")
            == 1
        )
        assert (
            value(found, "eventstore_projection_state", projection="order_summary", state="failed")
            == 0
        )
        assert value(found, "eventstore_up") == 1
        assert value(found, "eventstore_http_requests_in_flight") == 1  # the scrape itself
        assert "eventstore_ingest_lag_seconds" in r.text
        assert "# TYPE eventstore_http_requests_total counter" in r.text
    finally:
        await log.store.close()
