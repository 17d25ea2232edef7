"""Query-parameter rules shared by the routes: cursors, times, keys, unknown parameters.

Cursors are opaque to clients: `base64url("<kind>:<value>")`, so a cursor of one
listing is refused by another instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final, NamedTuple
from urllib.parse import unquote

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ParamType
from litestar.handlers import BaseRouteHandler
from litestar.params import Parameter, ParameterKwarg, QueryParameter

from api.problems import bad_request
from eventstore.decimal_text import canonical_int, decimal_int
from eventstore.model import MAX_SEQ
from eventstore.rfc3339 import NoSuchTime, NotRfc3339, NoZone, parse_rfc3339

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000


# -- declarations whose OpenAPI schema says exactly what is accepted -------------------------
def whole(ge: int, le: int, **kwargs: Any) -> Any:
    """A query parameter of whole numbers from `ge` to `le`, its bounds integers in the schema.

    Litestar writes `ge`/`le` of an `int` as floats: 2**62 became 4.611686018427388e+18,
    which a client reads as a larger number than the API takes.
    """
    return QueryParameter(ge=ge, le=le, schema_extra={"minimum": ge, "maximum": le}, **kwargs)


def seq_in_path() -> Any:
    """A path parameter naming an event's seq, documented as the integer it is (with bounds).

    The route takes it as text (`{seq:str}`) and reads it with `seq_of_path`: Litestar
    reads an `{x:int}` segment with `int()`, which takes `1_0`, `+1`, `01`, ` 1` and
    non-ASCII digits, so `/v1/events/1_0/proof` was the proof of event 10.
    """
    return Parameter(schema_extra={"type": "integer", "minimum": 1, "maximum": MAX_SEQ})


def seq_of_path(value: str) -> int | None:
    """A path segment as the integer it writes in ASCII decimal digits; None for any other text."""
    return canonical_int(path_value(value))


def time_parameter(**kwargs: Any) -> Any:
    """A query parameter holding an RFC 3339 time with a zone: JSON Schema's `date-time`."""
    return QueryParameter(
        max_length=64,
        schema_extra={"format": "date-time"},
        description="RFC 3339 time with a zone, e.g. 2026-11-26T14:03:00.123Z",
        **kwargs,
    )


def encode_cursor(kind: str, value: str | int) -> str:
    """An opaque page cursor for a listing `kind`."""
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def listing(kind: str, *parts: str) -> str:
    """The cursor kind of one listing of `kind` (a stream's entities, an entity's history).

    A cursor carries it, so a `next` of one stream or entity is refused by another
    instead of silently starting another listing part-way.
    """
    if not parts:
        return kind
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]
    return f"{kind}.{digest}"


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    """The value a cursor of this listing carries; 400 for anything else."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request(f"malformed page cursor {cursor!r}: pass back a `next` value") from None
    prefix, _, value = raw.partition(":")
    if prefix != kind or not value:
        raise bad_request(f"page cursor {cursor!r} does not belong to this listing")
    return value


def int_cursor(kind: str, cursor: str | None) -> int | None:
    """A cursor carrying a non-negative integer (a seq or a version)."""
    value = decode_cursor(kind, cursor)
    if value is None:
        return None
    n = decimal_int(value)
    if n is None or not 0 <= n <= MAX_SEQ:  # a crafted cursor: MongoDB stores no larger int
        raise bad_request(f"page cursor {cursor!r} does not belong to this listing")
    return n


def parse_time(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 time with a zone (`Z` or an offset); a time without one is refused."""
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except NotRfc3339:
        raise bad_request(
            f"{name}: {value!r} is not an RFC 3339 time (e.g. 2026-11-26T14:03:00.123Z)"
        ) from None
    except NoZone:
        raise bad_request(
            f"{name}: {value!r} has no time zone; add `Z` or an offset like +01:00"
        ) from None
    except NoSuchTime as exc:
        raise bad_request(f"{name}: {exc}") from None


def path_value(value: str) -> str:
    """A path parameter as sent: the app keeps `%2F` and `%25` encoded for routing (see app.py)."""
    return unquote(value) if "%" in value else value


# Handler arguments Litestar fills from the connection itself, never from the query.
_RESERVED: Final = frozenset(
    {"request", "socket", "scope", "state", "headers", "cookies", "query", "body", "data"}
    | {"receive", "send"}
)


class _Taken(NamedTuple):
    """The query parameters a handler takes, and those of them that may repeat (lists)."""

    names: frozenset[str]
    repeatable: frozenset[str]


def _declared(handler: BaseRouteHandler, path_params: set[str]) -> _Taken:
    """The query parameters a handler takes: not its path parameters, dependencies or reserved names."""
    names: set[str] = set()
    repeatable: set[str] = set()
    dependencies = set(handler.resolve_dependencies())
    for name, param in handler.parsed_fn_signature.parameters.items():
        if name in dependencies or name in _RESERVED:
            continue
        kwarg = param.kwarg_definition
        query = name
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.param_type is not ParamType.QUERY or name in path_params:
                continue  # a header, cookie or path parameter
            query = kwarg.name or kwarg.query or name
        elif name in path_params:
            continue
        names.add(query)
        if param.is_non_string_collection or any(
            t.is_non_string_collection for t in param.inner_types or ()
        ):
            repeatable.add(query)
    return _Taken(frozenset(names), frozenset(repeatable))


# Headers that carry one value: sent twice, which one counts would be the server's guess
# (who acted, in an audit trail; where a live tail resumes). `Authorization` is the guards'.
SINGLE_HEADERS: Final = ("Eventstore-Actor", "Last-Event-ID")


def refuse_repeated(connection: ASGIConnection[Any, Any, Any, Any], names: Iterable[str]) -> None:
    """400 for a header of `names` sent more than once."""
    for name in names:
        times = len(connection.headers.getall(name, []))
        if times > 1:
            raise bad_request(f"the {name} header is given {times} times; send it once")


# Per handler (weakly: apps built and dropped, as in tests, must not leave ids to be reused).
_ALLOWED_CACHE: weakref.WeakKeyDictionary[BaseRouteHandler, _Taken] = weakref.WeakKeyDictionary()


async def refuse_unknown_parameters(request: Request[Any, Any, Any]) -> None:
    """400 for a query parameter the endpoint does not take (a misspelled filter must not widen a query).

    And for one given twice that takes one value: `?actor=alice&actor=bob` would
    otherwise answer for bob alone, as if for both. Endpoints with free-form
    filters (`opt={"free_query": True}`) check their filters themselves; the
    parameters they declare (`limit`, `after`) are still refused twice.
    """
    refuse_repeated(request, SINGLE_HEADERS)
    handler = request.route_handler
    try:
        allowed = _ALLOWED_CACHE.get(handler)
    except TypeError:  # a handler without weak references (Litestar's own OPTIONS handler)
        allowed = _declared(handler, set(request.path_params))
    if allowed is None:
        allowed = _ALLOWED_CACHE[handler] = _declared(handler, set(request.path_params))
    query = request.query_params
    if handler.opt.get("free_query"):
        refuse_repeated_query(request, (allowed.names & set(query.keys())) - allowed.repeatable)
        return
    unknown = sorted(set(query.keys()) - allowed.names)
    if unknown:
        known = ", ".join(sorted(allowed.names)) or "none"
        raise bad_request(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (this endpoint takes: {known})"
        )
    refuse_repeated_query(request, set(query.keys()) - allowed.repeatable)


def refuse_repeated_query(request: Request[Any, Any, Any], names: Iterable[str]) -> None:
    """400 for a query parameter of `names` given more than once (each takes one value)."""
    for name in sorted(names):
        times = len(request.query_params.getall(name))
        if times > 1:
            raise bad_request(f"query parameter {name} is given {times} times; give it once")
