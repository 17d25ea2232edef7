"""The audit query over the whole log, its exports (NDJSON, CSV), and the live tail (SSE)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.sse import ServerSentEvent, ServerSentEventMessage
from pymongo.errors import PyMongoError

from api.headers import preferred_media
from api.methods import is_head
from api.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    encode_cursor,
    field_path_of_query,
    int_cursor,
    parameter_refused,
    parse_bound,
    seconds_parameter,
    shown_names,
    time_parameter,
    whole,
)
from api.problems import ApiError, bad_request, unprocessable
from api.routes.streams import known_stream
from api.schemas import EventOut, EventsPage
from api.services import Services, ServicesDep
from eventstore import render
from eventstore.awaiting import within
from eventstore.codec import rfc3339, to_jsonable
from eventstore.decimal_text import decimal_int
from eventstore.errors import scrub
from eventstore.keys import event_typed_key
from eventstore.model import EVENT_TYPES, MAX_SEQ, Event, EventQuery
from eventstore.ports import EventLog
from eventstore.rfc3339 import parse_exact

log = logging.getLogger("eventstore.api")

JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
CSV: Final = "text/csv"
SSE: Final = "text/event-stream"
CSV_COLUMNS: Final = (
    "seq",
    "occurred_at",
    "stream",
    "entity_key",
    "typed_key",  # the entity alone, where `entity_key` may read as another value
    "version",
    "type",
    "actor",
    "changed_fields",
)
# Events per read while exporting or tailing (memory stays constant whatever the result size).
EXPORT_PAGE: Final = 500
EXPORT_LIMIT: Final = (
    "an export streams every match (`limit` sizes a JSON page only); bound it with "
    "`since`, `until` or `after` instead"
)
HEARTBEAT_SECONDS: Final = 15.0
# A live tail ended by the database's going away asks its client to come back after this
# (an EventSource reconnects by itself; while the database is away it is then answered 503).
RECONNECT_MS: Final = 5000
# The answer depends on `Accept` (JSON, NDJSON or CSV): caches must key on it (RFC 9110
# 12.5.5). The compression middleware adds `Accept-Encoding`.
VARY: Final = "Accept"

Text = Annotated[str | None, QueryParameter(max_length=512)]
# An entity key or an actor as the documents hold them: a key opens its entity in a path
# segment whatever its length, so the query takes as much (a URL line's own limit aside).
LongText = Annotated[str | None, QueryParameter(max_length=16_384)]


async def _query(
    services: Services,
    stream: str | None,
    entity: str | None,
    types: list[str] | None,
    field: str | None,
    actor: str | None,
    since: str | None,
    until: str | None,
) -> EventQuery:
    if entity is not None and stream is None:
        raise bad_request("`entity` needs `stream` (entity keys are per stream)")
    unknown = sorted(set(types or ()) - EVENT_TYPES)
    if unknown:
        raise bad_request(
            f"unknown event type {shown_names(unknown)} (known: {', '.join(sorted(EVENT_TYPES))})"
        )
    for name, value in (("stream", stream), ("field", field), ("actor", actor)):
        if value is not None and not value.strip():
            raise bad_request(f"`{name}` is empty")
    if field is not None:
        field_path_of_query("field", field)
    start = parse_bound("since", since, lower=True)
    end = parse_bound("until", until, lower=False)
    if start is not None and end is not None and _after(start, end, since, until):
        raise unprocessable(
            f"since {since} is after until {until}", kind="impossible-range", key="since"
        )
    if stream is not None:  # a misspelled stream is a 404, as on every other route
        await known_stream(services, stream)
    entity_ids = None
    if entity is not None and stream is not None:
        entity_ids = (await services.history.resolve(stream, entity),)
    return EventQuery(
        stream=stream,
        entity_ids=entity_ids,
        types=tuple(types or ()),
        field=field,
        actor=actor,
        since=start,
        until=end,
    )


def _wants(request: Request[Any, Any, Any]) -> str | None:
    """The export the client prefers by its `Accept` (quality values honoured), else None (JSON).

    A type the client gives `q=0` is not acceptable (RFC 9110 12.4.2), never chosen;
    when none of the three is acceptable the answer is JSON, as for an `Accept` that
    names none of them (the header is then disregarded, RFC 9110 12.5.1).
    """
    accept = request.headers.getall("accept", [])
    if not accept:
        return None
    best = preferred_media(", ".join(accept), (JSON, NDJSON, CSV))
    return best if best in (NDJSON, CSV) else None


@get(
    "/events",
    summary="Audit query over the log, in seq order (NDJSON or CSV export by Accept)",
    description=(
        "Criteria combine with AND. `type` may repeat. `field` matches an event whose "
        "`changed_fields` hold that dotted path, a path beneath it or a path above it (set "
        "whole: `customer` changed `customer.name`), as a subscription's `fields` does, and "
        "every `replaced`, `snapshot` or `deleted` event (a whole document written over or "
        "removed). `actor` matches that string, and the number (by value: `42` finds 42, "
        "NumberLong 42 and 42.0), ObjectId (24 hex digits) or boolean (`true`, `false`) it "
        "spells. `since` is inclusive, `until` exclusive, on "
        "`occurred_at`. An unknown `stream` is a 404. With "
        "`Accept: application/x-ndjson` or `text/csv` every match is streamed: `limit` is "
        "refused there (bound an export with `since`, `until` or `after`)."
    ),
    # Every answer, a problem too, says that it depends on `Accept` (api.problems).
    opt={"vary": VARY},
)
async def query_events(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    stream: Text = None,
    entity: LongText = None,
    types: Annotated[
        list[str] | None, QueryParameter(name="type", description="an event type; may repeat")
    ] = None,
    field: Text = None,
    actor: LongText = None,
    since: Annotated[str | None, time_parameter()] = None,
    until: Annotated[str | None, time_parameter()] = None,
    limit: Annotated[int, whole(1, MAX_LIMIT)] = DEFAULT_LIMIT,
    after: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> EventsPage | Response[Any]:
    media = _wants(request)
    if media is not None and "limit" in request.query_params:
        # Taken and ignored, it would stream every match as if it bounded them.
        raise parameter_refused("limit", EXPORT_LIMIT)
    q = await _query(services, stream, entity, types, field, actor, since, until)
    start = int_cursor("events", after) or 0
    if media is not None:
        # The first page is read before the response starts: an unreachable database
        # is a 503 problem, not a stream that breaks after a 200. A HEAD reads nothing.
        log = services.store.events
        head = is_head(request)
        first = [] if head else await log.query(q, after_seq=start, limit=EXPORT_PAGE)
        rows = _nothing() if head else _export(log, q, first, media)
        name = "events.ndjson" if media == NDJSON else "events.csv"
        content_type = media if media == NDJSON else f"{CSV}; charset=utf-8"
        # The content type goes in the headers too: the route's JSON media type
        # would otherwise take precedence over the Stream's own.
        return Stream(
            rows,
            media_type=content_type,
            headers={
                "content-type": content_type,
                "content-disposition": f'attachment; filename="{name}"',
                "vary": VARY,
            },
        )
    found = await services.store.events.query(q, after_seq=start, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    page = EventsPage(
        events=[msgspec.convert(render.event_json(e), EventOut) for e in found],
        next=encode_cursor("events", found[-1].seq) if more and found else None,
    )
    return Response(page, headers={"vary": VARY})


async def _nothing() -> AsyncIterator[bytes]:
    """The body of a HEAD of an export: none."""
    for _ in ():
        yield b""


async def _matches(log: EventLog, q: EventQuery, first: list[Event]) -> AsyncIterator[list[Event]]:
    """`first` (the first page of matches), then the following pages until the last."""
    page = first
    while page:
        yield page
        if len(page) < EXPORT_PAGE:
            return
        page = await log.query(q, after_seq=page[-1].seq, limit=EXPORT_PAGE)


# A cell a spreadsheet would read as a formula starts with one of these (OWASP, CSV injection).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_NUMBER: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def csv_cell(text: str) -> str:
    """`text` as a CSV cell no spreadsheet runs: a formula-like start is quoted with `'`.

    The keys, actors and field names come from the captured documents: a value such
    as `=HYPERLINK(...)` would run when the export is opened. A plain number (an
    integer key `-5`) is no formula and stays as it is; the NDJSON export is exact.
    """
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_row(e: Event) -> list[Any]:
    actor = to_jsonable(e.actor)
    return [
        e.seq,
        rfc3339(e.occurred_at),
        csv_cell(e.stream),
        csv_cell(e.entity_key),
        csv_cell(event_typed_key(e)),
        e.version,
        e.type,
        "" if actor is None else csv_cell(actor if isinstance(actor, str) else json.dumps(actor)),
        csv_cell(" ".join(e.changed_fields)),
    ]


async def _export(
    log: EventLog, q: EventQuery, first: list[Event], media: str
) -> AsyncIterator[bytes]:
    encoder = msgspec.json.Encoder()
    if media == CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue().encode()
    async for page in _matches(log, q, first):
        if media == NDJSON:
            yield b"".join(encoder.encode(render.event_json(e)) + b"\n" for e in page)
        else:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerows(_csv_row(e) for e in page)
            yield buffer.getvalue().encode()


@get(
    "/events/live",
    summary="Live tail as Server-Sent Events (id = seq, event = type, data = the event)",
    description=(
        "Starts after `after` (a seq) or `Last-Event-ID`, the later of the two when both are "
        "given (a reconnecting EventSource sends its first URL with the newest id: it resumes, "
        "never replays), else at the head; an empty `Last-Event-ID` is none. Either beyond "
        "the head is a 422 (it would pass over every event until the log reached it); an "
        "unknown `stream` is a 404. A comment "
        "heartbeat is sent every 15 s while idle. Unbounded unless `limit` (events) or "
        "`timeout` (seconds) is given."
    ),
    opt={"skip_schema_fuzz": True},
)
async def live_events(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    stream: Text = None,
    after: Annotated[int | None, whole(0, MAX_SEQ)] = None,
    limit: Annotated[int | None, whole(1, 10**9)] = None,
    seconds: Annotated[float | None, seconds_parameter(0, 86400, name="timeout")] = None,
    last_event_id: Annotated[str | None, HeaderParameter(name="last-event-id")] = None,
) -> ServerSentEvent:
    if stream is not None and not stream.strip():
        raise bad_request("`stream` is empty")
    start = after
    seen = None
    text = (last_event_id or "").strip()
    if text:  # an empty id is none (the SSE spec's reset; EventSource then sends no header)
        # as bounded as `after`: a seq past 2^62 is none, and MongoDB stores no int over 64 bits
        seen = decimal_int(text)
        if seen is None or not 0 <= seen <= MAX_SEQ:
            raise bad_request(f"Last-Event-ID must be an event's seq (0 to {MAX_SEQ})")
        # What the client has seen: a reconnect resumes after it, never before `after`.
        start = seen if start is None else max(start, seen)
    if stream is not None:  # a misspelled stream is a 404: it would wait for nothing forever
        await known_stream(services, stream)
    if start is not None:
        head = (await services.store.events.head()).seq
        for name, given in (("after", after), ("Last-Event-ID", seen)):
            if given is not None and given > head:
                raise _beyond_the_log(name, given, head)
    if is_head(request):  # the headers only: no tail, no query
        return _HeadersOnly()
    if start is None:
        start = (await services.store.events.head()).seq
    q = EventQuery(stream=stream)
    heartbeat = getattr(services, "heartbeat_seconds", HEARTBEAT_SECONDS)
    # The log is resolved before the response starts: no database is a 503 problem.
    events = services.store.events
    return ServerSentEvent(
        _tail(
            events,
            q,
            start,
            limit=limit,
            seconds=seconds,
            heartbeat=heartbeat,
            patience=services.db_seconds,
        )
    )


def _beyond_the_log(name: str, seq: int, head: int) -> ApiError:
    """422: a start past the head would pass over every event until the log reached it."""
    otherwise = ", or, without `after`, at the head" if name == "after" else ""
    return unprocessable(
        f"{name}: seq {seq} is beyond the log, whose head is seq {head}: a tail starts at "
        f"most after seq {head} (the next event is seq {head + 1}){otherwise}",
        kind="impossible-range",
        key=name,
    )


class _HeadersOnly(ServerSentEvent):
    """A HEAD of the live tail: the GET's status and headers, its end sent with them.

    Sent as a stream, the end would follow on a later turn of the loop (Litestar's SSE
    iterator first takes a thread's turn): a client that hangs up once it has the
    headers, as `curl -I` does, was then logged and counted as 499, its answer whole.
    """

    def __init__(self) -> None:
        # A HEAD answer gets no Content-Type from Litestar: the GET's, as Litestar writes it.
        super().__init__((), headers={"content-type": f"{SSE}; charset=utf-8"})

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        """Litestar's streaming response, as for a HEAD: the start and the end, nothing between."""
        return super().to_asgi_response(*args, **{**kwargs, "is_head_response": True})


async def _tail(
    events: EventLog,
    q: EventQuery,
    start: int,
    *,
    limit: int | None,
    seconds: float | None,
    heartbeat: float,
    patience: float | None = None,
) -> AsyncIterator[ServerSentEventMessage]:
    """Events after `start` as they are appended, until the database goes away.

    The database going away (an error, or no answer to a read within `patience`
    seconds) ends the stream cleanly: a comment saying so, with a `retry` for the
    client's reconnection, and one log line; never an error after the 200 was sent.
    """
    follow = _follow(
        events, q, start, limit=limit, seconds=seconds, heartbeat=heartbeat, patience=patience
    )
    try:
        async with contextlib.aclosing(follow):
            async for message in follow:
                yield message
    except (PyMongoError, TimeoutError) as exc:
        why = "no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
        log.warning("live tail ended: the database is unavailable (%s)", scrub(why))
        yield ServerSentEventMessage(
            comment="the database is unavailable; reconnect shortly", data=None, retry=RECONNECT_MS
        )


async def _follow(
    log: EventLog,
    q: EventQuery,
    start: int,
    *,
    limit: int | None,
    seconds: float | None,
    heartbeat: float,
    patience: float | None,
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Events after `start` as they are appended; a heartbeat comment after `heartbeat` quiet seconds.

    `seconds` bounds the whole connection (a backlog included), `limit` the events sent,
    `patience` each read of the log (TimeoutError). Appends to other streams wake the
    wait but do not count as output: a filtered tail still gets its heartbeat.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    sent = 0
    emitted = start
    quiet_since = time.monotonic()
    encoder = msgspec.json.Encoder()
    while True:
        # The head is read before the query: an append after it wakes the wait below.
        head = (await within(log.head(), patience)).seq
        page = await within(log.query(q, after_seq=emitted, limit=EXPORT_PAGE), patience)
        for e in page:
            yield ServerSentEventMessage(
                data=encoder.encode(render.event_json(e)).decode(), event=e.type, id=e.seq
            )
            emitted = e.seq
            sent += 1
            if limit is not None and sent >= limit:
                return
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return
        if page:
            quiet_since = now
            continue
        if now - quiet_since >= heartbeat:
            # A comment line only: with a (default, empty) data line, EventSource would
            # dispatch an empty message event for every heartbeat.
            yield ServerSentEventMessage(comment="heartbeat", data=None)
            quiet_since = now
        wait = heartbeat - (now - quiet_since)
        if deadline is not None:
            wait = min(wait, deadline - now)
        await log.wait_for_append(max(head, emitted), wait)


ROUTES: list[Any] = [query_events, live_events]

__all__ = ["ROUTES"]


def _after(start: datetime, end: datetime, since: str | None, until: str | None) -> bool:
    """Whether `since` is after `until`: by their bounds, or, where both are raised to one
    microsecond, by the digits beyond it (`…1230000002Z` is after `…1230000001Z`)."""
    if start != end or since is None or until is None:
        return start > end
    try:
        return parse_exact(since) > parse_exact(until)
    except ValueError:  # outside years 1-9999 in UTC: not both in one microsecond
        return False
