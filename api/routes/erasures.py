"""Admin: erasure requests (queued here, carried out by the capturing instance)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from api.params import path_value
from api.problems import not_found
from api.services import ServicesDep
from eventstore.codec import rfc3339
from eventstore.erasure import request_erasure

ACTOR_HEADER = "Eventstore-Actor"


class ErasureIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of an erasure request."""

    stream: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    entity_key: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class ErasureCreated(msgspec.Struct, kw_only=True, omit_defaults=True):
    request: str
    already_erased: bool = False
    already_queued: bool = False
    detail: str | None = None


class ErasureRequestOut(msgspec.Struct, kw_only=True):
    request: str
    stream: str
    entity_key: str
    state: str
    seq: int | None
    events_erased: int | None
    reason: str
    actor: str
    requested_at: str | None
    finished_at: str | None
    error: str | None


@post(
    "/erasures",
    status_code=HTTP_202_ACCEPTED,
    summary="Request the erasure of one entity's payloads (carried out by the capturing instance)",
)
async def create_erasure(
    services: ServicesDep,
    data: JSONBody[ErasureIn],
    actor: Annotated[str, HeaderParameter(name=ACTOR_HEADER, min_length=1, max_length=200)],
) -> Response[ErasureCreated]:
    outcome = await request_erasure(
        services.store,
        services.history,
        stream=data.stream,
        key=data.entity_key,
        reason=data.reason,
        actor=actor,
        now=services.clock.now(),
    )
    if outcome.already_erased:
        body = ErasureCreated(
            request=outcome.request.id,
            already_erased=True,
            detail=f"already erased by request {outcome.request.id} "
            f"(erased event seq {outcome.request.seq}): nothing new to erase",
        )
        return Response(body, status_code=HTTP_200_OK)
    if outcome.already_queued:
        body = ErasureCreated(
            request=outcome.request.id,
            already_queued=True,
            detail=f"request {outcome.request.id} for this entity is already queued",
        )
        return Response(body, status_code=HTTP_202_ACCEPTED)
    return Response(ErasureCreated(request=outcome.request.id), status_code=HTTP_202_ACCEPTED)


@get("/requests/{request_id:str}", summary="An erasure request's state")
async def get_erasure(services: ServicesDep, request_id: FromPath[str]) -> ErasureRequestOut:
    found = await services.store.erasures.get(path_value(request_id))
    if found is None:
        raise not_found(f"no request {path_value(request_id)!r}")
    return ErasureRequestOut(
        request=found.id,
        stream=found.stream,
        entity_key=found.entity_key,
        state=found.state,
        seq=found.seq if found.state == "done" else None,
        events_erased=found.events_erased,
        reason=found.reason,
        actor=found.actor,
        requested_at=rfc3339(found.requested_at) if found.requested_at else None,
        finished_at=rfc3339(found.finished_at) if found.finished_at else None,
        error=found.error,
    )


ADMIN_ROUTES: list[Any] = [create_erasure, get_erasure]
