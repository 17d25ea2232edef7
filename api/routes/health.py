"""Liveness, readiness and Prometheus metrics (outside `/v1`: no key needed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Response, get

from api.metrics import CONTENT_TYPE, LogFigures, ProcessFigures, ProjectionFigures, TargetFigures
from api.problems import problem
from api.schemas import HealthOut
from api.services import NoAnswer, Services, ServicesDep
from api.subscription_metrics import subscription_metric_lines
from eventstore.capture_worker import CaptureWorker
from eventstore.errors import scrub
from eventstore.publishing import PublisherWorker, shown_target
from eventstore.worker_state import WorkerRecord
from projections.status import projection_statuses

log = logging.getLogger("eventstore.api")


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
    if not ok:
        return problem(503, detail, kind="not-ready", workers=services.local_workers())
    # Capture's standing problems (a refused signature, an unwritable listings' index) do
    # not take the process out of a load balancer, as capture runs on: the answer says them.
    standing = capture_problem(services)
    if standing is not None:
        detail = f"ready, but {services.capture} runs on with a problem: {standing}"
    return Response(HealthOut(status="ready", detail=detail))


def capture_problem(services: Services) -> str | None:
    """The standing problem of this process's capture worker (shown as its `last_error`)."""
    if services.capture is None:
        return None
    supervised = services.supervisor.get(services.capture)
    return supervised.problem if supervised is not None else None


@get("/metrics", summary="Prometheus text metrics", media_type=CONTENT_TYPE)
async def metrics(services: ServicesDep) -> Response[bytes]:
    # This process's workers: states and restarts are reported as they change; the
    # capture lag is measured now (the supervisor reports it to `services.metrics`).
    # The probes and the database figures are read side by side, each within about
    # SERVER_TIMEOUT_MS: a scrape is answered within about that, whatever the database does.
    mine = asyncio.ensure_future(services.supervisor.records(services.db_seconds))
    figures: LogFigures | None = None
    extra: list[str] = []
    try:
        if services.connected:
            try:
                figures, extra = await services.answered(store_figures(services, mine))
            except NoAnswer as exc:
                log.warning("/metrics: %s: eventstore_up 0", exc)
            except Exception as exc:  # the database is away: the process's own series still go
                log.warning(
                    "/metrics: the database could not be read (%s): eventstore_up 0",
                    scrub(f"{type(exc).__name__}: {exc}".split(", Timeout:")[0]),
                )
        await mine
    finally:
        if not mine.done():
            mine.cancel()
    body = services.metrics.exposition(
        figures, up=figures is not None, process=process_figures(services)
    )
    if extra:
        body = body.rstrip(b"\n") + b"\n" + "\n".join(extra).encode() + b"\n"
    return Response(body, media_type=CONTENT_TYPE)


async def store_figures(
    services: Services, mine: asyncio.Future[list[WorkerRecord]]
) -> tuple[LogFigures, list[str]]:
    """The log's figures and each stored subscription's series (read at this scrape)."""
    figures = await log_figures(services, mine)
    return figures, await subscription_metric_lines(services)


async def log_figures(
    services: Services, mine: asyncio.Future[list[WorkerRecord]] | None = None
) -> LogFigures:
    """What this scrape reads from the store (read here, by the scraping process only).

    `mine`: this instance's worker records, being probed meanwhile (None: probed here).
    The reads stop at the first failure (a database away fails each after one selection).
    """
    store = services.store
    head = await store.events.head()
    cp = await store.checkpoints.get(services.settings.ingester_role)
    updated = cp.updated_at if cp is not None else None
    lag = (services.clock.now() - updated).total_seconds() if updated is not None else None
    records = await services.worker_records(asyncio.shield(mine) if mine is not None else None)
    statuses = await projection_statuses(store, list(services.projections.values()), records)
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


def process_figures(services: Services) -> ProcessFigures:
    """Whether this process's capture refuses to sign; each checkpoint target's delivery."""
    refused: bool | None = None
    targets: list[TargetFigures] = []
    for supervised in services.supervisor.workers:
        worker = supervised.worker
        if isinstance(worker, CaptureWorker) and worker.signs:
            refused = worker.signing_refused is not None
        elif isinstance(worker, PublisherWorker):
            targets += [
                TargetFigures(shown_target(s.target), s.delivered, s.failing > 0, s.failures)
                for s in worker.publisher.status()
            ]
    return ProcessFigures(signing_refused=refused, targets=targets)


ROUTES: list[Any] = [live, ready, metrics]
