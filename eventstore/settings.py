"""Settings: one object, read from `EVENTSTORE_*` variables, CLI flags of the same names override.

`EVENTSTORE_SOURCE_DB` <-> `--source-db`. Values are validated here so a bad
setting is a clear error before anything connects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import msgspec

PREFIX: Final = "EVENTSTORE_"
OPERATION_TYPES: Final = ("insert", "update", "replace", "delete")
PRE_IMAGE_MODES: Final = ("off", "when-available", "required")


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
    snapshot_every: int = 100
    batch_size: int = 1000
    lease_seconds: float = 10.0
    server_timeout_ms: int = 5000
    admin_key: str | None = None
    read_keys: tuple[str, ...] = ()
    # Seconds this process's capture may retry before readiness answers 503.
    unhealthy_after: float = 30.0
    # A JSON file of subscriptions applied at start (created or updated by name).
    subscriptions: str | None = None

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
    "snapshot_every": _positive_int("SNAPSHOT_EVERY"),
    "batch_size": _positive_int("BATCH_SIZE"),
    "lease_seconds": _positive_float("LEASE_SECONDS"),
    "server_timeout_ms": _positive_int("SERVER_TIMEOUT_MS"),
    "admin_key": lambda v: v or None,
    "read_keys": _csv,
    "unhealthy_after": _positive_float("UNHEALTHY_AFTER"),
    "subscriptions": _nonempty("SUBSCRIPTIONS"),
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
