"""The verifiable log: checkpoints and RFC 9162 proofs (public), event proof files (read keys).

Checkpoints and proofs reveal only hashes, so they need no key; a proof file
carries the event itself, so it is read like any event.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get
from litestar.params import FromPath

from api.params import (
    DEFAULT_LIMIT,
    encode_cursor,
    int_cursor,
    listing,
    path_value,
    seq_in_path,
    seq_of_path,
    whole,
)
from api.problems import ApiError, unprocessable
from api.routes.streams import After, Limit, entity_key_param
from api.schemas import CheckpointPageOut, CheckpointSummaryOut
from api.services import ServicesDep
from eventstore import proofs, render
from eventstore.capture_worker import signing_refusal
from eventstore.codec import rfc3339
from eventstore.keys import answer_key
from eventstore.merkle import ProofError, count_events
from eventstore.model import MAX_SEQ

NOTE_TYPE: Final = "text/plain"  # Litestar adds "; charset=utf-8"
MAX_SIZE: Final = MAX_SEQ

Size = Annotated[int | None, whole(1, MAX_SIZE, description="a tree size")]
Seq = Annotated[int, whole(1, MAX_SIZE, description="an event's seq")]
From = Annotated[int, whole(1, MAX_SIZE, name="from", description="the old size")]
To = Annotated[int | None, whole(1, MAX_SIZE, name="to", description="the new size")]


# The query (or path) parameter each of the core's proof arguments comes from, by route.
_INCLUSION: Final = {"seq": "seq", "size": "size"}
_CONSISTENCY: Final = {"first": "from", "size": "to"}


def _unprocessable(exc: ProofError, names: dict[str, str] = _INCLUSION) -> ApiError:
    """422 naming the parameter at fault (`errors: [{key, message}]`)."""
    return unprocessable(
        str(exc), kind="unprocessable-proof", key=names.get(exc.argument, exc.argument)
    )


CHECKPOINTS_CURSOR: Final = "checkpoints"


@get(
    "/checkpoints",
    summary="The checkpoints made, smallest tree first: the sizes proofs and `?size=` can name",
)
async def list_checkpoints(
    services: ServicesDep, after: After = None, limit: Limit = DEFAULT_LIMIT
) -> CheckpointPageOut:
    start = int_cursor(CHECKPOINTS_CURSOR, after) or 0
    found = await services.store.merkle.checkpoints(after=start, limit=limit + 1)
    page = found[:limit]
    items = [
        CheckpointSummaryOut(
            size=c.size,
            root=c.root,
            signed=c.signed,
            created_at=rfc3339(c.created_at),
            cosignatures=len(c.cosignatures),
        )
        for c in page
    ]
    more = len(found) > limit
    return CheckpointPageOut(
        items=items, next=encode_cursor(CHECKPOINTS_CURSOR, page[-1].size) if more else None
    )


@get(
    "/checkpoint",
    summary="The latest (or size N's) signed checkpoint note with its cosignatures",
    media_type=NOTE_TYPE,
)
async def get_checkpoint(services: ServicesDep, size: Size = None) -> Response[str]:
    try:
        # A size beyond the tree is impossible (422, as for every proof); one inside it
        # where no checkpoint was made is a 404.
        await proofs.within_tree(services.store, size)
        checkpoint = await proofs.checkpoint_at(services.store, size)
    except proofs.NoCheckpoint as exc:
        # No latest checkpoint because capture refuses to sign: say that, and why.
        refused = signing_refusal(await services.worker_records()) if size is None else None
        detail = str(exc) if refused is None else f"{exc}: {refused}"
        raise ApiError(404, detail, kind="not-found") from exc
    except ProofError as exc:
        raise _unprocessable(exc) from exc
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
        raise _unprocessable(exc, _CONSISTENCY) from exc


@get(
    "/events/{seq:str}/proof",
    summary="A self-contained proof file (eventstore-proof/v1) of one event",
)
async def event_proof(
    services: ServicesDep, seq: Annotated[str, seq_in_path()], size: Size = None
) -> dict[str, Any]:
    number = seq_of_path(seq)
    if number is None or not 1 <= number <= MAX_SIZE:
        got = seq if number is None else number
        raise ApiError(
            400, f"seq must be 1..{MAX_SIZE} in decimal digits, got {got!r}", kind="bad-request"
        )
    try:
        found = await proofs.event_proof(services.store, number, size)
    except (proofs.NoCheckpoint, proofs.UnknownEvent) as exc:
        raise ApiError(404, str(exc), kind="not-found") from exc
    except ProofError as exc:
        raise _unprocessable(exc) from exc
    out: dict[str, Any] = msgspec.to_builtins(found)
    return out


@get(
    "/streams/{stream:str}/entities/{key:str}/proof",
    summary="An entity's events up to its newest one in tree `size`, with that event's inclusion proof",
)
async def entity_proof(
    services: ServicesDep,
    stream: FromPath[str],
    key: FromPath[str],
    size: Size = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> dict[str, Any]:
    stream, key = path_value(stream), entity_key_param(key)
    kind = listing("proof", stream, key)
    after_version = int_cursor(kind, after)
    try:
        await proofs.within_tree(services.store, size)
        checkpoint = await proofs.checkpoint_at(services.store, size)
    except proofs.NoCheckpoint as exc:
        raise ApiError(404, str(exc), kind="not-found") from exc
    except ProofError as exc:
        raise _unprocessable(exc) from exc
    n = checkpoint.size
    first, _ = await services.history.page_events(stream, key, limit=1)
    if not first:
        await services.history.history(stream, key, limit=1)  # 404 / 409 as history says
    # The newest event of the entity inside the tree (a few reads, whatever its length).
    newest = await proofs.newest_inside(services.store, stream, first[0].entity_id, n)
    if newest is None:
        raise ApiError(
            404, f"the entity has no event in the tree of {count_events(n)}", kind="not-found"
        )
    page, more = await services.history.page_events(
        stream,
        key,
        to_version=newest.version,
        limit=limit,
        after=None if after_version is None else str(after_version),
    )
    try:
        proof = await proofs.inclusion(services.store, newest.seq, n)
    except ProofError as exc:
        raise _unprocessable(exc) from exc
    return {
        "stream": stream,
        "entity_key": answer_key(newest.entity_id, key),
        "tree_size": n,
        "checkpoint": proofs.full_note(checkpoint),
        "newest": {"seq": newest.seq, "version": newest.version, "hash": newest.hash},
        "proof": proof,
        "events": [render.event_json(e) for e in page],
        "next": encode_cursor(kind, page[-1].version) if more and page else None,
    }


PUBLIC_ROUTES: list[Any] = [list_checkpoints, get_checkpoint, inclusion_proof, consistency_proof]
ROUTES: list[Any] = [event_proof, entity_proof]
