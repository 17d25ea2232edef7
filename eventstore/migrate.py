"""The migration runner: numbered, idempotent steps from `migrations/`, recorded in `migrations`.

Each step is a module `migrations/mNNNN_<verb>_<object>.py` with
`async def up(db, ctx) -> None` (db: the store database) and, optionally,
`def fingerprint(ctx) -> str`: the settings it depends on; a recorded step whose
fingerprint changed runs again. A step raises `Skip` when it has nothing to do or
may not run here; skipped steps are not recorded, so a later run tries again.

The steps are this distribution's own: the `migrations` directory installed beside
`eventstore`, loaded under a private module name (`_eventstore_migrations`), never
whatever `migrations` package comes first on `sys.path` (another project's, in the
directory the command runs from). Steps import their package relatively (`from . import`).

Against a real server (it answers `hello`) a failing step stops the run with
`MigrationError`. A server that lacks what a step needs (mongomock-motor: no
collection options, `command()` answers only `ping`) gets the step reported as
skipped, with the reason, and the run goes on.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import msgspec
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from eventstore.clock import SystemClock
from eventstore.mongo.collections import MIGRATIONS
from eventstore.ports import Clock, SourceError
from eventstore.settings import Settings
from eventstore.sources.mongo import source_error

APPLIED: Final = "applied"
SKIPPED: Final = "skipped"
ALREADY_APPLIED: Final = "already-applied"

_STEP_NAME: Final = re.compile(r"^m\d{4}_[a-z0-9_]+$")
# The name our migrations package is loaded under: no other distribution claims it.
PACKAGE: Final = "_eventstore_migrations"


class Skip(Exception):
    """Raised by a step that has nothing to do or may not run here; `str()` is the reason."""


class MigrationError(Exception):
    """A step failed on a real server; the run stopped. `report` has the steps done before it."""

    def __init__(self, message: str, report: MigrationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class MigrationContext:
    """What a step may use besides the store database."""

    settings: Settings
    source: AsyncDatabase[Any]
    real_server: bool


@dataclass(frozen=True)
class Step:
    """One migration: its name (the module's), `up`, and what settings it depends on."""

    name: str
    up: Callable[[AsyncDatabase[Any], MigrationContext], Awaitable[None]]
    fingerprint: Callable[[MigrationContext], str] | None = None


class StepResult(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one step: applied, skipped (with the reason) or already applied."""

    name: str
    status: str
    reason: str | None = None

    def __str__(self) -> str:
        if self.status == SKIPPED:
            return f"skipped {self.name}: {self.reason}"
        if self.status == ALREADY_APPLIED:
            return f"already applied {self.name}"
        return f"applied {self.name}" + (f" ({self.reason})" if self.reason else "")


class MigrationReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every step in order, and whether the server was a real one (it answered `hello`)."""

    real_server: bool
    steps: list[StepResult]

    def named(self, status: str) -> list[str]:
        """Names of the steps with this status, in order."""
        return [step.name for step in self.steps if step.status == status]

    @property
    def applied(self) -> list[str]:
        """Steps applied by this run."""
        return self.named(APPLIED)

    @property
    def skipped(self) -> list[str]:
        """Steps skipped by this run (not recorded: a later run tries again)."""
        return self.named(SKIPPED)

    @property
    def already_applied(self) -> list[str]:
        """Steps recorded by an earlier run."""
        return self.named(ALREADY_APPLIED)

    def __str__(self) -> str:
        lines = [str(step) for step in self.steps]
        lines.append(
            f"{len(self.applied)} applied, {len(self.skipped)} skipped, "
            f"{len(self.already_applied)} already applied"
        )
        return "\n".join(lines)


def migrations_dir() -> Path:
    """The `migrations` directory of this distribution: beside the `eventstore` package."""
    return Path(__file__).resolve().parents[1] / "migrations"


def _package() -> ModuleType:
    """Our migrations package, loaded once from `migrations_dir()` under the private name."""
    loaded = sys.modules.get(PACKAGE)
    if loaded is not None:
        return loaded
    directory = migrations_dir()
    init = directory / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        PACKAGE, init, submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None or not init.is_file():
        raise RuntimeError(f"this installation has no migrations: {init} is missing")
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package  # before running it, as importing a package does
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    return package


def load_steps() -> list[Step]:
    """Our steps, in number order (imported here, not at import time)."""
    package = _package()
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if _STEP_NAME.fullmatch(info.name)
    )
    steps = []
    for name in names:
        module = importlib.import_module(f"{PACKAGE}.{name}")
        steps.append(
            Step(name=name, up=module.up, fingerprint=getattr(module, "fingerprint", None))
        )
    return steps


async def migrate(
    target: AsyncMongoClient[Any] | AsyncDatabase[Any],
    settings: Settings,
    *,
    steps: Sequence[Step] | None = None,
    clock: Clock | None = None,
) -> MigrationReport:
    """Run the steps not yet applied, against a client (STORE_DB) or a store database.

    Raises `SourceError` when the server cannot be reached and `MigrationError`
    when a step fails on a real server.
    """
    store, source = _databases(target, settings)
    clock = clock or SystemClock()
    steps = load_steps() if steps is None else list(steps)
    ctx = MigrationContext(settings=settings, source=source, real_server=await _is_real(store))
    records = {doc["_id"]: doc for doc in await store[MIGRATIONS].find({}).to_list(None)}
    results: list[StepResult] = []
    for step in steps:
        fingerprint = step.fingerprint(ctx) if step.fingerprint is not None else None
        record = records.get(step.name)
        if record is not None and record.get("fingerprint") == fingerprint:
            results.append(StepResult(name=step.name, status=ALREADY_APPLIED))
            continue
        try:
            await step.up(store, ctx)
        except Skip as skip:
            results.append(StepResult(name=step.name, status=SKIPPED, reason=str(skip)))
            continue
        except (NotImplementedError, PyMongoError) as exc:
            if ctx.real_server:
                done = MigrationReport(real_server=True, steps=results)
                raise MigrationError(f"{step.name} failed: {describe(exc)}", done) from exc
            reason = f"needs a real MongoDB server ({describe(exc)})"
            results.append(StepResult(name=step.name, status=SKIPPED, reason=reason))
            continue
        # Recorded only after `up` succeeded: a step interrupted half-way runs again
        # (every step is idempotent).
        await store[MIGRATIONS].update_one(
            {"_id": step.name},
            {"$set": {"applied_at": clock.now(), "fingerprint": fingerprint}},
            upsert=True,
        )
        again = "settings changed" if record is not None else None
        results.append(StepResult(name=step.name, status=APPLIED, reason=again))
    return MigrationReport(real_server=ctx.real_server, steps=results)


def describe(exc: BaseException) -> str:
    """A driver or server error in one line: the server's message and code when it sent one."""
    if isinstance(exc, OperationFailure):
        details = exc.details or {}
        message = details.get("errmsg") or str(exc)
        return f"{message} (code {exc.code})"
    return f"{type(exc).__name__}: {exc}"


def _databases(
    target: AsyncMongoClient[Any] | AsyncDatabase[Any], settings: Settings
) -> tuple[AsyncDatabase[Any], AsyncDatabase[Any]]:
    """(store, source) databases from a client or from the store database."""
    # Duck-typed so mongomock-motor's look-alikes work too: a client has `get_database`.
    found: Any = target
    if callable(getattr(type(found), "get_database", None)):
        return found[settings.store_db], found[settings.source_db]
    return found, found.client[settings.source_db]


async def _is_real(store: AsyncDatabase[Any]) -> bool:
    """True when the server answers `hello` (mongomock-motor answers only `ping`)."""
    try:
        await store.command("hello")
    except NotImplementedError:
        return False
    except ConnectionFailure as exc:
        raise source_error(store.client, exc) from exc
    except PyMongoError as exc:
        raise SourceError(f"MongoDB did not answer hello: {describe(exc)}") from exc
    return True
