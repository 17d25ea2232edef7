"""Turning expected failures into one clear line for people (never a traceback, never a key)."""

from __future__ import annotations

from pymongo import errors as pymongo_errors

from eventstore.badinput import BadChange
from eventstore.ports import HistoryLost, LogConflict, SourceError
from eventstore.settings import SettingsError
from eventstore.uri_secrets import scrub


def user_message(exc: BaseException) -> str | None:
    """The message to show for an expected failure, or None for a bug (let it surface)."""
    from eventstore.migrate import MigrationError
    from eventstore.storage import AUTH_FAILED, StoreError

    if isinstance(exc, MigrationError):
        done = str(exc.report).strip()
        return scrub(f"migration failed: {exc}" + (f"\n{done}" if done else ""))
    if isinstance(exc, BadChange):
        return scrub(f"capture stopped at a change it cannot interpret: {exc}")
    if isinstance(exc, (SourceError, StoreError, SettingsError)):
        return scrub(str(exc))
    if isinstance(exc, HistoryLost):
        return scrub(f"the resume point is no longer in the source's history: {exc}")
    if isinstance(exc, LogConflict):
        return scrub(f"another writer changed the log: {exc}")
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}"
    if isinstance(exc, OSError):
        return scrub(str(exc))
    if isinstance(exc, pymongo_errors.ServerSelectionTimeoutError):
        return "cannot reach MongoDB (server selection timed out); check the URI and that the server is up"
    if isinstance(exc, (pymongo_errors.ConfigurationError, pymongo_errors.InvalidURI)):
        return scrub(f"bad MongoDB URI or options: {exc}")
    if isinstance(exc, pymongo_errors.OperationFailure) and exc.code == AUTH_FAILED:
        return "MongoDB refused the credentials (authentication failed): check the user name and password"
    if isinstance(exc, pymongo_errors.OperationFailure):
        return scrub(
            f"MongoDB refused an operation (code {exc.code}): {(exc.details and exc.details.get('errmsg')) or exc}"
        )
    if isinstance(exc, pymongo_errors.PyMongoError):
        return scrub(f"MongoDB error: {exc}")
    return None


__all__ = ["scrub", "user_message"]
