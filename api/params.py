"""Query-parameter rules of the routes: cursors, times, keys, field paths, unknown parameters.

Cursors are opaque to clients: `base64url("<kind>:<value>")`, so a cursor of one
listing is refused by another instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple
from urllib.parse import unquote, unquote_to_bytes

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ParamType
from litestar.handlers import BaseRouteHandler
from litestar.params import Parameter, ParameterKwarg, QueryParameter
from litestar.typing import FieldDefinition

from api.problems import ApiError, bad_request
from eventstore.codec import PAST_LAST_MS
from eventstore.decimal_text import canonical_int, decimal_float, decimal_int
from eventstore.keys import shown_key
from eventstore.model import MAX_SEQ
from eventstore.rfc3339 import NoSuchTime, NotRfc3339, NoZone, OutsideUtcYears, parse_rfc3339
from eventstore.subscriptions.config import is_field_path

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
# The longest time a query takes (`since`, `until`, `at`): RFC 3339 allows any fraction of a
# second, and the API compares it exactly; a time of 35 characters leaves 221 digits for it.
TIME_CHARS: Final = 256


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


# Characters of a refused value quoted back: enough to recognise it, not a page echoed.
_QUOTED: Final = 60


def _as_sent(text: str) -> str:
    if len(text) <= _QUOTED:
        return repr(text)
    return f"{text[:_QUOTED]!r}... ({len(text)} characters)"


def _span(ge: int | None, le: int | None) -> str:
    if ge is not None and le is not None:
        return f"{ge}..{le}"
    if ge is not None:
        return f"{ge} or more"
    return "a whole number" if le is None else f"{le} or less"


def whole_of_query(name: str, text: str, ge: int | None, le: int | None) -> int:
    """A query parameter's text as the integer it writes, within `ge`..`le`; 400 naming `name`.

    The one spelling of a whole number in a URL, as in the path (`seq_of_path`): ASCII
    decimal digits, no sign, exponent, fraction or leading zero. Litestar reads an `int`
    parameter through msgspec, which takes `1e2` and `1.0`, rounds `99.9999999999999999`
    to 100 and `9007199254740993.0` to 9007199254740992.
    """
    n = None if text.startswith("-") else canonical_int(text)
    if n is None:
        message = (
            f"must be {_span(ge, le)} in decimal digits (no sign, exponent, fraction or "
            f"leading zero), got {_as_sent(text)}"
        )
    elif (ge is not None and n < ge) or (le is not None and n > le):
        message = f"must be {_span(ge, le)}, got {_as_sent(text)}"
    else:
        return n
    raise parameter_refused(name, message)


def seconds_parameter(gt: float, le: float, **kwargs: Any) -> Any:
    """A query parameter of seconds, more than `gt` and at most `le` (`decimal_of_query`).

    Its schema states both bounds: Litestar leaves a `gt` out of the document.
    """
    return QueryParameter(
        gt=gt, le=le, schema_extra={"exclusiveMinimum": gt, "maximum": le}, **kwargs
    )


def parameter_refused(name: str, message: str) -> ApiError:
    """The 400 of a query parameter, named as sent (`errors` as Litestar's own 400s have it)."""
    return ApiError(
        400,
        f"{name}: {message}",
        kind="bad-request",
        errors=[{"key": name, "message": message, "source": "query"}],
    )


def field_path_of_query(name: str, text: str) -> str:
    """A query parameter naming a field path (`a.b.c`), checked as a subscription's filter is.

    `a..b`, `$a` or a NUL names no field, and as a filter
    it would match no changed field yet every `replaced` and `snapshot` event.
    """
    if not is_field_path(text):
        raise parameter_refused(name, f"{_as_sent(text)} is not a field path (a.b.c)")
    return text


# A zero followed by another digit: `01`, `00.5` (`0.5` and `0` are the number as it prints).
_LEADING_ZERO: Final = re.compile(r"0[0-9]")


def _range(gt: float | None, ge: float | None, lt: float | None, le: float | None) -> str:
    said = [f"more than {gt:g}"] if gt is not None else []
    said += [f"at least {ge:g}"] if ge is not None else []
    said += [f"less than {lt:g}"] if lt is not None else []
    said += [f"at most {le:g}"] if le is not None else []
    return " and ".join(said) or "a number"


def decimal_of_query(
    name: str,
    text: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float:
    """A query parameter's text as the number it writes (`10`, `0.5`) within its bounds; 400 otherwise.

    Decimal digits with an optional fraction (`decimal_text.decimal_float`): no sign,
    exponent, `inf` or `nan`, which msgspec would read (or refuse in its own words), and
    no leading zero (`01`, `00.5`), as for a whole number: msgspec refuses those in its
    own words ("Expected `float | null`, got `str`").
    """
    n = None if text.startswith("-") or _LEADING_ZERO.match(text) else decimal_float(text)
    bounds = _range(gt, ge, lt, le)
    if n is None:
        message = (
            f"must be {bounds}, in decimal digits with an optional fraction (e.g. 2.5; no "
            f"sign, exponent or leading zero), got {_as_sent(text)}"
        )
    elif (
        (gt is not None and n <= gt)
        or (ge is not None and n < ge)
        or (lt is not None and n >= lt)
        or (le is not None and n > le)
    ):
        message = f"must be {bounds}, got {_as_sent(text)}"
    else:
        return n
    raise parameter_refused(name, message)


def time_parameter(**kwargs: Any) -> Any:
    """A query parameter holding an RFC 3339 time with a zone: JSON Schema's `date-time`."""
    return QueryParameter(
        max_length=TIME_CHARS,
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
        raise bad_request(
            f"malformed page cursor {shown_key(cursor)}: pass back a `next` value"
        ) from None
    prefix, _, value = raw.partition(":")
    if prefix != kind or not value:
        raise bad_request(f"page cursor {shown_key(cursor)} does not belong to this listing")
    return value


def int_cursor(kind: str, cursor: str | None) -> int | None:
    """A cursor carrying a non-negative integer (a seq or a version)."""
    value = decode_cursor(kind, cursor)
    if value is None:
        return None
    n = decimal_int(value)
    if n is None or not 0 <= n <= MAX_SEQ:  # a crafted cursor: MongoDB stores no larger int
        raise bad_request(f"page cursor {shown_key(str(cursor))} does not belong to this listing")
    return n


def parse_bound(name: str, value: str | None, *, lower: bool) -> datetime | None:
    """A time bound of a query (`since`: `lower`, `until`): as `parse_time`, except that a
    valid time whose instant lies outside years 1-9999 in UTC (`0001-01-01T00:30:00+01:00`)
    is before or after every stored time: no bound, or one no stored time passes."""
    if value is not None:
        try:
            parse_rfc3339(value, up=True)
        except OutsideUtcYears as outside:
            if outside.later:
                return PAST_LAST_MS if lower else None
            return None if lower else datetime.min.replace(tzinfo=UTC)
        except ValueError:
            pass  # refused below, with the reason
    return parse_time(name, value, up=True)


def parse_time(name: str, value: str | None, *, up: bool = False) -> datetime | None:
    """An RFC 3339 time with a zone (`Z` or an offset); a time without one is refused.

    `up`: a bound, raised to the next microsecond by digits beyond (`parse_rfc3339`).
    """
    if value is None:
        return None
    try:
        return parse_rfc3339(value, up=up)
    except NotRfc3339:
        raise bad_request(
            f"{name}: {shown_key(value)} is not an RFC 3339 time (e.g. 2026-11-26T14:03:00.123Z)"
        ) from None
    except NoZone:
        raise bad_request(
            f"{name}: {shown_key(value)} has no time zone; add `Z` or an offset like +01:00"
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


class _Whole(NamedTuple):
    """A query parameter the handler reads as an integer, with its inclusive bounds (if any)."""

    name: str
    ge: int | None
    le: int | None


class _Decimal(NamedTuple):
    """A query parameter the handler reads as a float (seconds), with its bounds (if any)."""

    name: str
    gt: float | None
    ge: float | None
    lt: float | None
    le: float | None


class _Text(NamedTuple):
    """A query parameter the handler reads as text of at most `longest` characters."""

    name: str
    longest: int


class _Taken(NamedTuple):
    """The query parameters a handler takes, those that may repeat (lists), and the integers."""

    names: frozenset[str]
    repeatable: frozenset[str]
    integers: tuple[_Whole, ...] = ()
    decimals: tuple[_Decimal, ...] = ()
    texts: tuple[_Text, ...] = ()


def _is(param: FieldDefinition, kind: type) -> bool:
    """Whether a handler parameter is `kind` or `kind | None` (`int`: not `bool`, not a list)."""
    kinds = [t for t in param.inner_types if not t.is_none_type] if param.is_optional else [param]
    return bool(kinds) and all(t.annotation is kind for t in kinds)


def _bounds(kwarg: ParameterKwarg | None) -> tuple[int | None, int | None]:
    """The inclusive bounds a parameter declares (`ge`/`gt`, `le`/`lt`)."""
    if kwarg is None:
        return None, None
    ge = kwarg.ge if kwarg.ge is not None else None if kwarg.gt is None else kwarg.gt + 1
    le = kwarg.le if kwarg.le is not None else None if kwarg.lt is None else kwarg.lt - 1
    return (None if ge is None else int(ge)), (None if le is None else int(le))


def _declared(handler: BaseRouteHandler, path_params: set[str]) -> _Taken:
    """The query parameters a handler takes: not its path parameters, dependencies or reserved names."""
    names: set[str] = set()
    repeatable: set[str] = set()
    integers: list[_Whole] = []
    decimals: list[_Decimal] = []
    texts: list[_Text] = []
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
        bounded = kwarg if isinstance(kwarg, ParameterKwarg) else None
        if _is(param, int):
            integers.append(_Whole(query, *_bounds(bounded)))
        elif _is(param, float):
            b = bounded
            limits = (None, None, None, None) if b is None else (b.gt, b.ge, b.lt, b.le)
            decimals.append(_Decimal(query, *limits))
        elif _is(param, str) and bounded is not None and bounded.max_length is not None:
            texts.append(_Text(query, bounded.max_length))
        if param.is_non_string_collection or any(
            t.is_non_string_collection for t in param.inner_types or ()
        ):
            repeatable.add(query)
    return _Taken(
        frozenset(names), frozenset(repeatable), tuple(integers), tuple(decimals), tuple(texts)
    )


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


def refuse_undecodable_query(raw: bytes) -> None:
    """400 for a query name or value that is not UTF-8 once percent-decoded (`%FF`, `Jos%E9`).

    The framework decodes such bytes to U+FFFD: `?actor=Jos%E9` searched for `Jos\ufffd`,
    and `?status=%FF` answered an empty page, each as if asked.
    """
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        for piece in (name, value):
            try:
                unquote_to_bytes(piece.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                text = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace")
                label = text if text.isidentifier() else shown_key(text)
                sent = shown_key(piece.decode("ascii", "replace"))  # as sent: `Jos%E9`
                raise parameter_refused(
                    label, f"not valid UTF-8 once percent-decoded, got {sent}"
                ) from None


async def refuse_unknown_parameters(request: Request[Any, Any, Any]) -> None:
    """400 for a query parameter the endpoint does not take (a misspelled filter must not widen a query).

    And for one given twice that takes one value: `?actor=alice&actor=bob` would
    otherwise answer for bob alone, as if for both. Endpoints with free-form
    filters (`opt={"free_query": True}`) check their filters themselves; the
    parameters they declare (`limit`, `after`) are still refused twice.
    """
    refuse_repeated(request, SINGLE_HEADERS)
    refuse_undecodable_query(request.scope.get("query_string", b""))
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
    else:
        unknown = sorted(set(query.keys()) - allowed.names)
        if unknown:
            known = ", ".join(sorted(allowed.names)) or "none"
            raise bad_request(
                f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                f"{shown_names(unknown)} (this endpoint takes: {known})"
            )
        refuse_repeated_query(request, set(query.keys()) - allowed.repeatable)
    # Before Litestar reads them too: its refusal says neither the value nor, in words, the bound.
    for text_param in allowed.texts:
        for text in query.getall(text_param.name, []):
            if len(text) > text_param.longest:
                raise parameter_refused(
                    text_param.name,
                    f"at most {text_param.longest} characters, got {shown_key(text)}",
                )
    # Before Litestar converts them (this hook runs first): see `whole_of_query`.
    for whole_param in allowed.integers:
        text = query.get(whole_param.name)
        if text is not None:
            whole_of_query(whole_param.name, text, whole_param.ge, whole_param.le)
    for number in allowed.decimals:
        text = query.get(number.name)
        if text is not None:
            decimal_of_query(
                number.name, text, gt=number.gt, ge=number.ge, lt=number.lt, le=number.le
            )


# Names (or values) quoted in one message: a client sends as many as its URL holds.
SHOWN_NAMES: Final = 3


def shown_names(names: Iterable[str]) -> str:
    """Names or values a client sent, for a message: each quoted and cut as `shown_key`
    quotes a key (control characters escaped), the first SHOWN_NAMES of them, and how many
    more there are."""
    given = list(names)
    shown = ", ".join(shown_key(name) for name in given[:SHOWN_NAMES])
    more = len(given) - SHOWN_NAMES
    return shown if more <= 0 else f"{shown} and {more} more"


def refuse_repeated_query(request: Request[Any, Any, Any], names: Iterable[str]) -> None:
    """400 for a query parameter of `names` given more than once (each takes one value)."""
    for name in sorted(names):
        times = len(request.query_params.getall(name))
        if times > 1:
            raise bad_request(f"query parameter {name} is given {times} times; give it once")
