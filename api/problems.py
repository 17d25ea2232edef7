"""Errors as `application/problem+json` (RFC 9457): never a stack trace, never a key.

Every failure a client can cause maps to a 4xx with `type`, `title`, `status`
and `detail`; a failure of the database maps to 503. Anything else is a bug: it
is logged with its traceback server-side and answered with a bare 500 problem.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from pymongo.errors import ExecutionTimeout, PyMongoError

from eventstore.errors import scrub
from eventstore.history import (
    AmbiguousKey,
    ErasureRefused,
    HistoryError,
    ImpossibleRange,
    NoState,
    UnknownEntity,
    UnknownStream,
    UnknownVersion,
)
from eventstore.ports import JobConflict

log = logging.getLogger("eventstore.api")

PROBLEM_JSON: Final = "application/problem+json"
TYPE_BASE: Final = "https://eventstore.dev/problems/"


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document (plus `typed_keys` for an ambiguous key, `errors` for validation)."""

    type: str
    title: str
    status: int
    detail: str
    typed_keys: list[str] | None = None
    errors: list[dict[str, Any]] | None = None
    workers: list[dict[str, Any]] | None = None


class ApiError(Exception):
    """A client error with its status; `headers` go on the response (e.g. WWW-Authenticate)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}
        # 422's `errors: [{key, message}]` (DESIGN.md "Status codes")
        self.errors = errors


# The largest request body the API reads (Litestar refuses a larger one with 413).
MAX_BODY: Final = 64 * 1024


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail, kind="bad-request")


def unprocessable(detail: str, *, kind: str | None, key: str) -> ApiError:
    """422: well formed but impossible, with `errors: [{key, message}]` naming the field."""
    return ApiError(422, detail, kind=kind, errors=[{"key": key, "message": detail}])


def not_found(detail: str) -> ApiError:
    return ApiError(404, detail, kind="not-found")


def _slug(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    title: str | None = None,
    **extra: Any,
) -> Response[Problem]:
    """The problem+json response for a status and a human-readable detail."""
    body = Problem(
        type=TYPE_BASE + (kind or _slug(status)),
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=scrub(detail),
        **extra,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Problem]:
    return problem(
        exc.status, exc.detail, kind=exc.kind, headers=exc.headers, errors=exc.errors or None
    )


def _kind(exc: HistoryError) -> str | None:
    """`UnknownEntity` -> `unknown-entity`; the plain HistoryError takes its status's slug."""
    if type(exc) is HistoryError:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(exc).__name__).lower()


# The HTTP status of each refusal of the history service (the core knows no HTTP).
HISTORY_STATUS: Final[dict[type[HistoryError], int]] = {
    UnknownStream: 404,
    UnknownEntity: 404,
    AmbiguousKey: 409,
    NoState: 404,
    UnknownVersion: 404,
    ImpossibleRange: 422,
    ErasureRefused: 409,
}


def history_status(exc: HistoryError) -> int:
    """The status of a history refusal: its class's, or its nearest base's; 400 otherwise."""
    for cls in type(exc).__mro__:
        if cls in HISTORY_STATUS:
            return HISTORY_STATUS[cls]
    return 400


def _history_error(_: Request[Any, Any, Any], exc: HistoryError) -> Response[Problem]:
    if isinstance(exc, AmbiguousKey):
        return problem(409, str(exc), kind="ambiguous-key", typed_keys=exc.typed_keys)
    if isinstance(exc, ImpossibleRange):  # a 422 names its field (DESIGN.md "Status codes")
        return _api_error(_, unprocessable(str(exc), kind=_kind(exc), key=exc.field))
    return problem(history_status(exc), str(exc), kind=_kind(exc))


def _job_conflict(_: Request[Any, Any, Any], exc: JobConflict) -> Response[Problem]:
    return problem(409, str(exc), kind="rebuild-active")


def _public_names(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The handler's parameter names mapped to the names a client sends (`first` -> `from`)."""
    signature = getattr(request.scope.get("route_handler"), "parsed_fn_signature", None)
    parameters = getattr(signature, "parameters", None) or {}
    names: dict[str, str] = {}
    for name, field in parameters.items():
        kwarg = getattr(field, "kwarg_definition", None)
        public = getattr(kwarg, "name", None) or getattr(kwarg, "query", None)
        public = public or getattr(kwarg, "header", None)
        if isinstance(public, str) and public != name:
            names[name] = public
    return names


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = exc.extra if isinstance(exc.extra, list) else None
    # Litestar names a failing parameter by its Python name; the client sent its alias.
    # The request body as a whole is Litestar's `data`: to the client it is the body.
    renamed = {"data": "body", **_public_names(request)} if errors else {}
    if errors:
        errors = [
            {**e, "key": renamed.get(str(e.get("key")), e.get("key"))} if isinstance(e, dict) else e
            for e in errors
        ]
    parts = [
        f"{e.get('key') or e.get('source')}: {e.get('message')}"
        for e in (errors or [])
        if isinstance(e, dict)
    ]
    # Without per-field errors Litestar says what is wrong in the detail
    # ("Missing required query parameter 'x' for path /..."): keep the first part.
    said = str(exc.detail or "").split(" for path ", 1)[0].strip()
    detail = "; ".join(parts) or said or "the request is malformed"
    clean = [
        {k: v for k, v in e.items() if k in ("key", "message", "source")}
        for e in (errors or [])
        if isinstance(e, dict)
    ]
    return problem(400, detail, kind="bad-request", errors=clean or None)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    if status >= 500 and status != 503:
        # Litestar's own 500s (a file system error it wraps, say) are bugs like any other:
        # logged, and answered as `_bug` answers, never with their detail.
        return _bug(request, exc)
    headers = dict(exc.headers or {})
    if status == 413:  # Litestar's "Request Entity Too Large" says neither what nor how much
        return problem(
            413,
            f"the request body is larger than the server takes ({MAX_BODY // 1024} KiB,"
            f" {MAX_BODY:,} bytes)",
            headers=headers,
            title="Content Too Large",  # RFC 9110 15.5.14
        )
    return problem(status, str(exc.detail or HTTPStatus(status).phrase), headers=headers)


def _database(request: Request[Any, Any, Any], exc: PyMongoError) -> Response[Problem]:
    log.warning("database error on %s %s: %s", request.method, request.url.path, scrub(str(exc)))
    return problem(503, "the database is unavailable; try again shortly", kind="unavailable")


def _too_long(request: Request[Any, Any, Any], exc: ExecutionTimeout) -> Response[Problem]:
    log.warning("query time limit hit on %s %s", request.method, request.url.path)
    return problem(
        503,
        "the query ran into the server's time limit (maxTimeMS): narrow it "
        "(a stream, an entity, types or a time range) or page with a smaller limit",
        kind="query-timeout",
    )


def _bug(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "an internal error occurred; it has been logged", kind="internal")


Handler = Callable[[Request[Any, Any, Any], Any], Response[Problem]]


def _varying(handler: Handler) -> Handler:
    """`handler`, its problem marked as depending on what the route's `opt["vary"]` names.

    A route whose answer depends on a request header (`/v1/events` on `Accept`) says so
    on each answer, a refusal included: a cache keyed without it would serve a 400 meant
    for a CSV export to a JSON client, or the other way round.
    """

    @functools.wraps(handler)
    def answer(request: Request[Any, Any, Any], exc: Any) -> Response[Problem]:
        response = handler(request, exc)
        route = request.scope.get("route_handler")
        vary = getattr(route, "opt", {}).get("vary") if route is not None else None
        if isinstance(vary, str) and vary:
            said = response.headers.get("vary")
            response.headers["vary"] = f"{said}, {vary}" if said else vary
        return response

    return answer


# Each kind of failure's answer (the most specific class counts).
_HANDLERS: Final[dict[type[Exception], Handler]] = {
    ApiError: _api_error,
    HistoryError: _history_error,
    JobConflict: _job_conflict,
    ValidationException: _validation,
    HTTPException: _http,
    ExecutionTimeout: _too_long,
    PyMongoError: _database,
    Exception: _bug,
}
EXCEPTION_HANDLERS: Final[dict[Any, Any]] = {
    kind: _varying(handler) for kind, handler in _HANDLERS.items()
}
