"""Subscriptions (admin): configure, inspect, pause, resume, reset, parked events; the action trail.

Every write is recorded in the admin action trail with the actor of the
`Eventstore-Actor` header (`unknown` when absent). A malformed body or an unknown
field is 400; a well-formed but impossible value is 422 with `errors: [{key, message}]`;
nothing is stored then. Secrets are never returned (`***`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from litestar import Request, Response, delete, get, post, put
from litestar.params import FromPath, Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.actor_header import actor_header
from api.bodies import action_body, json_body, malformed
from api.params import decode_cursor, encode_cursor, path_value, seq_in_path, seq_of_path, whole
from api.problems import ApiError, not_found, problem, unprocessable
from api.services import ServicesDep
from api.subscription_access import admin_of
from eventstore.json_input import whole_number
from eventstore.model import MAX_SEQ
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions.control import (
    NoParkedEvent,
    NotFound,
    SubscriptionAdmin,
    action_json,
    parked_json,
    record_json,
)

# The cursor kind of the action trail's pages (api.params: a cursor names its listing).
ACTIONS_CURSOR: Final = "actions"


def actor_of(request: Request[Any, Any, Any]) -> str | None:
    """The `Eventstore-Actor` header (`api.actor_header`): None when absent (`unknown`)."""
    return actor_header(request, required=False)


def _refused(exc: cfg.ConfigError) -> Response[Any]:
    status = 400 if exc.malformed else 422
    return problem(
        status,
        str(exc),
        kind="bad-request" if exc.malformed else "invalid-subscription",
        errors=exc.errors,
    )


async def _shown(admin: SubscriptionAdmin, name: str) -> dict[str, Any]:
    record = await admin.get(name)
    return {**record_json(record), "status": await admin.status(record)}


def _missing(name: str) -> ApiError:
    return not_found(f"no subscription named {name!r}")


@put(
    "/subscriptions/{name:str}",
    status_code=HTTP_200_OK,
    summary="Create (201) or update (200) a subscription; an update without a secret keeps it "
    "(for the same URL origin), and keeps its position (`note` says so when the start changed)",
)
async def put_subscription(
    services: ServicesDep,
    request: Request[Any, Any, Any],
    # Documented, checked by `cfg.parse` (a name it refuses is a 422 naming `name`).
    name: Annotated[str, Parameter(schema_extra={"pattern": cfg.NAME_RE.pattern})],
) -> Response[Any]:
    wanted = path_value(name)
    body = await json_body(request)
    admin = admin_of(services)
    try:
        # A secret reference reads this server's environment or files: over the API, only
        # one already stored (unless the operator allows them: EVENTSTORE_API_SECRET_REFERENCES).
        done = await admin.apply(
            wanted,
            body,
            actor=actor_of(request),
            references=services.settings.api_secret_references,
        )
    except cfg.ConfigError as exc:
        return _refused(exc)
    shown = await _shown(admin, wanted)
    # the position stays when an update changed the start: the reset that delivers from it
    reset = f"POST /v1/admin/subscriptions/{wanted}/reset with {json.dumps({'start': done.start})}"
    note = done.start_note(reset)
    if note is not None:
        shown["note"] = note
    return Response(shown, status_code=HTTP_201_CREATED if done.created else HTTP_200_OK)


@get("/subscriptions", summary="Every subscription: configuration (secrets as ***) and status")
async def list_subscriptions(services: ServicesDep) -> list[dict[str, Any]]:
    admin = admin_of(services)
    return [
        {**record_json(r), "status": await admin.status(r)}
        for r in await services.store.subscriptions.all()
    ]


@get(
    "/subscriptions/{name:str}", summary="A subscription: configuration (secrets as ***) and status"
)
async def get_subscription(services: ServicesDep, name: FromPath[str]) -> dict[str, Any]:
    wanted = path_value(name)
    try:
        return await _shown(admin_of(services), wanted)
    except NotFound:
        raise _missing(wanted) from None


@delete(
    "/subscriptions/{name:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Delete a subscription (its positions and parked events go; Redis entries stay)",
)
async def delete_subscription(
    services: ServicesDep, request: Request[Any, Any, Any], name: FromPath[str]
) -> None:
    wanted = path_value(name)
    try:
        await admin_of(services).delete(wanted, actor=actor_of(request))
    except NotFound:
        raise _missing(wanted) from None


async def _control(
    services: Any, request: Request[Any, Any, Any], name: str, action: str
) -> dict[str, Any]:
    wanted = path_value(name)
    admin = admin_of(services)
    # reset reads {"start"}; pause and resume take no field
    reset = action == "reset"
    body = await action_body(request, ("start",) if reset else (), required=reset)
    try:
        if action == "pause":
            await admin.pause(wanted, actor=actor_of(request))
        elif action == "resume":
            await admin.resume(wanted, actor=actor_of(request))
        else:
            await admin.reset(wanted, body["start"], actor=actor_of(request))
        return await _shown(admin, wanted)
    except NotFound:
        raise _missing(wanted) from None


@post(
    "/subscriptions/{name:str}/pause",
    status_code=HTTP_200_OK,
    summary="Pause a subscription",
)
async def pause_subscription(
    services: ServicesDep, request: Request[Any, Any, Any], name: FromPath[str]
) -> dict[str, Any]:
    return await _control(services, request, name, "pause")


@post(
    "/subscriptions/{name:str}/resume",
    status_code=HTTP_200_OK,
    summary="Resume a paused (or disabled) subscription",
)
async def resume_subscription(
    services: ServicesDep, request: Request[Any, Any, Any], name: FromPath[str]
) -> dict[str, Any]:
    return await _control(services, request, name, "resume")


@post(
    "/subscriptions/{name:str}/reset",
    status_code=HTTP_200_OK,
    summary="Deliver again from a start (body {start}); parked events and positions are forgotten",
)
async def reset_subscription(
    services: ServicesDep, request: Request[Any, Any, Any], name: FromPath[str]
) -> Response[Any]:
    try:
        return Response(await _control(services, request, name, "reset"))
    except cfg.ConfigError as exc:
        return _refused(exc)


@get("/subscriptions/{name:str}/parked", summary="Parked events of a subscription, in seq order")
async def list_parked(
    services: ServicesDep,
    name: FromPath[str],
    after: Annotated[int, whole(0, MAX_SEQ)] = 0,
    limit: Annotated[int, whole(1, 1000)] = 100,
) -> dict[str, Any]:
    wanted = path_value(name)
    try:
        page, more = await admin_of(services).parked(wanted, after_seq=after, limit=limit)
    except NotFound:
        raise _missing(wanted) from None
    return {"items": [parked_json(p) for p in page], "next": more}


@post(
    "/subscriptions/{name:str}/parked/replay",
    status_code=HTTP_200_OK,
    summary="Deliver parked events again, in order (optional body {up_to_seq})",
)
async def replay_parked(
    services: ServicesDep, request: Request[Any, Any, Any], name: FromPath[str]
) -> dict[str, Any]:
    wanted = path_value(name)
    given = (await action_body(request, ("up_to_seq",))).get("up_to_seq")
    up_to = None if given is None else whole_number(given)
    if given is not None and up_to is None:
        raise malformed([{"key": "up_to_seq", "message": "expected an integer (a seq)"}])
    if up_to is not None and not 1 <= up_to <= MAX_SEQ:  # a whole number, out of range
        raise unprocessable(
            f"up_to_seq: a seq is from 1 to {MAX_SEQ}, got {up_to}", kind=None, key="up_to_seq"
        )
    try:
        queued = await admin_of(services).replay(wanted, up_to, actor=actor_of(request))
    except NotFound:
        raise _missing(wanted) from None
    return {"queued": queued, "up_to_seq": up_to}


@post(
    "/subscriptions/{name:str}/parked/{seq:str}/skip",
    status_code=HTTP_200_OK,
    summary="Give up on one parked event (recorded in the action trail)",
)
async def skip_parked(
    services: ServicesDep,
    request: Request[Any, Any, Any],
    name: FromPath[str],
    seq: Annotated[str, seq_in_path()],
) -> dict[str, Any]:
    wanted = path_value(name)
    number = seq_of_path(seq)
    if number is None or not 1 <= number <= MAX_SEQ:  # as /v1/events/{seq}/proof reads one
        got = path_value(seq) if number is None else number
        raise ApiError(
            400, f"seq must be 1..{MAX_SEQ} in decimal digits, got {got!r}", kind="bad-request"
        )
    await action_body(request)  # a skip takes no field
    try:
        await admin_of(services).skip(wanted, number, actor=actor_of(request))
    except NoParkedEvent as exc:
        raise not_found(exc.detail) from None
    except NotFound:
        raise _missing(wanted) from None
    return {"skipped": number}


@get("/actions", summary="The admin action trail: who did what to which subscription, when")
async def list_actions(
    services: ServicesDep,
    after: Annotated[str | None, QueryParameter(max_length=200)] = None,
    limit: Annotated[int, whole(1, 1000)] = 100,
) -> dict[str, Any]:
    start = decode_cursor(ACTIONS_CURSOR, after)
    page, more = await admin_of(services).actions(after=start, limit=limit)
    return {
        "items": [action_json(a) for a in page],
        "next": encode_cursor(ACTIONS_CURSOR, more) if more is not None else None,
    }


ADMIN_ROUTES: list[Any] = [
    put_subscription,
    list_subscriptions,
    get_subscription,
    delete_subscription,
    pause_subscription,
    resume_subscription,
    reset_subscription,
    list_parked,
    replay_parked,
    skip_parked,
    list_actions,
]
