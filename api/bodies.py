"""The JSON bodies of the admin operations that read their body themselves: reading, and OpenAPI.

These handlers parse the raw body (`await request.body()`), so they can tell a
malformed body (400) from a well-formed but impossible one (422, naming each field),
and Litestar has no parameter to describe it from. The schemas here state the same
shape the parsers check (`eventstore.subscriptions.config`, `api.routes.projections`,
`api.routes.subscriptions`): the fields, their types, bounds and enumerations, and no
other field. What a schema cannot state (a URL that parses, a template's
placeholders, a webhook secret's decoded length, a second writer of one Redis
stream) is checked by the server and answered 422 with `errors: [{key, message}]`.

Reading them is one wording for every route: no body is "a JSON body is required",
a body that is not JSON says why, and a field of the wrong shape is named in
`errors: [{key, message}]` in the words the subscription parser uses (`required`,
`unknown field`, `expected a string`, `at most N characters`), never msgspec's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar

import msgspec
from litestar import Request
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType

from api.problems import PROBLEM_JSON, ApiError, Problem, bad_request
from eventstore.json_input import decode_json
from eventstore.model import EVENT_TYPES, MAX_SEQ
from eventstore.subscriptions import config as cfg

# The rebuild's bound at its source (api.routes.projections checks the same 16): the routes
# read their bodies with the helpers below, so this module imports no route (no cycle).
from projections.partitioned import MAX_WORKERS

STRING: Final = OpenAPIType.STRING
INTEGER: Final = OpenAPIType.INTEGER
NUMBER: Final = OpenAPIType.NUMBER
OBJECT: Final = OpenAPIType.OBJECT
ARRAY: Final = OpenAPIType.ARRAY
NULL: Final = OpenAPIType.NULL


def _object(
    properties: dict[str, Schema | Reference],
    *,
    required: list[str] | None = None,
    description: str = "",
) -> Schema:
    """An object with exactly these fields (any other is a 400)."""
    return Schema(
        type=OBJECT,
        properties=properties,
        required=required or None,
        additional_properties=False,
        description=description or None,
    )


def _nullable(schema: Schema) -> Schema:
    """`schema`, or null (the parser reads null as the field's default)."""
    return Schema(one_of=[schema, Schema(type=NULL)])


SEQ: Final = Schema(type=INTEGER, minimum=1, maximum=MAX_SEQ)
TEMPLATE: Final = Schema(
    type=STRING,
    min_length=1,
    description=(
        "may use {stream}, {entity_key}, {typed_key}, {type}, {seq}, {version};"
        " {{ and }} are braces"
    ),
)
REFERENCE: Final = [
    _object(
        {"env": Schema(type=STRING, pattern=f"^{cfg.ENV_NAME.pattern}$")},
        required=["env"],
        description="read from this environment variable when the sink starts (over this API: "
        "only one already stored there, for the same url origin, unless the server sets "
        "EVENTSTORE_API_SECRET_REFERENCES=true)",
    ),
    _object(
        {"file": Schema(type=STRING, min_length=1)},
        required=["file"],
        description="read from this file when the sink starts (over this API: only one already "
        "stored there, for the same url origin, unless the server sets "
        "EVENTSTORE_API_SECRET_REFERENCES=true)",
    ),
]
SECRET: Final = Schema(one_of=[Schema(type=STRING, min_length=1), *REFERENCE])
_BYTES = cfg.SECRET_BYTES
_B64 = (4 * (_BYTES[0] // 3), 4 * -(-_BYTES[1] // 3))  # base64 characters, padding aside
WEBHOOK_SECRET: Final = Schema(
    one_of=[
        Schema(
            type=STRING,
            pattern=rf"^(\*\*\*|whsec_[A-Za-z0-9+/]{{{_B64[0]},{_B64[1]}}}={{0,2}})$",
            description=f"{cfg.SECRET_FORM}; *** keeps the stored one while url keeps its "
            "origin (scheme, host, port)",
        ),
        *REFERENCE,
    ]
)


def _url(*schemes: str) -> Schema:
    """A URL template of one of these schemes (any case) naming a host, or a reference to one."""
    either = "|".join("".join(f"[{c.upper()}{c}]" for c in scheme) for scheme in schemes)
    return Schema(
        one_of=[
            Schema(
                type=STRING,
                pattern=rf"^({either})://[^/?#@\s]*[^/?#:@\s\[\]]",
                description=f"{' or '.join(schemes)}; may use the placeholders",
            ),
            *REFERENCE,
        ]
    )


def _sink(kind: str, fields: dict[str, Schema], required: list[str], about: str) -> Schema:
    url = _url("http", "https") if kind == cfg.WEBHOOK else _url("redis", "rediss")
    return _object(
        {"kind": Schema(type=STRING, const=kind), "url": url, **fields},
        required=["kind", "url", *required],
        description=about,
    )


SINK: Final = Schema(
    one_of=[
        _sink(
            cfg.WEBHOOK,
            {
                "secret": Schema(
                    one_of=[
                        WEBHOOK_SECRET,
                        Schema(type=ARRAY, items=WEBHOOK_SECRET, min_items=1, max_items=2),
                    ],
                    description="required at creation; [new, old] during a rotation; "
                    "an update without it keeps the stored one while url keeps its origin "
                    "(scheme, host, port)",
                ),
                "timeout_s": Schema(
                    type=NUMBER,
                    exclusive_minimum=0,
                    maximum=cfg.MAX_TIMEOUT_S,
                    default=cfg.DEFAULT_TIMEOUT_S,
                ),
                "headers": Schema(
                    type=OBJECT,
                    additional_properties=SECRET,
                    description="not webhook-*, content-type or host; no control characters; "
                    "each name once, in any case; *** keeps the stored value while url keeps "
                    "its origin (scheme, host, port)",
                ),
            },
            [],
            "one signed POST per event (Standard Webhooks); url http(s)://",
        ),
        _sink(
            cfg.REDIS_PUBSUB,
            {"channel": TEMPLATE},
            ["channel"],
            "PUBLISH of each event; url redis(s)://",
        ),
        _sink(
            cfg.REDIS_INVALIDATE,
            {
                "keys": Schema(type=ARRAY, items=TEMPLATE, min_items=1),
                "again_after_ms": Schema(
                    type=INTEGER, minimum=0, maximum=cfg.MAX_AGAIN_MS, default=0
                ),
            },
            ["keys"],
            "UNLINK of keys and patterns; url redis(s)://",
        ),
        _sink(
            cfg.REDIS_STREAM,
            {
                "stream": TEMPLATE,
                "maxlen": _nullable(Schema(type=INTEGER, minimum=1, default=cfg.DEFAULT_MAXLEN)),
            },
            ["stream"],
            "XADD with the entry id <seq>-0; lanes must be 1; url redis(s)://",
        ),
    ],
)
START: Final = Schema(
    one_of=[
        Schema(type=STRING, enum=["latest", "earliest"]),
        _object({"seq": SEQ}, required=["seq"], description="from this seq on"),
        _object(
            {"time": Schema(type=STRING, format=OpenAPIFormat.DATE_TIME)},
            required=["time"],
            description="from the first event recorded at or after this time",
        ),
    ]
)


def _strings(items: Schema | None = None) -> Schema:
    return _nullable(Schema(type=ARRAY, items=items or Schema(type=STRING)))


_STEP = cfg.PATH_SEGMENT.pattern
FILTER: Final = _object(
    {
        "streams": _strings(),
        "types": _strings(Schema(type=STRING, enum=sorted(EVENT_TYPES))),
        "actors": _strings(),
        "fields": _strings(Schema(type=STRING, pattern=f"^{_STEP}(\\.{_STEP})*$")),
    },
    description="AND across criteria, OR within one; an empty criterion admits everything",
)
RETRY: Final = _object(
    {
        "delays_s": Schema(
            type=ARRAY,
            items=Schema(type=NUMBER, minimum=0, maximum=cfg.MAX_DELAY_S),
            max_items=cfg.MAX_RETRIES,
        ),
        "jitter": Schema(type=NUMBER, minimum=0, maximum=1, default=cfg.DEFAULT_JITTER),
    }
)
SUBSCRIPTION: Final = _object(
    {
        "sink": SINK,
        "filter": _nullable(FILTER),
        "start": _nullable(START),
        "lanes": Schema(type=INTEGER, minimum=1, maximum=cfg.MAX_LANES, default=1),
        "retry": _nullable(RETRY),
    },
    required=["sink"],
)


class ErasureIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of an erasure request (read by `read_struct`, documented by `closed`)."""

    stream: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    entity_key: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


# Free text as `eventstore.erasure.check_text` takes it (`refused_character`): not blank, no
# control character but tab (C0, DEL, C1), no bidirectional override or isolate.
_REFUSED: Final = r"\x7f-\x9f\u202a-\u202e\u2066-\u2069"
TEXT: Final = (
    rf"^[^\x00-\x08\x0a-\x1f{_REFUSED}]*[^\s\x00-\x1f{_REFUSED}][^\x00-\x08\x0a-\x1f{_REFUSED}]*$"
)


def _string_fields(struct: type[msgspec.Struct]) -> list[msgspec.inspect.Field]:
    """The fields of a `forbid_unknown_fields` Struct of strings (what `closed` and
    `struct_errors` know how to state and check; another field type is refused)."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields
    for field in info.fields:
        if not isinstance(field.type, msgspec.inspect.StrType):
            raise TypeError(
                f"{struct.__name__}.{field.name}: only string fields are documented and read"
            )
    return list(info.fields)


def closed(struct: type[msgspec.Struct], patterns: dict[str, str] | None = None) -> Schema:
    """The schema of a `forbid_unknown_fields` Struct of strings, with its bounds.

    Litestar documents such a Struct as an open object, so a client (or a fuzzer) reads
    any other field as allowed, where msgspec refuses it (400). Other field types are
    not needed yet, and refused rather than documented wrongly.
    """
    fields = _string_fields(struct)
    properties: dict[str, Schema | Reference] = {}
    for field in fields:
        assert isinstance(field.type, msgspec.inspect.StrType)
        properties[field.encode_name] = Schema(
            type=STRING,
            min_length=field.type.min_length,
            max_length=field.type.max_length,
            pattern=(patterns or {}).get(field.encode_name),
        )
    return _object(properties, required=[f.encode_name for f in fields if f.required])


# -- reading a body -------------------------------------------------------------------------------
BODY_REQUIRED: Final = "a JSON body is required"
S = TypeVar("S", bound=msgspec.Struct)


async def body_bytes(request: Request[Any, Any, Any]) -> bytes | None:
    """The raw body, or None when there is none (empty or only whitespace)."""
    raw = await request.body()
    return raw if raw.strip() else None


def decoded(raw: bytes) -> Any:
    """`raw` as JSON; 400 saying why when it is not (nested too deeply, a key named twice...)."""
    try:
        return decode_json(raw)
    except msgspec.DecodeError as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None


async def json_body(request: Request[Any, Any, Any]) -> Any:
    """The body's JSON value; 400 when there is no body or it is not JSON."""
    raw = await body_bytes(request)
    if raw is None:
        raise bad_request(BODY_REQUIRED)
    return decoded(raw)


def malformed(errors: list[dict[str, str]]) -> ApiError:
    """400 naming each field of the body that is wrong in shape (`""` is the body itself)."""
    detail = "; ".join(f"{e['key'] or 'the body'}: {e['message']}" for e in errors)
    return ApiError(400, detail, kind="bad-request", errors=errors)


def text_errors(key: str, value: Any, bounds: msgspec.inspect.StrType) -> list[dict[str, str]]:
    """What is wrong with `value` as a string within `bounds`, in the parser's words."""
    if not isinstance(value, str):
        return [{"key": key, "message": "expected a string"}]
    low, high = bounds.min_length, bounds.max_length
    if low is not None and len(value) < low:
        return [
            {
                "key": key,
                "message": "may not be empty" if low == 1 else f"at least {low} characters",
            }
        ]
    if high is not None and len(value) > high:
        return [{"key": key, "message": f"at most {high} characters, got {len(value)}"}]
    if bounds.pattern is not None and re.search(bounds.pattern, value) is None:
        return [{"key": key, "message": f"does not match {bounds.pattern}"}]
    return []


def struct_errors(struct: type[msgspec.Struct], value: Any) -> list[dict[str, str]]:
    """Every field of `value` that `struct` (a closed Struct of strings) refuses, named."""
    fields = _string_fields(struct)
    names = [f.encode_name for f in fields]
    if not isinstance(value, dict):
        return [{"key": "", "message": f"expected a JSON object ({', '.join(names)})"}]
    errors = [{"key": str(k), "message": "unknown field"} for k in value if k not in names]
    for field in fields:
        assert isinstance(field.type, msgspec.inspect.StrType)
        if field.encode_name in value:
            errors += text_errors(field.encode_name, value[field.encode_name], field.type)
        elif field.required:
            errors.append({"key": field.encode_name, "message": "required"})
    return errors


def read_struct(struct: type[S], value: Any) -> S:
    """`value` as `struct`; 400 with `errors` naming every field it refuses."""
    errors = struct_errors(struct, value)
    if errors:
        raise malformed(errors)
    return msgspec.convert(value, struct)


async def struct_body(request: Request[Any, Any, Any], struct: type[S]) -> S:
    """The body as `struct`: 400 when there is none, it is not JSON, or a field is refused."""
    return read_struct(struct, await json_body(request))


def problem_spec(description: str) -> ResponseSpec:
    """An application/problem+json answer in the OpenAPI document (`api.problems.Problem`)."""
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=description,
        generate_examples=False,
    )


def _json(schema: Schema, *, required: bool, description: str) -> RequestBody:
    return RequestBody(
        content={"application/json": OpenAPIMediaType(schema=schema)},
        required=required,
        description=description,
    )


def with_body(body: RequestBody) -> type[Operation]:
    """An operation class whose request body is `body` (set when Litestar builds it)."""

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return WithBody


# Handler name -> the body its operation takes.
REQUEST_BODIES: Final[dict[str, RequestBody]] = {
    "put_subscription": _json(
        SUBSCRIPTION, required=True, description="The subscription's configuration"
    ),
    "reset_subscription": _json(
        _object({"start": START}, required=["start"]),
        required=True,
        description="Where delivery starts again",
    ),
    "replay_parked": _json(
        _object({"up_to_seq": _nullable(SEQ)}),
        required=False,
        description="Replay the parked events up to this seq (none: every parked event)",
    ),
    "create_erasure": _json(
        closed(ErasureIn, {"reason": TEXT}),
        required=True,
        description="The entity whose payloads are erased, and why (the actor is a header)",
    ),
    "rebuild": _json(
        _object({"workers": Schema(type=INTEGER, minimum=1, maximum=MAX_WORKERS, default=1)}),
        required=False,
        description="The partitions of the rebuild, each folded by its own process (default 1)",
    ),
}


async def action_body(
    request: Request[Any, Any, Any], allowed: tuple[str, ...] = (), *, required: bool = False
) -> dict[str, Any]:
    """An action's body: empty (unless `required`) or an object of the fields `allowed`.

    Every action refuses an unknown field alike: 400 with `errors` naming it.
    """
    raw = await body_bytes(request)
    if raw is None:  # no body at all (JSON `null` is a body, and not an object)
        if required:
            raise bad_request(BODY_REQUIRED)
        return {}
    body = decoded(raw)
    if not isinstance(body, dict):
        want = ", ".join(allowed) if allowed else "no field"
        raise malformed([{"key": "", "message": f"expected a JSON object ({want})"}])
    errors = [{"key": str(k), "message": "unknown field"} for k in body if k not in allowed]
    if required:
        errors += [{"key": k, "message": "required"} for k in allowed if k not in body]
    if errors:
        raise malformed(errors)
    return body
