"""Liveness, readiness and Prometheus metrics (outside `/v1`: no key needed)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from api.metrics import log_lines, projection_lines, worker_lines
from api.problems import problem
from api.schemas import HealthOut
from api.services import ServicesDep
from api.subscription_metrics import subscription_metric_lines
from projections.status import projection_statuses


@get("/health/live", summary="The process is up")
async def live() -> HealthOut:
    return HealthOut(status="live", detail="the process is up")


@get(
    "/health/ready",
    summary="200 while the database answers and this process's capture (if any) is healthy",
    responses=None,
)
async def ready(services: ServicesDep) -> Response[Any]:
    ok, detail = await services.ready()
    if ok:
        return Response(HealthOut(status="ready", detail=detail))
    return problem(503, detail, kind="not-ready", workers=services.local_workers())


@get("/metrics", summary="Prometheus text metrics", media_type="text/plain; version=0.0.4")
async def metrics(services: ServicesDep) -> str:
    lines = services.metrics.request_lines()
    if services.connected:
        store = services.store
        head = await store.events.head()
        cp = await store.checkpoints.get(services.settings.ingester_role)
        updated = cp.updated_at if cp is not None else None
        lag = (services.clock.now() - updated).total_seconds() if updated is not None else None
        lines += log_lines(head.seq, lag, updated)
        statuses = await projection_statuses(
            store, list(services.projections.values()), await services.worker_records()
        )
        lines += projection_lines((s.name, s.position, s.lag, s.state) for s in statuses)
        lines += await subscription_metric_lines(services)
    lines += worker_lines(await services.supervisor.records())
    lines.append(f"eventstore_up {int(services.connected)}")
    return "\n".join(lines) + "\n"


ROUTES: list[Any] = [live, ready, metrics]
