"""Failure classification and back-off for supervised workers (pure: no I/O, no clock).

A worker's failure is either *transient* (the deployment is briefly away or
changing primaries: retry from the checkpoint) or *fatal* (retrying cannot
help: stop the worker in `failed`). The rule is closed-world on purpose: only
the failures listed here are transient, and anything nobody classified (a bug)
is fatal, so a worker never retries a bug forever.

The transient list follows the drivers' specifications: the SDAM "not primary"
and "node is recovering" codes, the retryable-writes codes, the change-stream
resumable codes, write-concern timeouts, and the error labels the server puts on
retryable failures.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from typing import Final, Literal

from pymongo import errors as pymongo_errors

from eventstore.driver_text import without_topology
from eventstore.errors import scrub, user_message
from eventstore.ports import HistoryLost, LogConflict

TRANSIENT: Final = "transient"
FATAL: Final = "fatal"
Classification = Literal["transient", "fatal"]

# Retryable and resumable server error codes (retryable writes, SDAM, change streams specs).
RETRYABLE_CODES: Final = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        43,  # CursorNotFound (change streams: resumable)
        63,  # StaleShardVersion
        64,  # WriteConcernFailed (wtimeout)
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        133,  # FailedToSatisfyReadPreference
        134,  # ReadConcernMajorityNotAvailableYet
        150,  # StaleEpoch
        189,  # PrimarySteppedDown
        234,  # RetryChangeStream
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10058,  # LegacyNotPrimary
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13388,  # StaleConfig
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
# Codes that are fatal whatever label they carry: no retry fixes credentials or rights.
FATAL_CODES: Final = frozenset({13, 18, 8000, 31})  # Unauthorized, AuthenticationFailed, Atlas
RETRYABLE_LABELS: Final = frozenset(
    {"RetryableWriteError", "ResumableChangeStreamError", "TransientTransactionError"}
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes (`raise ... from`), outermost first, without cycles."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )


def _codes(exc: pymongo_errors.OperationFailure) -> list[int]:
    """Every server error code an operation failure carries (bulk writes carry several)."""
    # A bulk write's own code (65, "multiple errors") says nothing: its items do.
    bulk = isinstance(exc, pymongo_errors.BulkWriteError)
    codes = [exc.code] if exc.code is not None and not bulk else []
    details = exc.details if isinstance(exc.details, dict) else {}
    for key in ("writeErrors", "writeConcernErrors"):
        for item in details.get(key) or ():
            if isinstance(item, dict) and isinstance(item.get("code"), int):
                codes.append(item["code"])
    wce = details.get("writeConcernError")
    if isinstance(wce, dict) and isinstance(wce.get("code"), int):
        codes.append(wce["code"])
    return codes


def _labels(exc: pymongo_errors.PyMongoError) -> set[str]:
    details = getattr(exc, "details", None)
    labels = set(getattr(exc, "_error_labels", ()) or ())
    if isinstance(details, dict):
        labels.update(x for x in details.get("errorLabels") or () if isinstance(x, str))
    return labels


def _classify_one(exc: BaseException) -> Classification | None:
    """The verdict for one exception of a chain, or None when it says nothing itself."""
    # Our own failures that a retry can fix say so (a checkpoint publication target away).
    if getattr(type(exc), "transient", False) is True:
        return TRANSIENT
    if isinstance(exc, pymongo_errors.ConfigurationError):  # InvalidURI is one
        return FATAL
    if isinstance(exc, pymongo_errors.OperationFailure):
        codes = _codes(exc)
        if any(c in FATAL_CODES for c in codes):
            return FATAL
        if isinstance(exc, pymongo_errors.WTimeoutError):
            return TRANSIENT
        if codes and all(c in RETRYABLE_CODES for c in codes):
            return TRANSIENT
        if _labels(exc) & RETRYABLE_LABELS:
            return TRANSIENT
        return FATAL
    # AutoReconnect, NetworkTimeout, NotPrimaryError, ServerSelectionTimeoutError,
    # WaitQueueTimeoutError: the deployment is away or electing.
    if isinstance(exc, pymongo_errors.ConnectionFailure):
        details = getattr(exc, "details", None)
        if isinstance(details, dict) and details.get("code") in FATAL_CODES:
            return FATAL
        return TRANSIENT
    if isinstance(exc, pymongo_errors.PyMongoError) and _labels(exc) & RETRYABLE_LABELS:
        return TRANSIENT
    return None


def classify(exc: BaseException) -> Classification:
    """`transient` or `fatal`: the first exception of the cause chain that says, else fatal.

    An eventstore error wrapping a driver error (`SourceError ... from exc`) is
    judged by the driver error it wraps.
    """
    for link in _chain(exc):
        verdict = _classify_one(link)
        if verdict is not None:
            return verdict
    return FATAL


class Backoff:
    """Capped exponential back-off with full jitter: about `first`, doubling to `cap` seconds.

    `delay()` gives the next wait and counts the attempt; `reset()` after the
    worker made progress. `ceiling` is the un-jittered bound of the next wait.
    """

    def __init__(
        self,
        *,
        first: float = 0.1,
        cap: float = 30.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < first <= cap:
            raise ValueError("back-off needs 0 < first <= cap")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    @property
    def ceiling(self) -> float:
        """The next wait before jitter: first * 2**attempts, at most cap."""
        return min(self.cap, self.first * 2.0 ** min(self.attempts, 64))

    def delay(self) -> float:
        """The next wait, in seconds: within [ceiling * (1 - jitter), ceiling]."""
        ceiling = self.ceiling
        self.attempts += 1
        fraction: float = self._rng.random()
        return ceiling * (1 - self.jitter * fraction)

    def reset(self) -> None:
        """Start again from `first` (the worker made progress)."""
        self.attempts = 0


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """An error as workers show it, credentials in URIs and every configured key removed.

    The service's own errors are written for people and name what and where
    (`ndjson: line 51: not valid JSON`); a conflict says it is one. Any other
    error (the driver's, a bug) reads `Type: message`.
    """
    if type(exc).__module__.startswith("eventstore.") and str(exc):
        if isinstance(exc, (LogConflict, HistoryLost)):
            text = user_message(exc) or str(exc)
        else:
            text = str(exc)
    else:  # a message-less error (a timeout) is its type alone, not `TimeoutError: `
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = scrub(without_topology(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    # `user:password@host` outside a mongodb URI (a driver message quoting a host).
    return re.sub(r"\b[^\s/@:]+:[^\s/@]+@(?=[\w.-]+)", "***@", text)
