"""Read models: status, rows (filtered, paged), one row; admin: rebuild jobs."""

from __future__ import annotations

import decimal
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from api.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    parse_time,
    path_value,
    refuse_repeated_query,
    whole,
)
from api.problems import ApiError, bad_request, not_found
from api.schemas import JobCreated, JobOut, PartitionOut, ProjectionOut, RowsPage
from api.services import Services, ServicesDep
from eventstore.codec import rfc3339, to_jsonable
from eventstore.history import AmbiguousKey
from eventstore.json_input import (
    EXACT_DOUBLE,
    TOO_DEEP,
    DuplicateKey,
    check_unique_keys,
)
from eventstore.keys import SHOWN_KEY_CHARS, InvalidKey, candidates, shown_key, typed_key
from projections.api import SEQ_FIELD
from projections.orders import NO_CUSTOMER, PROBLEM_ORDER
from projections.partitioned import MAX_WORKERS
from projections.status import projection_statuses


def _text(name: str, value: str) -> str:
    return value


def _flag(name: str, value: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise bad_request(f"{name}: {shown_key(value)} is not true or false")


def _time(name: str, value: str) -> datetime:
    parsed = parse_time(name, value)
    assert parsed is not None
    return parsed


ROW_CURSOR_CHARS: Final = 96_000
NUMERIC: Final = None
# The row fields of each projection (its API contract), in order, and how a filter
# value is read for the non-numeric ones (None: numeric, not filterable).
ROW_FIELDS: Final[dict[str, dict[str, Callable[[str, str], Any] | None]]] = {
    "order_summary": {
        "entity_key": _text,
        "typed_key": _text,  # the row's own key: its order's typed key (no field of the row)
        "number": _text,
        "customer": NUMERIC,
        "status": _text,
        "items": NUMERIC,
        "total": NUMERIC,
        "currency": _text,
        "created_at": _time,
        "updated_at": _time,
        "version": NUMERIC,
        "deleted": _flag,
        "problems": NUMERIC,
        "problems_dropped": NUMERIC,
    },
    "orders_by_status": {"status": _text, "count": NUMERIC},
    "revenue_by_day": {
        "day": _text,
        "currency": _text,
        "revenue": NUMERIC,
        "orders": NUMERIC,
        "problems": NUMERIC,
        "problems_dropped": NUMERIC,
    },
    "customer_totals": {
        "customer": _text,
        "name": _text,
        "name_from": _text,
        "orders": NUMERIC,
        "lifetime_spend": NUMERIC,
        "last_order_at": _time,
        "problems": NUMERIC,
        "problems_dropped": NUMERIC,
    },
}
# Each row's key, from its fields (the cursor of a page is its last row's key).
ROW_KEY: Final[dict[str, Callable[[dict[str, Any]], Any]]] = {
    "order_summary": lambda r: r.get("_id"),
    "orders_by_status": lambda r: r.get("status"),
    "revenue_by_day": lambda r: f"{r.get('day')}:{r.get('currency')}",
    "customer_totals": lambda r: r.get("customer"),
}
RESERVED: Final = frozenset({"limit", "after"})


def _stored_key(row: dict[str, Any]) -> Any:
    return row.get("_id")


def _fields(name: str) -> dict[str, Callable[[str, str], Any] | None]:
    return ROW_FIELDS.get(name, {})


# Row fields that are the stored key itself: an order_summary row is keyed by its
# order's typed key (`int:42` beside `str:42`, where both read `entity_key` "42").
KEY_FIELDS: Final[dict[str, str]] = {"order_summary": "typed_key"}


def _row(name: str, row: dict[str, Any]) -> dict[str, Any]:
    # A plugin's row as it wrote it: only the runner's `_seq` and the stored key are not its own.
    fields = _fields(name)
    if not fields:
        return {k: to_jsonable(v) for k, v in row.items() if k not in (SEQ_FIELD, "_id")}
    key_field = KEY_FIELDS.get(name)
    out = {f: to_jsonable(row.get("_id" if f == key_field else f)) for f in fields}
    if isinstance(problems := out.get("problems"), list):
        out["problems"] = [_problem(p) for p in problems]
    return out


def _problem(record: Any) -> Any:
    """A built-in row's problem as the API shows it: `{seq, field, value, reason}` (the order
    an aggregate row's problem came from is kept for erasure, not shown)."""
    if isinstance(record, dict) and PROBLEM_ORDER in record:
        return {k: v for k, v in record.items() if k != PROBLEM_ORDER}
    return record


@get("/projections", summary="Every projection: position, lag, state, last rebuild, failure")
async def list_projections(services: ServicesDep) -> list[ProjectionOut]:
    records = await services.worker_records()
    # A database that stops answering after the records were read: a 503 within one timeout.
    statuses = await services.reachable(
        projection_statuses(services.store, list(services.projections.values()), records)
    )
    return [
        ProjectionOut(
            name=s.name,
            position=s.position,
            lag=s.lag,
            state=s.state,
            rebuilt_at=rfc3339(s.rebuilt_at) if s.rebuilt_at else None,
            failed_seq=s.failed_seq,
            error=s.error,
            held_by=s.held_by,
            rebuild_needed=s.rebuild_needed,
            problems=s.problems,
            orders_without_customer=s.orders_without_customer,
            state_reads=s.state_reads,
        )
        for s in statuses
    ]


@get(
    "/projections/{name:str}",
    summary="A read model's rows in key order, with equality filters on its non-numeric fields",
    description="Any non-numeric row field is a filter: `?status=paid&currency=EUR`.",
    opt={"free_query": True},
)
async def projection_rows(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    name: FromPath[str],
    limit: Annotated[int, whole(1, MAX_LIMIT)] = DEFAULT_LIMIT,
    # A row cursor carries its row key (a long order `_id`, a plugin's key): room for
    # keys of about 70,000 characters, within the request line the server reads.
    after: Annotated[str | None, QueryParameter(max_length=ROW_CURSOR_CHARS)] = None,
) -> RowsPage:
    name = path_value(name)
    projection = services.projection(name)
    fields = _fields(name)
    filters: dict[str, Any] = {}
    usable = [f for f, parse in fields.items() if parse is not None]
    for field, values in request.query_params.dict().items():
        if field in RESERVED:
            continue
        if field not in fields:
            if not usable:  # a plugin's rows: their fields, and their types, are its own
                raise bad_request(
                    f"{name} takes no filters (its rows are listed as written, by key):"
                    f" {shown_key(field)} is not limit or after"
                )
            raise bad_request(
                f"{name} has no row field {shown_key(field)}"
                f" (filters: {', '.join(usable)}; paging: limit, after)"
            )
        parse = fields[field]
        if parse is None:  # a number, or a document or list (`customer`, `items`, `problems`)
            raise bad_request(
                f"{field} cannot be filtered on: it holds numbers or structures"
                f" (filters: {', '.join(usable)}; paging: limit, after)"
            )
        refuse_repeated_query(request, [field])
        filters["_id" if field == KEY_FIELDS.get(name) else field] = parse(field, values[0])
    start = decode_cursor(f"rows-{name}", after)
    if name == "customer_totals" and start is None:
        start = NO_CUSTOMER  # the orders without a customer id: counted in the status instead
    rows = await services.store.read_models.query(
        projection.collection, filters=filters, limit=limit + 1, after=start
    )
    more = len(rows) > limit
    rows = rows[:limit]
    key_of = ROW_KEY.get(name, _stored_key)
    last_key = key_of(rows[-1]) if rows else None
    return RowsPage(
        items=[_row(name, r) for r in rows],
        next=encode_cursor(f"rows-{name}", str(last_key))
        if more and last_key is not None
        else None,
    )


@get("/projections/{name:str}/{key:str}", summary="One row of a read model, by its key")
async def projection_row(
    services: ServicesDep, name: FromPath[str], key: FromPath[str]
) -> dict[str, Any]:
    name, asked = path_value(name), path_value(key)
    projection = services.projection(name)
    key = asked
    if name == "order_summary":
        key = await _order_row_key(services, projection.collection, asked)
    found = await services.store.read_models.get_many(projection.collection, [key])
    if key not in found:
        raise not_found(
            f"no row {shown_key(asked)} in {name}"
        )  # as asked: a bare key names no type
    return _row(name, found[key])


async def _order_row_key(services: Services, collection: str, key: str) -> str:
    """An order_summary row by entity key, bare or typed, resolved as entity keys are.

    Rows are keyed by typed key; a bare key naming two rows ("42" and 42) is a 409.
    """
    try:
        options = [typed_key(v) for v in candidates(key)]
    except InvalidKey as exc:
        raise bad_request(str(exc)) from None
    if len(options) == 1:
        return options[0]
    found = sorted(await services.store.read_models.get_many(collection, options))
    if len(found) > 1:
        raise AmbiguousKey(
            f"{shown_key(key)} names {len(found)} orders: use one of {', '.join(found)}", found
        )
    return found[0] if found else options[0]


@post(
    "/projections/{name:str}/rebuild",
    status_code=HTTP_202_ACCEPTED,
    summary="Request a rebuild (run by the lease holder, or here when nobody holds the lease)",
)
async def rebuild(
    request: Request[Any, Any, Any], services: ServicesDep, name: FromPath[str]
) -> JobCreated:
    workers = _workers(await request.body())
    job = await services.request_rebuild(path_value(name), workers=workers)
    return JobCreated(job=job.job)


# A number of the body as written: msgspec hands a literal with a fraction or an exponent
# here as its text (`1e400`, `0.99999999999999999`), never as the double it rounds to.
_BODY: Final = msgspec.json.Decoder(float_hook=lambda text: _Literal(text))


class _Literal(str):
    """A JSON number with a fraction or an exponent, as written."""


def _literal_whole(text: str) -> int | None:
    """The whole number a JSON literal writes exactly (`2.0`, `20e-1`), within 2^53; else None.

    Read as a double, `0.99999999999999999` is 1 and `16.000000000000001` is 16:
    neither is a whole number. Past 2^53 a double may stand for its neighbour
    (`whole_number`), and `1e400` is none at all.
    """
    number = decimal.Decimal(text)
    if abs(number) > EXACT_DOUBLE or number != number.to_integral_value():
        return None
    return int(number)


def _workers(body: bytes) -> int:
    """The optional body `{"workers": N}` (1-16, default 1): the partitions of the rebuild."""
    if not body.strip():
        return 1
    try:
        parsed = _BODY.decode(body)
    except RecursionError:
        raise bad_request(f'the body must be JSON: {{"workers": N}} ({TOO_DEEP})') from None
    except msgspec.DecodeError:
        raise bad_request('the body must be JSON: {"workers": N}') from None
    try:
        check_unique_keys(body)
    except DuplicateKey as exc:
        raise bad_request(f'the body must be JSON: {{"workers": N}} ({exc})') from None
    if not isinstance(parsed, dict) or set(parsed) - {"workers"}:
        raise bad_request('the body takes only {"workers": N}')
    if "workers" not in parsed:
        return 1
    given = parsed["workers"]
    if isinstance(given, _Literal):
        workers = _literal_whole(given)
    else:
        workers = None if isinstance(given, bool) or not isinstance(given, int) else given
    if workers is None:
        # The value as written (cut): `1e400`, `"2"`, `true`.
        written = bytes(msgspec.json.decode(body, type=dict[str, msgspec.Raw])["workers"])
        raise bad_request(
            f"workers must be a whole number from 1 to {MAX_WORKERS}, got "
            + shown_literal(written.decode())
        )
    if not 1 <= workers <= MAX_WORKERS:  # well formed, but no rebuild has that many (422)
        detail = f"workers must be from 1 to {MAX_WORKERS}, got {workers}"
        raise ApiError(
            422, detail, kind="unprocessable", errors=[{"key": "workers", "message": detail}]
        )
    return workers


def shown_literal(text: str) -> str:
    """A JSON value of a body as written, cut as `shown_key` cuts a key (it is JSON: no quotes).

    One with a character that is not printable (a line break between its items, a
    bidirectional override inside a string) is quoted as `shown_key` quotes it, escaped.
    """
    if not text.isprintable():
        return shown_key(text)
    if len(text) <= SHOWN_KEY_CHARS:
        return text
    return f"{text[:SHOWN_KEY_CHARS]}… ({len(text)} characters)"


def _when(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


@get("/jobs/{job:str}", summary="A rebuild job's state and progress")
async def get_job(services: ServicesDep, job: FromPath[str]) -> JobOut:
    found = await services.store.jobs.get(path_value(job))
    if found is None:
        raise not_found(f"no job {shown_key(path_value(job))}")
    return JobOut(
        job=found.job,
        projection=found.projection,
        state=found.state,
        processed=found.processed,
        total=found.total,
        requested_at=_when(found.requested_at),
        started_at=_when(found.started_at),
        finished_at=_when(found.finished_at),
        error=found.error,
        workers=found.workers,
        note=found.note,
        partitions=[
            PartitionOut(
                index=p.index,
                state=p.state,
                processed=p.processed,
                total=p.total,
                owner=p.owner,
                expires_at=_when(p.expires_at),
                attempts=p.attempts,
                error=p.error,
                failed_seq=p.failed_seq,
            )
            for p in found.partitions
        ],
    )


ROUTES: list[Any] = [list_projections, projection_rows, projection_row]
ADMIN_ROUTES: list[Any] = [rebuild, get_job]

__all__ = ["ADMIN_ROUTES", "ROUTES", "ApiError"]
