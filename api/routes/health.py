"""Liveness, readiness and Prometheus metrics (outside `/v1`: no key needed)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from api.metrics import CONTENT_TYPE, LogFigures, ProjectionFigures
from api.problems import problem
from api.schemas import HealthOut
from api.services import Services, ServicesDep
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


@get("/metrics", summary="Prometheus text metrics", media_type=CONTENT_TYPE)
async def metrics(services: ServicesDep) -> Response[bytes]:
    # This process's workers: states and restarts are reported as they change; the
    # capture lag is measured now (the supervisor reports it to `services.metrics`).
    await services.supervisor.records()
    figures = await log_figures(services) if services.connected else None
    body = services.metrics.exposition(figures, up=services.connected)
    if services.connected:
        # Each stored subscription's series, read from the store at this scrape.
        extra = await subscription_metric_lines(services)
        if extra:
            body = body.rstrip(b"\n") + b"\n" + "\n".join(extra).encode() + b"\n"
    return Response(body, media_type=CONTENT_TYPE)


async def log_figures(services: Services) -> LogFigures:
    """What this scrape reads from the store (read here, by the scraping process only)."""
    store = services.store
    head = await store.events.head()
    cp = await store.checkpoints.get(services.settings.ingester_role)
    updated = cp.updated_at if cp is not None else None
    lag = (services.clock.now() - updated).total_seconds() if updated is not None else None
    statuses = await projection_statuses(
        store, list(services.projections.values()), await services.worker_records()
    )
    return LogFigures(
        head_seq=head.seq,
        ingest_lag_seconds=lag,
        last_checkpoint=updated,
        projections=[
            ProjectionFigures(
                s.name, s.position, s.lag, s.state, s.problems, s.rebuild_needed, s.state_reads
            )
            for s in statuses
        ],
    )


ROUTES: list[Any] = [live, ready, metrics]
