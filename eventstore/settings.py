"""Settings: one object, read from `EVENTSTORE_*` variables, CLI flags of the same names override.

`EVENTSTORE_SOURCE_DB` <-> `--source-db`. Values are validated here so a bad
setting is a clear error before anything connects.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

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


class SettingsError(ValueError):
    """A setting has a value that cannot work."""


class Redaction(msgspec.Struct, frozen=True):
    """A field path removed before storage, or kept with a fixed mask."""

    path: str
    mask: str | None = None


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
    batch_size: int = 1000
    lease_seconds: float = 10.0
    server_timeout_ms: int = 5000
    admin_key: str | None = None
    read_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bad_input not in BAD_INPUT_POLICIES:
            raise SettingsError(_bad_input_message(self.bad_input))
        for name, path in self.order_fields:
            _check_order_field(name, path)

    @property
    def order_paths(self) -> dict[str, str]:
        """Every order input's document path: ORDER_FIELDS with `order_fields` on top."""
        return {**ORDER_FIELDS, **dict(self.order_fields)}

    def __repr__(self) -> str:  # keys never appear in logs or errors
        shown = {f: getattr(self, f) for f in self.__struct_fields__}
        for secret in ("admin_key", "read_keys"):
            if shown[secret]:
                shown[secret] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def is_memory(self) -> bool:
        """True for the in-process store (`memory://`)."""
        return self.uri is not None and self.uri.startswith("memory://")

    @property
    def ingester_role(self) -> str:
        """The lease role and checkpoint name of the ingester of this source database."""
        return f"ingester:{self.source_db}"


# name -> parser of its string form (environment or CLI)
def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _positive_int(name: str) -> Any:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
        if number < 1:
            raise SettingsError(f"{name} must be at least 1, got {number}")
        return number

    return parse


def _positive_float(name: str) -> Any:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
        if not number > 0:
            raise SettingsError(f"{name} must be more than 0, got {value}")
        return number

    return parse


def _operations(value: str) -> tuple[str, ...]:
    ops = _csv(value)
    if value.strip().lower() == "all":
        return OPERATION_TYPES
    unknown = [op for op in ops if op not in OPERATION_TYPES]
    if unknown or not ops:
        raise SettingsError(
            f"OPERATIONS takes {', '.join(OPERATION_TYPES)} or all; unknown: {', '.join(unknown)}"
        )
    return ops


def _redactions(value: str) -> tuple[Redaction, ...]:
    found = []
    for part in _csv(value):
        path, sep, mask = part.partition(":")
        if not path or any(not c for c in path.split(".")):
            raise SettingsError(f"REDACT has a malformed path: {part!r}")
        found.append(Redaction(path, mask if sep else None))
    return tuple(found)


def _pre_images(value: str) -> str:
    if value not in PRE_IMAGE_MODES:
        raise SettingsError(f"PRE_IMAGES takes one of {', '.join(PRE_IMAGE_MODES)}, got {value!r}")
    return value


def _bad_input_message(value: object) -> str:
    return f"BAD_INPUT takes one of {', '.join(BAD_INPUT_POLICIES)}, got {value!r}"


def _bad_input(value: str) -> str:
    policy = value.strip().lower()
    if policy not in BAD_INPUT_POLICIES:
        raise SettingsError(_bad_input_message(value))
    return policy


def _plugin_specs(value: str) -> tuple[str, ...]:
    specs = _csv(value)
    for spec in specs:
        module, sep, attribute = spec.partition(":")
        if not sep or not module.strip() or not attribute.strip():
            raise SettingsError(f"PROJECTIONS takes module:attribute,...; got {spec!r}")
    return specs


_PATH_PART: Final = re.compile(r"^[^.$\x00\s][^.\x00]*$")


def _check_order_field(name: str, path: object) -> None:
    if name not in ORDER_FIELDS:
        raise SettingsError(
            f"ORDER_FIELDS has an unknown key {name!r} (keys: {', '.join(ORDER_FIELDS)})"
        )
    if not isinstance(path, str) or not all(_PATH_PART.match(p) for p in path.split(".")):
        raise SettingsError(
            f"ORDER_FIELDS {name}: {path!r} is not a document path (like total or customer.id)"
        )


def _order_fields(value: str) -> tuple[tuple[str, str], ...]:
    """A JSON object of input -> path, or `@FILE` holding one."""
    text = value.strip()
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise SettingsError(f"ORDER_FIELDS: cannot read {text[1:]!r}: {exc.strerror}") from None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"ORDER_FIELDS is not a JSON object: {exc}") from None
    if not isinstance(parsed, dict):
        raise SettingsError("ORDER_FIELDS must be a JSON object of input name -> document path")
    for name, path in parsed.items():
        _check_order_field(name, path)
    return tuple(sorted(parsed.items()))


def _stream_name(value: str) -> str:
    name = value.strip()
    if not name or "$" in name or "\x00" in name:
        raise SettingsError(f"ORDER_STREAM must be a collection name, got {value!r}")
    return name


def _statuses(value: str) -> tuple[str, ...]:
    names = _csv(value)
    if not names:
        raise SettingsError("PAID_STATUSES needs at least one status")
    return names


def _source(value: str) -> str:
    if value in ("mongo", "simulator") or (value.startswith("ndjson:") and len(value) > 7):
        return value
    raise SettingsError(f"SOURCE takes mongo, simulator or ndjson:PATH, got {value!r}")


def _uri(value: str) -> str:
    if value.startswith(("mongodb://", "mongodb+srv://", "memory://")):
        return value
    raise SettingsError("URI must start with mongodb://, mongodb+srv:// or memory://")


def _collections(value: str) -> tuple[str, ...]:
    names = _csv(value)
    if not names:
        raise SettingsError("COLLECTIONS needs at least one collection name")
    return names


def _nonempty(name: str) -> Any:
    def parse(value: str) -> str:
        if not value.strip():
            raise SettingsError(f"{name} must not be empty")
        return value.strip()

    return parse


_PARSERS: Final[dict[str, Any]] = {
    "uri": _uri,
    "source": _source,
    "source_db": _nonempty("SOURCE_DB"),
    "store_db": _nonempty("STORE_DB"),
    "collections": _collections,
    "operations": _operations,
    "redact": _redactions,
    "actor_field": _nonempty("ACTOR_FIELD"),
    "pre_images": _pre_images,
    "bad_input": _bad_input,
    "projections": _plugin_specs,
    "order_stream": _stream_name,
    "order_fields": _order_fields,
    "paid_statuses": _statuses,
    "snapshot_every": _positive_int("SNAPSHOT_EVERY"),
    "batch_size": _positive_int("BATCH_SIZE"),
    "lease_seconds": _positive_float("LEASE_SECONDS"),
    "server_timeout_ms": _positive_int("SERVER_TIMEOUT_MS"),
    "admin_key": lambda v: v or None,
    "read_keys": _csv,
}

SETTING_NAMES: Final = tuple(_PARSERS)


def load(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str | None] | None = None
) -> Settings:
    """Settings from the environment, then from overrides (CLI flags; None = not given)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        raw = env.get(PREFIX + name.upper())
        if overrides is not None and overrides.get(name) is not None:
            raw = overrides[name]
        if raw is not None and (raw != "" or name == "admin_key"):
            values[name] = parse(raw)
    return Settings(**values)
