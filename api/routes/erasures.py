"""Admin: erasure requests (queued here, carried out by the capturing instance)."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from api.actor_header import ACTOR_HEADER, actor_header
from api.bodies import ErasureIn, malformed, problem_spec, struct_body
from api.params import path_value
from api.problems import not_found
from api.services import ServicesDep
from eventstore.codec import rfc3339
from eventstore.erasure import MAX_ACTOR, MAX_REASON, request_erasure, text_fault
from eventstore.keys import typed_key


class ErasureCreated(msgspec.Struct, kw_only=True, omit_defaults=True):
    request: str
    already_erased: bool = False
    already_queued: bool = False
    detail: str | None = None


class ErasureRequestOut(msgspec.Struct, kw_only=True):
    request: str
    stream: str
    entity_key: str
    # The entity named alone: `int:42` where `entity_key` `42` is also the string "42".
    typed_key: str
    state: str
    seq: int | None
    events_erased: int | None
    reason: str
    actor: str
    requested_at: str | None
    finished_at: str | None
    error: str | None


# Every answer of a request, beside the problems every admin operation may give (api.app).
ERASURE_RESPONSES: Final[dict[int, ResponseSpec]] = {
    HTTP_200_OK: ResponseSpec(
        ErasureCreated,
        description="Nothing is left to erase: `already_erased: true`, `request` is the request "
        "that erased the entity, `detail` says so",
        generate_examples=False,
    ),
    HTTP_202_ACCEPTED: ResponseSpec(
        ErasureCreated,
        description="Queued: `{request}`; `already_queued: true` with that request (and "
        "`detail`) when one for the entity is queued already",
        generate_examples=False,
    ),
    409: problem_spec(
        "Conflict: the erasure cannot be carried out: a bare key naming two entities "
        "(`typed_keys` lists the typed keys to use), `$stream` (the stream's own record, not an "
        "entity), or an entity with events of hash scheme 1 (their hash covers the payload)"
    ),
}


@post(
    "/erasures",
    status_code=HTTP_202_ACCEPTED,
    summary="Request the erasure of one entity's payloads (carried out by the capturing instance)",
    responses=ERASURE_RESPONSES,
)
async def create_erasure(
    services: ServicesDep,
    request: Request[Any, Any, Any],
    header: Annotated[
        str | None,
        HeaderParameter(
            name=ACTOR_HEADER,
            required=True,
            description="Who asks (UTF-8): recorded as the `erased` event's actor",
            # A string (`str | None` only lets `actor_header` say what is missing).
            schema_extra={"oneOf": None, "type": "string", "minLength": 1, "maxLength": MAX_ACTOR},
        ),
    ] = None,
) -> Response[ErasureCreated]:
    # Documented above; read here from the raw bytes as UTF-8 (Litestar reads Latin-1).
    del header
    actor = actor_header(request, required=True)
    data = await struct_body(request, ErasureIn)
    fault = text_fault(data.reason, MAX_REASON)
    if fault is not None:
        raise malformed([{"key": "reason", "message": fault}])
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
        typed_key=typed_key(found.entity_id),
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
