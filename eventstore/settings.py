"""Settings: one object, read from `EVENTSTORE_*` variables, CLI flags of the same names override.

`EVENTSTORE_SOURCE_DB` <-> `--source-db`. Values are validated here so a bad
setting is a clear error before anything connects.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from eventstore import json_input
from eventstore.decimal_text import decimal_float, decimal_int
from eventstore.notes import NoteError, Verifier, shown_name_problem

log = logging.getLogger("eventstore.settings")

PREFIX: Final = "EVENTSTORE_"
OPERATION_TYPES: Final = ("insert", "update", "replace", "delete")
PRE_IMAGE_MODES: Final = ("off", "when-available", "required")
# The inputs of the order read models, and the document path each is read from by default.
ORDER_FIELDS: Final = {
    "status": "status",
    "total": "total",
    "currency": "currency",
    "customer_id": "customer.id",
    "customer_name": "customer.name",
    "number": "number",
    "created_at": "createdAt",
    "items": "items",
}
DEFAULT_PAID_STATUSES: Final = ("paid", "shipped", "delivered")
# What capture does with a change it cannot interpret (eventstore.badinput).
BAD_INPUT_POLICIES: Final = ("stop", "record")
# The longest LEASE_SECONDS, CHECKPOINT_INTERVAL and UNHEALTHY_AFTER: a day. No deployment
# wants a lease, a checkpoint gap or a retry span longer, and a day keeps `now + seconds`
# far inside what a datetime holds.
MOST_SECONDS: Final = 86_400
# The longest SERVER_TIMEOUT_MS: an hour (PyMongo refuses a billion).
MOST_SERVER_TIMEOUT_MS: Final = 3_600_000


class SettingsError(ValueError):
    """A setting has a value that cannot work: one line naming the setting.

    `setting` is the field (`snapshot_every`) and `problem` what is wrong with its
    value, when the error is about one setting; `load` names the variable or flag.
    """

    def __init__(self, message: str, *, setting: str | None = None, problem: str = "") -> None:
        super().__init__(message)
        self.setting = setting
        self.problem = problem


def _invalid(name: str, problem: str) -> SettingsError:
    """The error about one setting, named as the documentation names it (`SNAPSHOT_EVERY`)."""
    return SettingsError(f"{name.upper()} {problem}", setting=name, problem=problem)


class Redaction(msgspec.Struct, frozen=True):
    """A field path removed before storage, or kept with a fixed mask."""

    path: str
    mask: str | None = None


class Witness(msgspec.Struct, frozen=True):
    """A C2SP tlog-witness: its base URL and its cosignature verifier key."""

    url: str
    key: str


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting of DESIGN.md, with its default."""

    uri: str | None = None
    source: str = "mongo"
    source_db: str = "shop"
    store_db: str = "eventstore"
    collections: tuple[str, ...] = ("orders",)
    operations: tuple[str, ...] = OPERATION_TYPES
    redact: tuple[Redaction, ...] = ()
    actor_field: str = "updatedBy"
    pre_images: str = "off"
    bad_input: str = "stop"
    # Your own projections: `module:attribute` names (projections.plugins).
    projections: tuple[str, ...] = ()
    # The order read models: the stream they read, their inputs' paths (only those
    # given; the rest keep ORDER_FIELDS' defaults), the statuses whose totals count.
    order_stream: str = "orders"
    order_fields: tuple[tuple[str, str], ...] = ()
    paid_statuses: tuple[str, ...] = DEFAULT_PAID_STATUSES
    snapshot_every: int = 100
    # Entities whose states the projections of a process keep while following, shared by
    # them (a state not kept is folded again from its last snapshot); a one-worker rebuild
    # keeps up to 500,000.
    state_cache: int = 20_000
    batch_size: int = 1000
    lease_seconds: float = 10.0
    server_timeout_ms: int = 5000
    admin_key: str | None = None
    read_keys: tuple[str, ...] = ()
    # The verifiable log (README "Verifiable log").
    signing_key: str | None = None
    log_origin: str | None = None
    checkpoint_interval: float = 1.0
    signer_state: str | None = None
    publish_checkpoints: tuple[str, ...] = ()
    witnesses: tuple[Witness, ...] = ()
    # Seconds this process's capture may retry before readiness answers 503.
    unhealthy_after: float = 30.0
    # A JSON file of subscriptions applied at start (created or updated by name).
    subscriptions: str | None = None
    # Whether a subscription PUT over the admin API may give a secret as `{"env"}`/`{"file"}`:
    # such a reference reads this server's environment or files, and sends what it reads to
    # the sink's URL (the SUBSCRIPTIONS file and `eventstore subscriptions add` always may).
    api_secret_references: bool = False
    cors_origins: tuple[str, ...] = ()

    def __repr__(self) -> str:  # keys never appear in logs or errors
        shown = {f: getattr(self, f) for f in self.__struct_fields__}
        for secret in ("admin_key", "read_keys"):
            if shown[secret]:
                shown[secret] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def __post_init__(self) -> None:
        """Every value is checked whenever a Settings is built (from code, the environment, a copy)."""
        for name, check in _CHECKS.items():
            problem = check(getattr(self, name))
            if problem is not None:
                raise _invalid(name, problem)

    @property
    def order_paths(self) -> dict[str, str]:
        """Every order input's document path: ORDER_FIELDS with `order_fields` on top."""
        return {**ORDER_FIELDS, **dict(self.order_fields)}

    @property
    def is_memory(self) -> bool:
        """True for the in-process store (`memory://`)."""
        return self.uri is not None and self.uri.startswith("memory://")

    @property
    def origin(self) -> str:
        """The checkpoints' origin line: LOG_ORIGIN, else `eventstore/<store db>`."""
        return self.log_origin or f"eventstore/{self.store_db}"

    @property
    def signer_state_path(self) -> str | None:
        """Where the last signed size and root are kept: SIGNER_STATE, else beside the key."""
        if self.signer_state:
            return self.signer_state
        return self.signing_key + ".state" if self.signing_key else None

    @property
    def ingester_role(self) -> str:
        """The lease role and checkpoint name of the ingester of this source database."""
        return f"ingester:{self.source_db}"


# -- checks of typed values: None when fine, else what is wrong (after the setting's name) --------
_URI_SCHEMES: Final = ("mongodb://", "mongodb+srv://", "memory://")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The checks of numbers take `given`: the text the number was read from (a variable's or a
# flag's), which their message quotes as it was written (`got 86401`, not `got 86401.0`).
def _at_least_one(value: Any, given: str | None = None) -> str | None:
    if not _is_int(value):
        return f"must be a whole number, got {value!r}"
    return None if value >= 1 else f"must be at least 1, got {given or value}"


def _seconds(value: Any, given: str | None = None) -> str | None:
    if not (_is_int(value) or isinstance(value, float)):
        return f"must be a number of seconds, got {value!r}"
    if 0 < value <= MOST_SECONDS:
        return None
    return f"must be more than 0 and at most {MOST_SECONDS} (a day), got {given or value}"


def _check_server_timeout(value: Any, given: str | None = None) -> str | None:
    problem = _at_least_one(value, given)
    if problem is None and value > MOST_SERVER_TIMEOUT_MS:
        return f"must be at most {MOST_SERVER_TIMEOUT_MS} (an hour), got {given or value}"
    return problem


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must not be empty"
    return None


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _texts(value: Any) -> str | None:
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        return f"must be a list of non-empty names, got {value!r}"
    return None


def _check_keys(value: Any) -> str | None:
    """Bearer keys, never shown: the message names no value."""
    if _texts(value) is not None:
        return "must be a list of non-empty keys"
    return None


def _check_boolean(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    return f"takes true or false, got {value!r}"


def _check_uri(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.startswith(_URI_SCHEMES)):
        return None
    return "must start with mongodb://, mongodb+srv:// or memory://"


def _check_source(value: Any) -> str | None:
    if value in ("mongo", "simulator") or (
        isinstance(value, str) and value.startswith("ndjson:") and len(value) > 7
    ):
        return None
    return f"takes mongo, simulator or ndjson:PATH, got {value!r}"


# MongoDB's naming restrictions ("MongoDB Limits and Thresholds"). A database name is not
# empty, is under 64 bytes, and holds none of the characters refused on Windows (a superset
# of those refused on Unix and Linux: a name that passes works on either) nor NUL. A
# collection name is not empty, holds neither `$` nor NUL, and does not begin with
# `system.` (the server's own collections).
_DB_NAME_REFUSED: Final = '/\\. "$*<>:|?\x00'
MOST_DB_NAME_BYTES: Final = 63
_COLLECTION_NAME_REFUSED: Final = "$\x00"
_SYSTEM_PREFIX: Final = "system."


def _utf8_size(value: str) -> int | None:
    """The length of `value` in UTF-8 bytes; None when it is no UTF-8 text (a lone surrogate,
    as Python holds a variable's undecodable bytes)."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _check_db_name(value: Any) -> str | None:
    problem = _text(value)
    if problem is not None:
        return problem
    refused = next((c for c in value if c in _DB_NAME_REFUSED), None)
    if refused is not None:
        return (
            f"cannot hold {refused!r}: a MongoDB database name has none of "
            f'/\\. "$*<>:|? and no NUL, got {value!r}'
        )
    size = _utf8_size(value)
    if size is None:
        return f"must be UTF-8 text, got {value!r}"
    if size > MOST_DB_NAME_BYTES:
        return f"must be at most {MOST_DB_NAME_BYTES} bytes (MongoDB's limit), got {size} bytes"
    return None


def collection_name_problem(name: str) -> str | None:
    """What keeps `name` (not empty) from being a MongoDB collection name, if anything."""
    refused = next((c for c in name if c in _COLLECTION_NAME_REFUSED), None)
    if refused is not None:
        return f"cannot hold {refused!r} in a collection name, got {name!r}"
    if name.startswith(_SYSTEM_PREFIX):
        return f"cannot name a collection beginning with system. (MongoDB's own), got {name!r}"
    if _utf8_size(name) is None:
        return f"must be UTF-8 text, got {name!r}"
    return None


def _check_collections(value: Any) -> str | None:
    if isinstance(value, (tuple, list)) and not value:
        return "needs at least one collection name"
    problem = _texts(value)
    if problem is not None:
        return problem
    return next(filter(None, map(collection_name_problem, value)), None)


def _check_operations(value: Any) -> str | None:
    if not isinstance(value, (tuple, list)):
        return f"must be a list of operation types, got {value!r}"
    takes = f"takes {', '.join(OPERATION_TYPES)} or all"
    if not value:
        return f"{takes}, but names no operation type"
    unknown = [str(op) for op in value if op not in OPERATION_TYPES]
    if unknown:
        return f"{takes}; unknown: {', '.join(unknown)}"
    return None


def _check_redact(value: Any) -> str | None:
    if not isinstance(value, (tuple, list)):
        return f"must be a list of field paths, got {value!r}"
    for r in value:
        if not isinstance(r, Redaction):
            return f"must be a list of field paths, got {r!r}"
        if not r.path or any(not c for c in r.path.split(".")):
            return f"has a malformed path: {r.path!r}"
    return None


def _check_pre_images(value: Any) -> str | None:
    if value in PRE_IMAGE_MODES:
        return None
    return f"takes one of {', '.join(PRE_IMAGE_MODES)}, got {value!r}"


def _check_bad_input(value: Any) -> str | None:
    if value in BAD_INPUT_POLICIES:
        return None
    return f"takes one of {', '.join(BAD_INPUT_POLICIES)}, got {value!r}"


def _check_plugins(value: Any) -> str | None:
    problem = _texts(value)
    if problem is not None:
        return problem
    for spec in value:
        module, sep, attribute = spec.partition(":")
        if not sep or not module.strip() or not attribute.strip():
            return f"takes module:attribute,...; got {spec!r}"
    return None


_PATH_PART: Final = re.compile(r"^[^.$\x00\s][^.\x00]*$")


class _Unreadable(msgspec.Struct, frozen=True):
    """An ORDER_FIELDS text that could not be read: what its check reports."""

    problem: str


def _as_json(value: Any) -> str:
    """A value in an ORDER_* message as JSON spells it (`null`, `true`, `["a"]`, `"a..b"`)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # no JSON form (given as Settings(...) in Python)
        return repr(value)


def _check_order_fields(value: Any) -> str | None:
    if isinstance(value, _Unreadable):
        return value.problem
    if not isinstance(value, (tuple, list)):
        return f"must be a JSON object of input name -> document path, got {_as_json(value)}"
    for pair in value:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            return f"must map input names to document paths, got {_as_json(pair)}"
        name, path = pair
        if name not in ORDER_FIELDS:
            return f"has an unknown key {_as_json(name)} (keys: {', '.join(ORDER_FIELDS)})"
        if not isinstance(path, str) or not all(_PATH_PART.fullmatch(p) for p in path.split(".")):
            return f"{name}: {_as_json(path)} is not a document path (like total or customer.id)"
    return None


def _check_stream(value: Any) -> str | None:
    """A captured collection's name, by the rule COLLECTIONS follows (`system.` included)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a collection name, got {_as_json(value)}"
    return collection_name_problem(value)


def _check_statuses(value: Any) -> str | None:
    if isinstance(value, (tuple, list)) and not value:
        return "needs at least one status"
    return _texts(value)


def _check_origin(value: Any) -> str | None:
    """The checkpoints' origin line, under the rule of key names (C2SP tlog-checkpoint)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be one non-empty line"
    problem = shown_name_problem(value)
    if problem is not None:
        return f"{problem}, got {value!r}"
    return None


_PORT_RANGE: Final = "the port is not a number from 1 to 65535"


def _http_url_problem(url: str) -> str | None:
    """What keeps `url` (already known to start with http:// or https://) from naming a server."""
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError as exc:  # "Port out of range 0-65535", "Invalid IPv6 URL", ...
        return _PORT_RANGE if "ort" in str(exc) else str(exc)
    if not split.hostname:
        return "the URL names no host"
    return _PORT_RANGE if port == 0 else None


def _check_publish(value: Any) -> str | None:
    if not isinstance(value, (tuple, list)):
        return f"must be a list of dir:PATH or http(s):// targets, got {value!r}"
    for target in value:
        is_url = isinstance(target, str) and target.startswith(("http://", "https://"))
        ok = is_url or (isinstance(target, str) and target.startswith("dir:") and len(target) > 4)
        if not ok:
            return f"takes dir:PATH or http(s)://URL targets, got {target!r}"
        problem = _http_url_problem(target) if is_url else None
        if problem is not None:
            return f"has a target that is not a valid URL ({problem}): {target!r}"
    return None


def _written(witness: Witness) -> str:
    """A WITNESSES entry as it is written: `URL=VERIFIER_KEY`."""
    return f"{witness.url}={witness.key}" if witness.key else witness.url


def _check_witnesses(value: Any) -> str | None:
    if not isinstance(value, (tuple, list)):
        return f"must be a list of URL=VERIFIER_KEY, got {value!r}"
    for i, w in enumerate(value):
        if not isinstance(w, Witness):
            return f"takes URL=VERIFIER_KEY with an http(s) URL, got {w!r}"
        if not w.url.startswith(("http://", "https://")):
            return f"takes URL=VERIFIER_KEY with an http(s) URL, got {_written(w)!r}"
        problem = _http_url_problem(w.url)
        if problem is not None:
            return f"has a URL that is not valid ({problem}): {_written(w)!r}"
        try:
            Verifier.parse(w.key)
        except NoteError as exc:
            return f"has a malformed verifier key for {w.url}: {exc}"
        if any(w.url == o.url or w.key == o.key for o in value[:i]):
            return f"lists one witness twice (each URL and key at most once): {_written(w)!r}"
    return None


# A browser's `Origin`: scheme, host (a name or a bracketed IPv6 address) and an optional port.
_ORIGIN: Final = re.compile(
    r"https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?", re.ASCII
)


def _check_origins(value: Any) -> str | None:
    """`*` alone, or origins `scheme://host[:port]` (no path, query or trailing slash)."""
    if _texts(value) is not None:
        return f"takes * or origins like https://example.com[:port], got {value!r}"
    if tuple(value) == ("*",):
        return None
    for origin in value:
        match = _ORIGIN.fullmatch(origin)
        if not match:
            return f"takes * or origins like https://example.com[:port], got {origin!r}"
        if match[2] is not None and not 1 <= int(match[2][1:]) <= 65535:
            return f"has an origin whose port is not a number from 1 to 65535: {origin!r}"
    return None


_CHECKS: Final[dict[str, Callable[[Any], str | None]]] = {
    "uri": _check_uri,
    "source": _check_source,
    "source_db": _check_db_name,
    "store_db": _check_db_name,
    "collections": _check_collections,
    "operations": _check_operations,
    "redact": _check_redact,
    "actor_field": _text,
    "pre_images": _check_pre_images,
    "bad_input": _check_bad_input,
    "projections": _check_plugins,
    "order_stream": _check_stream,
    "order_fields": _check_order_fields,
    "paid_statuses": _check_statuses,
    "snapshot_every": _at_least_one,
    "state_cache": _at_least_one,
    "batch_size": _at_least_one,
    "lease_seconds": _seconds,
    "server_timeout_ms": _check_server_timeout,
    "admin_key": _optional_text,
    "read_keys": _check_keys,
    "signing_key": _optional_text,
    "log_origin": _check_origin,
    "checkpoint_interval": _seconds,
    "signer_state": _optional_text,
    "publish_checkpoints": _check_publish,
    "witnesses": _check_witnesses,
    "cors_origins": _check_origins,
    "unhealthy_after": _seconds,
    "subscriptions": _optional_text,
    "api_secret_references": _check_boolean,
}
# The settings read as numbers: their checks quote the text given (see `_at_least_one`).
_NUMBER_CHECKS: Final[dict[str, Callable[[Any, str], str | None]]] = {
    name: check
    for name, check in _CHECKS.items()
    if check in (_at_least_one, _seconds, _check_server_timeout)
}


# -- parsers of the string forms (environment, CLI): types only, the checks above do the rest --
def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


# The string forms of numbers and names. A text that is not a number is passed on as
# it is: the setting's check names it ("must be a whole number, got 'x'"), as it does
# a number out of range. (`name` keeps the parser tables readable.)
def _positive_int(name: str) -> Callable[[str], int | str]:
    def parse(value: str) -> int | str:
        n = decimal_int(value.strip())  # ASCII digits: `1_0` and `٣` are not numbers here
        return value if n is None else n

    return parse


def _positive_float(name: str) -> Callable[[str], float | str]:
    """Seconds as `decimal_float` reads them (as `monitor --interval` is read); other text is
    kept for the check to refuse. (A minus sign is read, for the check to name the range.)"""

    def parse(value: str) -> float | str:
        seconds = decimal_float(value.strip())
        return value if seconds is None else seconds

    return parse


def _boolean(value: str) -> bool | str:
    """`true` or `false` (any case); other text is kept for the check to refuse."""
    text = value.strip().lower()
    return {"true": True, "false": False}.get(text, value)


def _nonempty(name: str) -> Callable[[str], str]:
    return str.strip


def _operations(value: str) -> tuple[str, ...]:
    if value.strip().lower() == "all":
        return OPERATION_TYPES
    return _csv(value)


def _redactions(value: str) -> tuple[Redaction, ...]:
    found = []
    for part in _csv(value):
        path, sep, mask = part.partition(":")
        found.append(Redaction(path, mask if sep else None))
    return tuple(found)


def _order_fields(value: str) -> Any:
    """A JSON object of input -> path, or `@FILE` holding one, as (input, path) pairs."""
    text = value.strip()
    if text.startswith("@"):
        try:
            with open(text[1:], "rb") as f:
                text = f.read().decode("utf-8")
        except OSError as exc:
            return _Unreadable(f"cannot read {text[1:]!r}: {exc.strerror}")
        except UnicodeDecodeError as exc:
            return _Unreadable(f"cannot read {text[1:]!r}: not UTF-8 (at byte {exc.start})")
    try:
        parsed = json_input.loads(text)
    except ValueError as exc:
        return _Unreadable(f"is not a JSON object: {exc}")
    if not isinstance(parsed, dict):  # named as JSON spells it: `[1, 2]`, `null`
        return _Unreadable(
            f"must be a JSON object of input name -> document path, got {_as_json(parsed)}"
        )
    return tuple(sorted(parsed.items()))


def _witnesses(value: str) -> tuple[Witness, ...]:
    found = []
    for part in _csv(value):
        url, _, key = part.partition("=")
        found.append(Witness(url.strip(), key.strip()))
    return tuple(found)


_PARSERS: Final[dict[str, Callable[[str], Any]]] = {
    "uri": str,
    "source": str,
    "source_db": _nonempty("SOURCE_DB"),
    "store_db": _nonempty("STORE_DB"),
    "collections": _csv,
    "operations": _operations,
    "redact": _redactions,
    "actor_field": _nonempty("ACTOR_FIELD"),
    "pre_images": str,
    "bad_input": lambda v: v.strip().lower(),
    "projections": _csv,
    "order_stream": str.strip,
    "order_fields": _order_fields,
    "paid_statuses": _csv,
    "snapshot_every": _positive_int("SNAPSHOT_EVERY"),
    "state_cache": _positive_int("STATE_CACHE"),
    "batch_size": _positive_int("BATCH_SIZE"),
    "lease_seconds": _positive_float("LEASE_SECONDS"),
    "server_timeout_ms": _positive_int("SERVER_TIMEOUT_MS"),
    "admin_key": lambda v: v or None,
    "read_keys": _csv,
    "signing_key": str.strip,
    "log_origin": str.strip,
    "checkpoint_interval": _positive_float("CHECKPOINT_INTERVAL"),
    "signer_state": str.strip,
    "publish_checkpoints": _csv,
    "witnesses": _witnesses,
    "unhealthy_after": _positive_float("UNHEALTHY_AFTER"),
    "subscriptions": _nonempty("SUBSCRIPTIONS"),
    "api_secret_references": _boolean,
    "cors_origins": _csv,
}

SETTING_NAMES: Final = tuple(_PARSERS)

# Comma-separated lists whose empty value means none (no redaction, no read keys, ...): one of
# only commas and spaces lists nothing, and is refused rather than read as none. (The lists that
# need an item, COLLECTIONS, OPERATIONS and PAID_STATUSES, say so in their own checks.)
_OPTIONAL_LISTS: Final = frozenset(
    {"redact", "projections", "read_keys", "publish_checkpoints", "witnesses", "cors_origins"}
)


# `EVENTSTORE_*` names the project gives out that are no setting: the explorer's curl commands
# read a read key from `$EVENTSTORE_KEY` in the user's shell (never read here).
NOT_SETTINGS: Final = frozenset({PREFIX + "KEY"})


def shown_in_log(text: str) -> str:
    """A name or value from the environment or a flag as a log line may show it: as it is
    when every character is printable, else its `ascii()` (quoted, every control, format and
    bidirectional character and every non-ASCII one escaped), so it cannot move the cursor,
    retitle the terminal or forge a line of its own."""
    return text if text.isprintable() else ascii(text)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A line for each `EVENTSTORE_*` variable that is no setting (a typo would be ignored unseen),
    naming the closest setting when one is close."""
    names = [name.upper() for name in SETTING_NAMES]
    known = {PREFIX + name for name in names}
    lines = []
    for variable in sorted(environ):
        if not variable.startswith(PREFIX) or variable in known or variable in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(variable.removeprefix(PREFIX).upper(), names, n=1)
        hint = f" (did you mean {PREFIX}{close[0]}?)" if close else ""
        lines.append(f"{shown_in_log(variable)} is no setting{hint}: ignored")
    return lines


def _blank(name: str, raw: str) -> bool:
    """A value of only spaces (in an optional list, of only commas and spaces): never unset."""
    return not (_csv(raw) if name in _OPTIONAL_LISTS else raw.strip())


def load(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str | None] | None = None
) -> Settings:
    """Settings from the environment, then from overrides (CLI flags; None = not given).

    A bad value is a SettingsError naming the variable (`EVENTSTORE_BATCH_SIZE`) or the
    flag (`--batch-size`) it came from. An empty value is not given; a value of only
    spaces is refused, so a blank SIGNING_KEY or READ_KEYS never turns signing or
    authentication off unnoticed. An `EVENTSTORE_*` variable that is no setting is a
    WARNING naming it (and the setting it may have meant), never an error.
    """
    env = os.environ if environ is None else environ
    for line in unknown_variables(env):
        log.warning("%s", line)
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # the text each setting was read from
    for name, parse in _PARSERS.items():
        raw = env.get(PREFIX + name.upper())
        if overrides is not None and overrides.get(name) is not None:
            raw = overrides[name]
        if raw is not None and (raw != "" or name == "admin_key"):
            if raw and _blank(name, raw):
                problem = "must not be empty"
                where = origin_of(name, overrides)
                raise SettingsError(f"{where} {problem}", setting=name, problem=problem)
            values[name] = parse(raw)
            given[name] = raw.strip()
    try:
        return Settings(**values)
    except SettingsError as exc:
        if exc.setting is None or exc.setting not in _PARSERS:
            raise
        problem = exc.problem
        if exc.setting in _NUMBER_CHECKS and exc.setting in given:  # quoted as written
            check = _NUMBER_CHECKS[exc.setting]
            problem = check(values[exc.setting], given[exc.setting]) or problem
        where = origin_of(exc.setting, overrides)
        raise SettingsError(f"{where} {problem}", setting=exc.setting, problem=problem) from None


def origin_of(name: str, overrides: Mapping[str, str | None] | None = None) -> str:
    """The variable or flag setting `name` came from, as a line about it names it: the flag
    when one was given (`--snapshot-every`), else the variable (`EVENTSTORE_SNAPSHOT_EVERY`).

    `overrides` are the flags, as `load` takes them (None = not given).
    """
    if overrides is not None and overrides.get(name) is not None:
        return "--" + name.replace("_", "-")
    return PREFIX + name.upper()


def named_by_origin(message: str, overrides: Mapping[str, str | None] | None = None) -> str:
    """`message` naming the variable or flag its setting came from (`origin_of`).

    A line about a setting begins with the setting's name (`SIGNING_KEY key.pem is
    readable by group or others`, as a key file is refused when it is read) or its
    variable (`EVENTSTORE_SUBSCRIPTIONS: subs.json: ...`); told where the settings came
    from, that name becomes the flag when the flag was given. Any other message is
    returned as it is.
    """
    for name in SETTING_NAMES:
        for said in (PREFIX + name.upper(), name.upper()):
            if message.startswith(said) and message[len(said) : len(said) + 1] in (" ", ":"):
                return origin_of(name, overrides) + message[len(said) :]
    return message
