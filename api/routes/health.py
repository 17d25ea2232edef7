"""Liveness, readiness and Prometheus metrics (outside `/v1`: no key needed)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from api.metrics import CONTENT_TYPE, LogFigures, ProjectionFigures
from api.schemas import HealthOut
from api.services import Services, ServicesDep
from projections.status import projection_statuses


@get("/health/live", summary="The process is up")
async def live() -> HealthOut:
    return HealthOut(status="live", detail="the process is up")


@get(
    "/health/ready",
    summary="200 once the database answers (and, where this process captures, it has caught up)",
    responses=None,
)
async def ready(services: ServicesDep) -> Response[HealthOut]:
    ok, detail = await services.ready()
    return Response(
        HealthOut(status="ready" if ok else "not ready", detail=detail),
        status_code=200 if ok else 503,
    )


@get("/metrics", summary="Prometheus text metrics", media_type=CONTENT_TYPE)
async def metrics(services: ServicesDep) -> Response[bytes]:
    figures = await log_figures(services) if services.connected else None
    body = services.metrics.exposition(figures, up=services.connected)
    return Response(body, media_type=CONTENT_TYPE)


async def log_figures(services: Services) -> LogFigures:
    """What this scrape reads from the store (read here, by the scraping process only)."""
    store = services.store
    head = await store.events.head()
    cp = await store.checkpoints.get(services.settings.ingester_role)
    updated = cp.updated_at if cp is not None else None
    lag = (services.clock.now() - updated).total_seconds() if updated is not None else None
    statuses = await projection_statuses(store, list(services.projections.values()))
    return LogFigures(
        head_seq=head.seq,
        ingest_lag_seconds=lag,
        last_checkpoint=updated,
        projections=[ProjectionFigures(s.name, s.position, s.lag, s.state) for s in statuses],
    )


ROUTES: list[Any] = [live, ready, metrics]
