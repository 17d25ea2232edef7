"""The verifiable log: checkpoints and RFC 9162 proofs (public), event proof files (read keys).

Checkpoints and proofs reveal only hashes, so they need no key; a proof file
carries the event itself, so it is read like any event.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get
from litestar.params import FromPath, QueryParameter

from api.problems import ApiError
from api.services import ServicesDep
from eventstore import proofs
from eventstore.merkle import ProofError

NOTE_TYPE: Final = "text/plain"  # Litestar adds "; charset=utf-8"
MAX_SIZE: Final = 2**62

Size = Annotated[int | None, QueryParameter(ge=1, le=MAX_SIZE, description="a tree size")]
Seq = Annotated[int, QueryParameter(ge=1, le=MAX_SIZE, description="an event's seq")]
From = Annotated[int, QueryParameter(ge=1, le=MAX_SIZE, name="from", description="the old size")]
To = Annotated[int | None, QueryParameter(ge=1, le=MAX_SIZE, name="to", description="the new size")]


def _unprocessable(exc: ProofError) -> ApiError:
    return ApiError(422, str(exc), kind="unprocessable-proof")


@get(
    "/checkpoint",
    summary="The latest (or size N's) signed checkpoint note with its cosignatures",
    media_type=NOTE_TYPE,
)
async def get_checkpoint(services: ServicesDep, size: Size = None) -> Response[str]:
    try:
        checkpoint = await proofs.checkpoint_at(services.store, size)
    except proofs.NoCheckpoint as exc:
        raise ApiError(404, str(exc), kind="not-found") from exc
    return Response(proofs.full_note(checkpoint), media_type=NOTE_TYPE)


@get("/proof/inclusion", summary="RFC 9162 inclusion proof of event `seq` in tree `size`")
async def inclusion_proof(services: ServicesDep, seq: Seq, size: Size = None) -> dict[str, Any]:
    try:
        return await proofs.inclusion(services.store, seq, size)
    except proofs.NoCheckpoint as exc:
        raise ApiError(404, str(exc), kind="not-found") from exc
    except ProofError as exc:
        raise _unprocessable(exc) from exc


@get("/proof/consistency", summary="RFC 9162 consistency proof between tree sizes `from` and `to`")
async def consistency_proof(
    services: ServicesDep, first: From, second: To = None
) -> dict[str, Any]:
    try:
        return await proofs.consistency(services.store, first, second)
    except proofs.NoCheckpoint as exc:
        raise ApiError(404, str(exc), kind="not-found") from exc
    except ProofError as exc:
        raise _unprocessable(exc) from exc


@get(
    "/events/{seq:int}/proof",
    summary="A self-contained proof file (eventstore-proof/v1) of one event",
)
async def event_proof(
    services: ServicesDep, seq: FromPath[int], size: Size = None
) -> dict[str, Any]:
    if not 1 <= seq <= MAX_SIZE:
        raise ApiError(400, f"seq must be 1..{MAX_SIZE}, got {seq}", kind="bad-request")
    try:
        found = await proofs.event_proof(services.store, seq, size)
    except (proofs.NoCheckpoint, proofs.UnknownEvent) as exc:
        raise ApiError(404, str(exc), kind="not-found") from exc
    except ProofError as exc:
        raise _unprocessable(exc) from exc
    out: dict[str, Any] = msgspec.to_builtins(found)
    return out


PUBLIC_ROUTES: list[Any] = [get_checkpoint, inclusion_proof, consistency_proof]
ROUTES: list[Any] = [event_proof]
