"""A subscription's configuration: parsed and validated from JSON-shaped input (pure).

`parse(name, body)` gives a `SubscriptionConfig` or raises `ConfigError` with
`errors: [{key, message}]` naming each bad field. `malformed` is True when the
body itself is wrong (not an object, an unknown field, a wrong type: HTTP 400);
otherwise the body is well formed but impossible (HTTP 422). Nothing here reads
an environment variable or a file: secrets given as `{"env"}`/`{"file"}` are
kept as references and resolved when a sink is built (`secrets.resolve`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, TypeGuard
from urllib.parse import urlsplit, urlunsplit

import msgspec

from eventstore.json_input import whole_number
from eventstore.model import EVENT_TYPES, MAX_SEQ, SOURCE_STREAM
from eventstore.rfc3339 import NoSuchTime, NotRfc3339, NoZone, parse_rfc3339
from eventstore.settings import collection_name_problem
from eventstore.subscriptions import templates

NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Standard Webhooks' schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_DELAYS: Final = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
MAX_LANES: Final = 64
# The bounds the parser holds a body to (api.bodies documents the same ones).
MAX_TIMEOUT_S: Final = 60
DEFAULT_TIMEOUT_S: Final = 15
MAX_AGAIN_MS: Final = 60_000
DEFAULT_MAXLEN: Final = 1_000_000
MAX_RETRIES: Final = 30
MAX_DELAY_S: Final = 7 * 86400
DEFAULT_JITTER: Final = 0.1
# A webhook secret's key, decoded: 24 to 64 bytes.
SECRET_BYTES: Final = (24, 64)
SECRET_FORM: Final = f"whsec_<base64 of {SECRET_BYTES[0]}-{SECRET_BYTES[1]} bytes>"
ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Redis numbers its databases with a 32-bit integer.
MAX_REDIS_DB: Final = 2**31 - 1
MASK: Final = "***"
WEBHOOK: Final = "webhook"
REDIS_PUBSUB: Final = "redis-pubsub"
REDIS_INVALIDATE: Final = "redis-invalidate"
REDIS_STREAM: Final = "redis-stream"
SINK_KINDS: Final = (WEBHOOK, REDIS_PUBSUB, REDIS_INVALIDATE, REDIS_STREAM)
# Headers a webhook's `headers` may not set (the protocol's own and the transport's): why.
RESERVED_HEADERS: Final = {
    "content-type": "the sink sends JSON and says so (application/json)",
    "host": "it is taken from the URL",
    "content-length": "the HTTP client sets it from the body it sends (the request's framing)",
    "transfer-encoding": "the HTTP client frames the request itself",
    "connection": "the HTTP client manages its connections",
}
WEBHOOK_HEADERS: Final = "webhook-* headers are the Standard Webhooks ones the sink signs with"
SECRET_SHAPES: Final = 'a string, {"env": NAME} or {"file": PATH}'
# `***` in a body: the stored value the API showed as `***`.
NO_STORED: Final = (
    '"***" stands for a stored value (the API shows secrets as ***), and there is none'
)
_TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# A header value: visible characters, spaces and tabs (no CR/LF: no header injection).
_HEADER_VALUE: Final = re.compile(r"^[\t\x20-\x7e\x80-\U0010ffff]*$")
# What a URI may hold as written (RFC 3986 2): unreserved, reserved and `%XX`; no space,
# control character or non-ASCII (a delivery would send a malformed request line).
_URI_CHAR: Final = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]")
_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# One step of a filter's field path (`a.b.c`): no `$` first, no dot, no space, no NUL
# (no MongoDB field name holds one).
PATH_SEGMENT: Final = re.compile(r"[^.$\s\x00][^.\s\x00]*")


def is_field_path(text: str) -> bool:
    """True for a field path (`a.b.c`): steps of `PATH_SEGMENT` joined by dots."""
    return bool(text) and all(PATH_SEGMENT.fullmatch(step) for step in text.split("."))


# A secret as configured: the literal value, or where to read it.
Secret = str | dict[str, str]


class Filter(msgspec.Struct, frozen=True, kw_only=True):
    """AND across criteria, OR within one; an empty criterion admits everything."""

    streams: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """Per-event retries: one attempt at once, then one after each delay (± jitter)."""

    delays_s: tuple[float, ...] = DEFAULT_DELAYS
    jitter: float = 0.1


class Start(msgspec.Struct, frozen=True, kw_only=True):
    """Where a new (or reset) subscription starts: latest, earliest, a seq, or a time."""

    kind: str = "latest"
    seq: int | None = None
    time: datetime | None = None


class SubscriptionConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One subscription: its sink (a dict as configured, secrets as given), filter, start, lanes, retry."""

    name: str
    sink: dict[str, Any]
    filter: Filter = Filter()
    start: Start = Start()
    lanes: int = 1
    retry: Retry = Retry()

    @property
    def kind(self) -> str:
        """The sink kind."""
        return str(self.sink["kind"])


class ConfigError(ValueError):
    """Bad configuration: `errors` is `[{key, message}]`; `malformed` means HTTP 400, else 422."""

    def __init__(self, errors: list[dict[str, str]], *, malformed: bool = False) -> None:
        # The body as a whole has the key "" (`the body: expected a JSON object`).
        super().__init__("; ".join(f"{e['key'] or 'the body'}: {e['message']}" for e in errors))
        self.errors = errors
        self.malformed = malformed


class _Check:
    """Collects problems: `bad` for impossible values (422), `malformed` for shape (400)."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []
        self.shape: list[dict[str, str]] = []

    def bad(self, key: str, message: str) -> None:
        self.errors.append({"key": key, "message": message})

    def malformed(self, key: str, message: str) -> None:
        self.shape.append({"key": key, "message": message})

    def fields(self, key: str, value: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for k in value:
            if k not in allowed:
                self.malformed(f"{key}.{k}" if key else k, "unknown field")

    def raise_if_any(self) -> None:
        if self.shape:
            raise ConfigError(self.shape, malformed=True)
        if self.errors:
            raise ConfigError(self.errors)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _strings(check: _Check, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        check.malformed(key, "expected a list of strings")
        return ()
    return tuple(value)


def parse_start(value: Any, key: str = "start") -> Start:
    """`"latest"` | `"earliest"` | `{"seq": N}` | `{"time": RFC3339}`; ConfigError otherwise.

    A start given on its own (a reset's) has no default: null is refused (400), as a
    start of another type is. (A PUT body's `start` may be null: the default, "latest".)
    """
    check = _Check()
    if value is None:
        check.malformed(key, f"null is not a start: {START_FORMS}")
    start = _start(check, key, value)
    check.raise_if_any()
    return start


START_FORMS: Final = (
    'a start is "latest", "earliest", a seq ({"seq": N}) or an RFC 3339 time '
    '({"time": "2026-01-01T00:00:00Z"})'
)


def _start(check: _Check, key: str, value: Any) -> Start:
    if value is None or value == "latest":
        return Start()
    if value == "earliest":
        return Start(kind="earliest")
    if isinstance(value, str):
        check.bad(key, f"{value!r} is not a start: {START_FORMS}")
        return Start()
    if not isinstance(value, dict):
        check.malformed(key, f"expected an object: {START_FORMS}")
        return Start()
    if len(value) != 1:
        # An object, but not of one field: say which fields a start object takes.
        given = ", ".join(f'"{f}"' for f in value) or "no field"
        check.malformed(
            key,
            f'give exactly one of "seq" or "time" in a start object (given: {given}): '
            f"{START_FORMS}",
        )
        return Start()
    ((field, v),) = value.items()
    if field == "seq":
        seq = whole_number(v)
        if seq is None:
            check.malformed(f"{key}.seq", "expected an integer")
        elif seq < 1:
            check.bad(f"{key}.seq", "seq starts at 1")
        elif seq > MAX_SEQ:
            check.bad(f"{key}.seq", f"at most {MAX_SEQ}")
        else:
            return Start(kind="seq", seq=seq)
        return Start()
    if field == "time":
        if not isinstance(v, str):
            check.malformed(f"{key}.time", "expected an RFC 3339 time")
            return Start()
        try:
            at = parse_rfc3339(v, up=True)  # "at or after": a fraction beyond µs raises it
        except NoZone:
            check.bad(f"{key}.time", "the time needs a zone (Z or +hh:mm)")
            return Start()
        except NotRfc3339:
            check.bad(f"{key}.time", f"{v!r} is not an RFC 3339 time: {START_FORMS}")
            return Start()
        except NoSuchTime as exc:  # of the form, but no instant (February 30, a leap second)
            check.bad(f"{key}.time", str(exc))
            return Start()
        return Start(kind="time", time=at)
    check.malformed(f"{key}.{field}", "unknown field")
    return Start()


def start_json(start: Start) -> Any:
    """The JSON form of a start, as it is given."""
    if start.kind == "seq":
        return {"seq": start.seq}
    if start.kind == "time" and start.time is not None:
        return {"time": start.time.isoformat().replace("+00:00", "Z")}
    return start.kind


def _secret(check: _Check, key: str, value: Any) -> None:
    """A secret is a non-empty string, `{"env": NAME}` or `{"file": PATH}` (another shape: 400)."""
    if isinstance(value, str):
        if not value:
            check.bad(key, "a secret may not be empty")
        return
    if isinstance(value, dict) and len(value) == 1:
        ((kind, where),) = value.items()
        if kind in ("env", "file"):
            if not isinstance(where, str):
                check.malformed(f"{key}.{kind}", "expected a string")
            elif not where:
                check.bad(f"{key}.{kind}", "may not be empty")
            elif kind == "env" and not ENV_NAME.fullmatch(where):
                check.bad(f"{key}.env", "not an environment variable name")
            return
    check.malformed(key, f"expected {SECRET_SHAPES}")


def header_value_ok(value: str) -> bool:
    """True when a header value holds no control character (CR, LF, NUL, ...)."""
    return bool(_HEADER_VALUE.fullmatch(value))


def webhook_key(secret: str) -> bytes | None:
    """The HMAC key of a `whsec_<base64>` secret (`SECRET_BYTES` long), or None when malformed."""
    body = secret.removeprefix("whsec_")
    if body == secret:
        return None
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if SECRET_BYTES[0] <= len(raw) <= SECRET_BYTES[1] else None


def _template(check: _Check, key: str, value: Any) -> tuple[templates.Part, ...] | None:
    if not isinstance(value, str):
        check.malformed(key, "expected a string")
        return None
    if not value:
        check.bad(key, "may not be empty")
        return None
    try:
        return templates.parse(value)
    except templates.TemplateError as exc:
        check.bad(key, str(exc))
        return None


def _required(check: _Check, key: str, value: Any) -> tuple[templates.Part, ...] | None:
    """A template that must be given (`required` when absent or null)."""
    if value is None:
        check.malformed(key, "required")
        return None
    return _template(check, key, value)


def _url(
    check: _Check, key: str, value: Any, schemes: tuple[str, ...], *, stored: bool = False
) -> None:
    if isinstance(value, dict):
        _secret(check, key, value)  # the whole URL read from the environment or a file
        return
    parts = _required(check, key, value)
    if parts is None:
        return
    url = templates.render(parts, dict.fromkeys(templates.PLACEHOLDERS, "x"))
    refused = _uri_text(url)
    if refused is not None:
        check.bad(key, f"not a valid URL: {refused}")
        return
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        reason = "the port is not a number from 1 to 65535" if "ort" in str(exc) else str(exc)
        check.bad(key, f"not a valid URL: {reason}")
        return
    if split.scheme not in schemes:
        check.bad(
            key, f"unsupported URL scheme {split.scheme or '(none)'!r}: use {'/'.join(schemes)}"
        )
    elif not split.hostname:
        check.bad(key, "the URL names no host")
    elif port == 0:
        check.bad(key, "not a valid URL: the port is not a number from 1 to 65535")
    elif split.scheme in ("redis", "rediss"):
        db = split.path.strip("/")
        if db and not (db.isascii() and db.isdigit() and int(db) <= MAX_REDIS_DB):
            check.bad(key, f"the database is a number from 0 to {MAX_REDIS_DB}, not {db!r}")
    if split.password == MASK and not stored:
        check.bad(
            key,
            f"{NO_STORED} for this URL: the password *** is kept only with the URL as "
            "shown (same user, host, port and path); give the password",
        )


def _uri_text(url: str) -> str | None:
    """Why `url` is not URI text (a character it may not hold, a stray `%`), or None."""
    for c in url:
        if not _URI_CHAR.fullmatch(c):
            return f"{c!r} may not appear in a URL (percent-encode it)"
    if _PERCENT.search(url):
        return "a '%' that does not start a percent-encoding such as %20"
    return None


def _sink(check: _Check, value: Any, *, stored: bool = False) -> dict[str, Any]:
    """The sink; `stored`: a stored document, where a legacy `***` is read, not refused."""
    if not isinstance(value, dict):
        check.malformed("sink", "expected an object")
        return {}
    kind = value.get("kind")
    if not isinstance(kind, str):
        what = "required" if kind is None else "expected a string"
        check.malformed("sink.kind", f"{what}: one of {', '.join(SINK_KINDS)}")
        return {}
    if kind not in SINK_KINDS:
        check.bad("sink.kind", f"unknown sink kind {kind!r}: use one of {', '.join(SINK_KINDS)}")
        return {}
    out = dict(value)
    if kind == WEBHOOK:
        check.fields("sink", value, ("kind", "url", "secret", "timeout_s", "headers"))
        _url(check, "sink.url", value.get("url"), ("http", "https"), stored=stored)
        secret = value.get("secret")
        if secret is None and "secret" in value:  # null is no secret, nor "keep the stored one"
            check.malformed(
                "sink.secret",
                f"expected {SECRET_SHAPES} (or a list of them), not null: leave the field "
                'out, or give "***", to keep the stored secret',
            )
        elif secret is None:
            check.bad("sink.secret", "a webhook needs a secret (whsec_...) to sign with")
        secrets = secret if isinstance(secret, list) else [secret] if secret is not None else []
        if isinstance(secret, list) and not 1 <= len(secret) <= 2:
            check.bad(
                "sink.secret",
                f"{len(secret)} secrets: give one, or [new, old] during a rotation "
                '("***" in the list stands for every stored secret)',
            )
        for i, s in enumerate(secrets):
            k = f"sink.secret[{i}]" if isinstance(secret, list) else "sink.secret"
            if isinstance(secret, list) and s != MASK and s in secrets[:i]:
                # Invariant: a rotation list holds distinct secrets (each signature once).
                check.bad(
                    k,
                    f"the same secret as sink.secret[{secrets.index(s)}]: a rotation is "
                    "[new, old], two different secrets (give one secret when there is one)",
                )
                continue
            _secret(check, k, s)
            if s == MASK:
                if not stored:
                    check.bad(k, f"{NO_STORED}: give the secret itself")
            elif isinstance(s, str) and s and webhook_key(s) is None:
                check.bad(k, f"a webhook secret is {SECRET_FORM}")
        timeout = value.get("timeout_s", DEFAULT_TIMEOUT_S)
        if not _is_number(timeout):
            check.malformed("sink.timeout_s", "expected a number")
        elif not 0 < timeout <= MAX_TIMEOUT_S:
            check.bad("sink.timeout_s", f"between 0 (excluded) and {MAX_TIMEOUT_S} seconds")
        headers = value.get("headers", {})
        if not isinstance(headers, dict):
            check.malformed("sink.headers", "expected an object")
        else:
            named: dict[str, str] = {}  # lower-case name -> the name as first given
            for h, v in headers.items():
                hk = f"sink.headers.{h}"
                if not stored and h.lower() in named:
                    check.bad(
                        "sink.headers",
                        f"{named[h.lower()]!r} and {h!r} name the same header (HTTP header "
                        "names are case-insensitive, RFC 9110 5.1): give it once",
                    )
                named.setdefault(h.lower(), h)
                if not _TOKEN.fullmatch(h):
                    check.bad(hk, "not a valid header name")
                elif h.lower() in RESERVED_HEADERS:
                    check.bad(hk, f"{h} may not be set: {RESERVED_HEADERS[h.lower()]}")
                elif h.lower().startswith("webhook-"):
                    check.bad(hk, f"{h} may not be set: {WEBHOOK_HEADERS}")
                _secret(check, hk, v)
                if v == MASK and not stored:
                    check.bad(hk, f"{NO_STORED} for header {h}: give its value")
                elif isinstance(v, str) and not header_value_ok(v):
                    check.bad(hk, "a header value may not hold control characters (CR, LF, ...)")
        out.setdefault("timeout_s", DEFAULT_TIMEOUT_S)
        out.setdefault("headers", {})
        return out
    check.fields(
        "sink",
        value,
        {
            REDIS_PUBSUB: ("kind", "url", "channel"),
            REDIS_INVALIDATE: ("kind", "url", "keys", "again_after_ms"),
            REDIS_STREAM: ("kind", "url", "stream", "maxlen"),
        }[kind],
    )
    _url(check, "sink.url", value.get("url"), ("redis", "rediss"), stored=stored)
    if kind == REDIS_PUBSUB:
        _required(check, "sink.channel", value.get("channel"))
    elif kind == REDIS_INVALIDATE:
        keys = value.get("keys")
        if not isinstance(keys, list):
            check.malformed("sink.keys", "expected a non-empty list of key templates")
        elif not keys:
            check.bad("sink.keys", "give at least one key or pattern to delete")
        else:
            for i, k in enumerate(keys):
                parts = _template(check, f"sink.keys[{i}]", k)
                if parts is not None and not templates.has_literal(parts):
                    check.bad(
                        f"sink.keys[{i}]",
                        f"{k!r} matches every key of the database: a pattern needs a literal "
                        "character or a placeholder (such as orders:* or order:{entity_key})",
                    )
        again = whole_number(value.get("again_after_ms", 0))
        if again is None:
            check.malformed("sink.again_after_ms", "expected an integer")
        elif not 0 <= again <= MAX_AGAIN_MS:
            check.bad("sink.again_after_ms", f"between 0 and {MAX_AGAIN_MS}")
        out["again_after_ms"] = again
    else:
        _required(check, "sink.stream", value.get("stream"))
        given = value.get("maxlen", DEFAULT_MAXLEN)
        maxlen = None if given is None else whole_number(given)
        if given is not None and maxlen is None:
            check.malformed("sink.maxlen", "expected an integer or null")
        elif maxlen is not None and maxlen < 1:
            check.bad("sink.maxlen", "at least 1 (or null: no trimming)")
        out["maxlen"] = maxlen
    return out


def _filter(check: _Check, value: Any, *, stored: bool = False) -> Filter:
    if value is None:
        return Filter()
    if not isinstance(value, dict):
        check.malformed("filter", "expected an object")
        return Filter()
    check.fields("filter", value, ("streams", "types", "actors", "fields"))
    f = Filter(
        streams=_strings(check, "filter.streams", value.get("streams")),
        types=_strings(check, "filter.types", value.get("types")),
        actors=_strings(check, "filter.actors", value.get("actors")),
        fields=_strings(check, "filter.fields", value.get("fields")),
    )
    # A stored filter is read as it is (one saved before stream names were checked still
    # loads: it matches nothing, as it did); a body's is checked.
    for i, stream in enumerate(() if stored else f.streams):
        problem = stream_name_problem(stream)
        if problem is not None:
            check.bad(f"filter.streams[{i}]", problem)
    for i, t in enumerate(f.types):
        if t not in EVENT_TYPES:
            check.bad(f"filter.types[{i}]", f"unknown event type {t!r}")
    for i, p in enumerate(f.fields):
        if not is_field_path(p):
            check.bad(f"filter.fields[{i}]", f"{p!r} is not a field path (a.b.c)")
    return f


def stream_name_problem(name: str) -> str | None:
    """What keeps `name` from naming a stream a filter could match, if anything.

    A stream is a captured collection, named by the rule `COLLECTIONS` and `ORDER_STREAM`
    follow (not blank, no `$` or NUL, not `system.`: `settings`), or `$source` (records
    that are not documents). Any other name can match no event: the subscription would
    silently deliver nothing.
    """
    if name == SOURCE_STREAM:
        return None
    if not name.strip():
        return f"{name!r} is not a stream name: a stream is a collection name (or $source)"
    problem = collection_name_problem(name)
    return None if problem is None else f"a stream is a collection name (or $source): {problem}"


def _retry(check: _Check, value: Any) -> Retry:
    if value is None:
        return Retry()
    if not isinstance(value, dict):
        check.malformed("retry", "expected an object")
        return Retry()
    check.fields("retry", value, ("delays_s", "jitter"))
    delays = value.get("delays_s", list(DEFAULT_DELAYS))
    jitter = value.get("jitter", DEFAULT_JITTER)
    if not isinstance(delays, list) or not all(_is_number(d) for d in delays):
        check.malformed("retry.delays_s", "expected a list of numbers")
        delays = list(DEFAULT_DELAYS)
    elif len(delays) > MAX_RETRIES:
        check.bad("retry.delays_s", f"at most {MAX_RETRIES} retries")
    elif any(not 0 <= d <= MAX_DELAY_S for d in delays):
        check.bad("retry.delays_s", f"each delay between 0 and {MAX_DELAY_S} seconds")
    if not _is_number(jitter):
        check.malformed("retry.jitter", "expected a number")
        jitter = DEFAULT_JITTER
    elif not 0 <= jitter <= 1:
        check.bad("retry.jitter", "a fraction between 0 and 1")
    return Retry(delays_s=tuple(float(d) for d in delays), jitter=float(jitter))


BODY_FIELDS: Final = ("sink", "filter", "start", "lanes", "retry")


def parse(
    name: str, body: Any, *, stored: bool = False, refused: Sequence[dict[str, str]] = ()
) -> SubscriptionConfig:
    """A validated configuration from a PUT body (or a declarative file's entry).

    A `***` left in a body (where nothing stored stands behind it: see `keep_secrets`)
    is refused; `stored` reads a stored document, where one is taken as it is.
    `refused`: problems found beside the body (against the stored subscription:
    `moved_secrets`, `api_references`), reported with the body's own (422).
    """
    check = _Check()
    check.errors.extend(refused)
    if not NAME_RE.fullmatch(name):
        check.bad("name", "1-64 of a-z 0-9 _ -, starting with a letter or digit")
    if not isinstance(body, dict):
        raise ConfigError([{"key": "", "message": "expected a JSON object"}], malformed=True)
    check.fields("", body, BODY_FIELDS)
    if "sink" in body:
        sink = _sink(check, body["sink"], stored=stored)
    else:
        check.malformed("sink", "required")
        sink = {}
    filt = _filter(check, body.get("filter"), stored=stored)
    start = _start(check, "start", body.get("start"))
    lanes = whole_number(body.get("lanes", 1))
    if lanes is None:
        check.malformed("lanes", "expected an integer")
        lanes = 1
    elif not 1 <= lanes <= MAX_LANES:
        check.bad("lanes", f"between 1 and {MAX_LANES}")
    elif lanes > 1 and sink.get("kind") == REDIS_STREAM:
        check.bad("lanes", "a redis-stream sink delivers strictly in seq order: lanes must be 1")
    retry = _retry(check, body.get("retry"))
    check.raise_if_any()
    return SubscriptionConfig(
        name=name, sink=sink, filter=filt, start=start, lanes=lanes, retry=retry
    )


def to_doc(config: SubscriptionConfig) -> dict[str, Any]:
    """The stored form (secrets as configured: literal values or references)."""
    return {
        "name": config.name,
        "sink": config.sink,
        "filter": {k: list(v) for k, v in msgspec.structs.asdict(config.filter).items()},
        "start": start_json(config.start),
        "lanes": config.lanes,
        "retry": {"delays_s": list(config.retry.delays_s), "jitter": config.retry.jitter},
    }


def from_doc(doc: dict[str, Any]) -> SubscriptionConfig:
    """A stored configuration read back (validated again: a bad document is refused loudly)."""
    body = {k: doc[k] for k in BODY_FIELDS if k in doc}
    return parse(str(doc["name"]), body, stored=True)


def _mask_url(url: Any) -> Any:
    if not isinstance(url, str):
        return url  # a reference names where the URL is read, not the URL
    split = urlsplit(url)
    if split.password is None:
        return url
    host = split.netloc.rpartition("@")[2]
    user = split.username or ""
    return urlunsplit(split._replace(netloc=f"{user}:{MASK}@{host}"))


def public(config: SubscriptionConfig) -> dict[str, Any]:
    """The configuration as shown: every literal secret as `***` (references shown as given)."""
    doc = to_doc(config)
    sink = dict(doc["sink"])
    sink["url"] = _mask_url(sink.get("url"))
    if "secret" in sink:
        secret = sink["secret"]
        if isinstance(secret, list):
            sink["secret"] = [s if isinstance(s, dict) else MASK for s in secret]
        else:
            sink["secret"] = secret if isinstance(secret, dict) else MASK
    if "headers" in sink:
        sink["headers"] = {
            h: (v if isinstance(v, dict) else MASK) for h, v in sink["headers"].items()
        }
    doc["sink"] = sink
    return doc


def keep_secrets(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """A PUT body's sink with `***` (and an absent secret) standing for the stored values.

    `"secret": "***"` (or none) keeps the stored secret(s); in a list, `***` stands
    for every stored secret, in place, without duplicates (`[new, "***"]` is the new
    one and then the stored ones); a header `***` keeps that header's stored value;
    a URL shown with `:***@` keeps the stored URL. A `***` with nothing stored behind
    it is left for `parse` to refuse; whether a kept secret may go to the new URL's
    origin is `moved_secrets`' to say.
    """
    if old is None or new.get("kind") != old.get("kind"):
        return new
    out = dict(new)
    stored = old.get("secret")
    if stored is not None:
        given = out.get("secret")
        if "secret" not in out or given == MASK:  # (a null is left for `parse` to refuse)
            out["secret"] = stored
        elif isinstance(given, list) and MASK in given:
            merged: list[Any] = []
            for s in given:
                for v in (stored if isinstance(stored, list) else [stored]) if s == MASK else [s]:
                    if v not in merged:
                        merged.append(v)
            out["secret"] = merged
    headers, old_headers = out.get("headers"), old.get("headers")
    if isinstance(headers, dict) and isinstance(old_headers, dict):
        by_name = {str(h).lower(): v for h, v in old_headers.items()}
        out["headers"] = {
            h: (by_name.get(h.lower(), v) if v == MASK else v) for h, v in headers.items()
        }
    url, old_url = out.get("url"), old.get("url")
    masked = isinstance(url, str) and f":{MASK}@" in url
    if masked and isinstance(old_url, str) and _mask_url(old_url) == url:
        out["url"] = old_url
    return out


def masked_keys(sink: Any) -> list[str]:
    """The keys of a sink where `***` is given (a secret, a header value, a URL's password)."""
    if not isinstance(sink, dict):
        return []
    found: list[str] = []
    secret = sink.get("secret")
    if secret == MASK:
        found.append("sink.secret")
    elif isinstance(secret, list):
        found.extend(f"sink.secret[{i}]" for i, s in enumerate(secret) if s == MASK)
    headers = sink.get("headers")
    if isinstance(headers, dict):
        found.extend(f"sink.headers.{h}" for h, v in headers.items() if v == MASK)
    url = sink.get("url")
    if isinstance(url, str) and f":{MASK}@" in url:
        found.append("sink.url")
    return found


# Names every host calls itself by (loopback): one server whichever a URL spells.
LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1", "0:0:0:0:0:0:0:1"})


def redis_address(url: Any) -> tuple[str, int, str] | None:
    """(host, port, db) of a literal Redis URL, to tell whether two sinks share a server.

    Obvious aliases of one server compare equal: host case, a trailing dot, the loopback
    names (`localhost`, `127.0.0.1`, `::1`: "localhost"), the default port 6379, the
    default database 0 (as the path or `?db=`), a database written with leading zeros.
    Aliases can never all be told (DNS names, NAT): the stream sink itself refuses to
    count another writer's entry as delivered (`RedisStreamSink`).
    """
    if not isinstance(url, str):
        return None
    try:
        split = urlsplit(url)
        port = split.port or 6379
    except ValueError:  # refused by `parse`; compared as written
        return (url, 6379, "0")
    host = (split.hostname or "localhost").rstrip(".")
    db = split.path.strip("/")
    if not db:
        db = dict(q.partition("=")[::2] for q in split.query.split("&")).get("db", "0")
    if host in LOOPBACK or host.startswith("127."):
        host = "localhost"
    db = str(int(db)) if db.isdigit() else db
    return (host, port, db)


# The port a URL of each scheme uses when it names none (to compare destinations).
DEFAULT_PORTS: Final = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}


def destination(url: Any) -> tuple[str, ...]:
    """Where a sink sends: the origin of its URL (scheme, host, port; RFC 6454), the same
    whatever the path, user or password; a URL read from a reference is that reference.

    A stored secret (`***`, or a secret left out) is kept only while it stays the same:
    another origin is another server, and would be handed the secret.
    """
    if not isinstance(url, str):
        return ("reference", repr(sorted(url.items())) if isinstance(url, dict) else repr(url))
    try:
        split = urlsplit(url)
        scheme = split.scheme.lower()
        port = split.port or DEFAULT_PORTS.get(scheme)
        return (scheme, split.hostname or "", str(port))
    except ValueError:  # not a URL (refused by `parse`): compared as written
        return ("text", url.partition("//")[2].partition("/")[0].rpartition("@")[2].lower())


KEPT_ELSEWHERE: Final = (
    "is kept only while sink.url keeps its origin (scheme, host and port); this update "
    "sends to another origin, which would receive it"
)


def restated_secrets(new: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """A secret given beside `***` that `***` already stands for, other than the stored
    first one: refused, naming its field.

    `[new, "***"]` puts a new secret first. A stored secret given there again would make
    the list repeat it (`***` is every stored secret), or reorder a rotation (the old
    secret first): neither is what the README's "new first, no duplicates" allows. The
    stored first one given first re-states the stored list (a PUT sent again): the same.
    """
    if old is None or new.get("kind") != old.get("kind"):
        return []
    given, stored = new.get("secret"), old.get("secret")
    if not isinstance(given, list) or MASK not in given or stored is None:
        return []
    kept = stored if isinstance(stored, list) else [stored]
    found: list[dict[str, str]] = []
    for i, s in enumerate(given):
        if s == MASK or s not in kept or (i == 0 and s == kept[0]):
            continue
        found.append(
            {
                "key": f"sink.secret[{i}]",
                "message": 'this secret is stored already, and "***" stands for it: '
                '[new, "***"] puts a secret not stored first (new first, no duplicates); '
                "to reorder or drop stored secrets, give them themselves",
            }
        )
    return found


def moved_secrets(new: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """The stored secrets an update's sink keeps (`***`, or a webhook secret left out) for
    a URL of another origin (`destination`): each refused, naming its field.

    (A URL password `***` is kept only with the very URL shown: `keep_secrets`, `parse`.)
    """
    if old is None or new.get("kind") != old.get("kind"):
        return []  # another kind stores nothing to keep: a `***` is refused as none stored
    if destination(new.get("url")) == destination(old.get("url")):
        return []
    found: list[dict[str, str]] = []
    if old.get("secret") is not None:
        given = new.get("secret")
        if "secret" not in new:
            found.append(
                {
                    "key": "sink.secret",
                    "message": f"an update without a secret keeps the stored one, which "
                    f"{KEPT_ELSEWHERE}: give the secret itself",
                }
            )
        elif given == MASK or isinstance(given, list):
            keys = (
                [f"sink.secret[{i}]" for i, s in enumerate(given) if s == MASK]
                if isinstance(given, list)
                else ["sink.secret"]
            )
            found.extend(
                {
                    "key": k,
                    "message": f'"***" stands for the stored secret, which '
                    f"{KEPT_ELSEWHERE}: give the secret itself",
                }
                for k in keys
            )
    headers, old_headers = new.get("headers"), old.get("headers")
    if isinstance(headers, dict) and isinstance(old_headers, dict):
        stored = {str(h).lower() for h in old_headers}
        found.extend(
            {
                "key": f"sink.headers.{h}",
                "message": f'"***" stands for the stored value of header {h}, which '
                f"{KEPT_ELSEWHERE}: give its value itself",
            }
            for h, v in headers.items()
            if v == MASK and str(h).lower() in stored
        )
    return found


def _is_reference(value: Any) -> TypeGuard[dict[str, str]]:
    """`{"env": NAME}` or `{"file": PATH}` as `parse` takes one (a refused one is refused
    for its shape alone)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, where),) = value.items()
    if kind == "env":
        return isinstance(where, str) and ENV_NAME.fullmatch(where) is not None
    return kind == "file" and isinstance(where, str) and bool(where)


def _references(sink: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(key, place, reference) of each secret reference of a sink: its URL, its webhook
    secret(s) (one place: a rotation moves them in the list), each header by its name."""
    found: list[tuple[str, str, dict[str, str]]] = []
    if _is_reference(sink.get("url")):
        found.append(("sink.url", "url", sink["url"]))
    secret = sink.get("secret")
    if isinstance(secret, list):
        found.extend(
            (f"sink.secret[{i}]", "secret", s) for i, s in enumerate(secret) if _is_reference(s)
        )
    elif _is_reference(secret):
        found.append(("sink.secret", "secret", secret))
    headers = sink.get("headers")
    if isinstance(headers, dict):
        found.extend(
            (f"sink.headers.{h}", f"headers.{str(h).lower()}", v)
            for h, v in headers.items()
            if _is_reference(v)
        )
    return found


API_REFERENCES: Final = (
    "a secret reference reads this server's environment or files, and the admin API takes "
    "one only where the subscription already has it, with sink.url keeping its origin: "
    "define the subscription in the SUBSCRIPTIONS file or with `eventstore subscriptions "
    "add`, send the secret itself, or set EVENTSTORE_API_SECRET_REFERENCES=true"
)


def api_references(new: Any, old: dict[str, Any] | None) -> list[dict[str, str]]:
    """The `{"env"}`/`{"file"}` references of a sink given over the admin API that the
    stored sink (`old`, None for a new subscription) does not already hold at that place,
    for the same destination: each refused, naming its field.

    Whoever holds the admin key would otherwise send any variable or file this server can
    read (its URI with the password, the signing key) to any URL.
    """
    if not isinstance(new, dict):
        return []
    kept: list[tuple[str, dict[str, str]]] = []
    if (
        old is not None
        and new.get("kind") == old.get("kind")
        and destination(new.get("url")) == destination(old.get("url"))
    ):
        kept = [(place, ref) for _, place, ref in _references(old)]
    return [
        {"key": key, "message": f"{json.dumps(ref)}: {API_REFERENCES}"}
        for key, place, ref in _references(new)
        if (place, ref) not in kept
    ]
