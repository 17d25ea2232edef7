"""Background workers: every instance's states (read keys apply); admin: restart a failed one."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from api.bodies import action_body
from api.params import path_value
from api.problems import ApiError, not_found
from api.schemas import WorkerOut
from api.services import ServicesDep
from eventstore.codec import rfc3339
from eventstore.worker_state import WorkerRecord


def worker_out(r: WorkerRecord) -> WorkerOut:
    """The API shape of a worker record."""
    return WorkerOut(
        name=r.name,
        kind=r.kind,
        instance=r.instance,
        state=r.state,
        since=rfc3339(r.since),
        restarts=r.restarts,
        last_error=r.last_error,
        position=r.position,
        lag=r.lag,
        lag_seconds=None if r.lag_seconds is None else round(r.lag_seconds, 3),
    )


@get(
    "/workers",
    summary="Every instance's background workers: state, since, restarts, last error, lag",
)
async def list_workers(services: ServicesDep) -> list[WorkerOut]:
    return [worker_out(r) for r in await services.worker_records()]


@post(
    "/workers/{name:str}/restart",
    status_code=HTTP_200_OK,
    summary="Restart a failed (or stopped) worker of this instance",
)
async def restart_worker(
    request: Request[Any, Any, Any], services: ServicesDep, name: FromPath[str]
) -> WorkerOut:
    await action_body(request)  # none, or `{}`: a restart takes no field (as pause, resume, skip)
    wanted = path_value(name)
    supervisor = services.supervisor
    if supervisor.get(wanted) is None:
        elsewhere = sorted(
            {r.instance for r in await services.worker_records() if r.name == wanted}
        )
        if elsewhere:
            raise ApiError(
                409,
                f"{wanted} runs on another instance ({', '.join(elsewhere)}): "
                "send the restart to that instance",
                kind="conflict",
            )
        raise not_found(f"no worker named {wanted!r} on this instance")
    try:
        supervised = await supervisor.restart(wanted)
    except ValueError as exc:
        raise ApiError(409, str(exc), kind="conflict") from None
    return worker_out(supervised.record())


ROUTES: list[Any] = [list_workers]
ADMIN_ROUTES: list[Any] = [restart_worker]
