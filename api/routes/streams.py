"""Streams and entities: listing, history, point in time, diff, verification."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from bson.errors import BSONError
from litestar import get
from litestar.params import FromPath, QueryParameter

from api.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    encode_cursor,
    int_cursor,
    listing,
    parse_time,
    path_value,
    time_parameter,
    whole,
)
from api.problems import ApiError, bad_request
from api.schemas import (
    DiffOut,
    EntitiesPage,
    EntityOut,
    EntityVerdictOut,
    HistoryOut,
    LogVerdictOut,
    StateOut,
    StreamOut,
    StreamVerdictOut,
)
from api.services import Services, ServicesDep
from eventstore import render
from eventstore.codec import rfc3339
from eventstore.history import UnknownStream
from eventstore.keys import (
    InvalidKey,
    answer_key,
    candidates,
    is_typed,
    parse_typed,
    relaxed_json,
    shared_bare_keys,
    shown_key,
    typed_key,
)
from eventstore.model import HASH_PATTERN, MAX_SEQ, Head
from eventstore.rfc3339 import OutsideUtcYears, parse_rfc3339

Limit = Annotated[int, whole(1, MAX_LIMIT, description=f"page size, 1..{MAX_LIMIT}")]
After = Annotated[
    str | None,
    QueryParameter(description="the `next` value of the previous page", max_length=200),
]
Version = Annotated[int, whole(1, MAX_SEQ)]
# (The constraint goes on the whole optional type: on `Version | None` it would be lost.)
MaybeVersion = Annotated[int | None, whole(1, MAX_SEQ)]
Path = FromPath[str]


@get("/streams", summary="Every captured stream with its counts")
async def list_streams(services: ServicesDep) -> list[StreamOut]:
    stats = await services.store.events.streams()
    return [
        StreamOut(
            stream=s.stream,
            entities=s.entities,
            events=s.events,
            last_seq=s.last_seq,
            last_event_at=rfc3339(s.last_event_at) if s.last_event_at else None,
        )
        for s in stats
    ]


async def known_stream(services: Services, stream: str) -> None:
    """Nothing, for a captured stream or one in the log; else the unknown-stream 404."""
    captured = services.settings.collections
    if stream in captured:
        return
    names = {s.stream for s in await services.store.events.streams()}
    if stream not in names:
        raise UnknownStream(
            f"unknown stream {shown_key(stream)} (captured: {', '.join(sorted(set(captured) | names))})"
        )


@get("/streams/{stream:str}/entities", summary="A stream's entities, most recently changed first")
async def list_entities(
    services: ServicesDep,
    stream: Path,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> EntitiesPage:
    stream = path_value(stream)
    kind = listing("entities", stream)
    before = int_cursor(kind, after)
    await known_stream(services, stream)
    rows = await services.store.events.entities(stream, limit=limit + 1, before_seq=before)
    more = len(rows) > limit
    rows = rows[:limit]
    # A bare key naming two entities (the integer 42 and the string "42") is handed out
    # typed: given back as it is, it would be a 409 (one query for the page).
    bare = [r.entity_key for r in rows if not is_typed(r.entity_key)]
    options = [c for key in bare for c in candidates(key)]
    existing = await services.store.events.existing_entity_ids(stream, options) if bare else []
    shared = shared_bare_keys(bare, existing)
    return EntitiesPage(
        items=[
            EntityOut(
                entity_key=typed_key(r.entity_id) if r.entity_key in shared else r.entity_key,
                entity_id=relaxed_json(r.entity_id),
                version=r.version,
                exists=r.exists,
                last_type=r.last_type,
                last_event_at=rfc3339(r.last_event_at),
            )
            for r in rows
        ],
        next=encode_cursor(kind, rows[-1].last_seq) if more and rows else None,
    )


ENTITY = "/streams/{stream:str}/entities/{key:str}"


def entity_key_param(value: str) -> str:
    """An entity key from the path; 400 for a `json:` key no Extended JSON parser accepts.

    (`keys.parse_typed` lets a few malformed forms escape as other errors: a `$date`
    out of range, nesting deeper than the parser's recursion limit.)
    """
    key = path_value(value)
    if key.startswith("json:"):
        try:
            parse_typed(key)
        except InvalidKey:
            pass  # the history service reports it, with its reason
        except (BSONError, RecursionError, OverflowError, ValueError, TypeError) as exc:
            raise bad_request(
                f"json: needs Extended JSON of a BSON value ({type(exc).__name__})"
            ) from None
    return key


@get(ENTITY + "/history", summary="An entity's events in version order, each with its diff")
async def entity_history(
    services: ServicesDep,
    stream: Path,
    key: Path,
    from_version: Version = 1,
    to_version: MaybeVersion = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> HistoryOut:
    stream, key = path_value(stream), entity_key_param(key)
    kind = listing("history", stream, key)
    version = int_cursor(kind, after)
    window: dict[str, Any] = {
        "from_version": from_version,
        "to_version": to_version,
        "limit": limit,
        "after": None if version is None else str(version),
    }
    # Rendered entries are cached (events never change): a page whose events are all
    # known costs one read and no fold.
    events, more = await services.history.page_events(stream, key, **window)
    cached = services.rendered.get_all(events) if events else None
    if cached is not None:
        return HistoryOut(
            stream=stream,
            entity_key=answer_key(events[0].entity_id, key),
            events=cached,
            next=encode_cursor(kind, events[-1].version) if more else None,
        )
    page = await services.history.history(stream, key, **window)
    return HistoryOut(
        stream=page.stream,
        entity_key=page.entity_key,
        events=services.rendered.render(page.events),
        next=encode_cursor(kind, page.next) if page.next is not None else None,
    )


@get(ENTITY + "/state", summary="The entity at a time or a version (neither: now)")
async def entity_state(
    services: ServicesDep,
    stream: Path,
    key: Path,
    at: Annotated[str | None, time_parameter()] = None,
    version: MaybeVersion = None,
) -> StateOut:
    if at is not None and version is not None:
        raise bad_request("give `at` or `version`, not both")
    when = _instant(at)
    state = await services.history.state(
        path_value(stream), entity_key_param(key), at=when, version=version
    )
    return msgspec.convert(render.state_json(state), StateOut)


def _instant(at: str | None) -> datetime | None:
    """`at` as an instant; a valid time whose instant lies before year 1 or after year 9999
    in UTC (`0001-01-01T00:30:00+01:00`) is before or after every stored time, as the
    query bounds take it: the state there is none (a 404 naming the first event) or now."""
    if at is not None:
        try:
            parse_rfc3339(at)
        except OutsideUtcYears as outside:
            return (
                datetime.max.replace(tzinfo=UTC)
                if outside.later
                else datetime.min.replace(tzinfo=UTC)
            )
        except ValueError:
            pass  # refused below, with the reason
    return parse_time("at", at)


@get(ENTITY + "/diff", summary="What changed between two versions, field by field")
async def entity_diff(
    services: ServicesDep,
    stream: Path,
    key: Path,
    from_version: Version,
    to_version: Version,
) -> DiffOut:
    d = await services.history.diff(
        path_value(stream), entity_key_param(key), from_version, to_version
    )
    return msgspec.convert(render.diff_json(d), DiffOut)


@get(ENTITY + "/verify", summary="Recompute one entity's hash chain")
async def verify_entity(services: ServicesDep, stream: Path, key: Path) -> EntityVerdictOut:
    verdict = await services.history.verify_entity(path_value(stream), entity_key_param(key))
    return msgspec.convert(render.entity_verdict_json(verdict), EntityVerdictOut)


@get("/streams/{stream:str}/verify", summary="Recompute every entity chain of a stream")
async def verify_stream(services: ServicesDep, stream: Path) -> StreamVerdictOut:
    stream = path_value(stream)
    await known_stream(services, stream)
    verdict = await services.history.verify_stream(stream)
    return msgspec.convert(render.stream_verdict_json(verdict), StreamVerdictOut)


# A log_hash as `eventstore verify --head` prints it (and `--against-head` reads it).
HEX64 = "^" + HASH_PATTERN.pattern + "$"


@get(
    "/verify", summary="Recompute the global chain along seq, against the recorded or a given head"
)
async def verify_log(
    services: ServicesDep,
    head_seq: Annotated[int | None, whole(0, MAX_SEQ)] = None,
    head_hash: Annotated[
        str | None,
        QueryParameter(
            description="the head's log_hash: 64 lowercase hexadecimal digits",
            schema_extra={"pattern": HEX64, "minLength": 64, "maxLength": 64},
        ),
    ] = None,
) -> LogVerdictOut:
    if (head_seq is None) != (head_hash is None):
        raise bad_request("give both head_seq and head_hash (as `eventstore verify --head` prints)")
    expected: Head | None = None
    if head_seq is not None and head_hash is not None:
        if not HASH_PATTERN.fullmatch(head_hash):
            shown = repr(head_hash) if len(head_hash) <= 80 else f"{len(head_hash)} characters"
            message = f"must be 64 lowercase hexadecimal digits (a log_hash), got {shown}"
            raise ApiError(
                400,
                f"head_hash: {message}",
                kind="bad-request",
                errors=[{"key": "head_hash", "message": message, "source": "query"}],
            )
        expected = Head(seq=head_seq, log_hash=head_hash)
    verdict = await services.history.verify_log(expected)
    return msgspec.convert(render.log_verdict_json(verdict), LogVerdictOut)


ROUTES: list[Any] = [
    list_streams,
    list_entities,
    entity_history,
    entity_state,
    entity_diff,
    verify_entity,
    verify_stream,
    verify_log,
]

__all__ = ["ROUTES", "ApiError"]
