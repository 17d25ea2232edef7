"""Failure classification and back-off: what is retried, what stops a worker, how long it waits."""

from __future__ import annotations

import random

import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    InvalidURI,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
    WTimeoutError,
)

from eventstore.failures import FATAL, TRANSIENT, Backoff, classify, describe
from eventstore.leasing import LeaseLost
from eventstore.ports import LogConflict, SourceError


@pytest.mark.parametrize(
    "exc",
    [
        AutoReconnect("connection reset"),
        NetworkTimeout("timed out"),
        NotPrimaryError("not primary", {"code": 10107, "errmsg": "not primary"}),
        ServerSelectionTimeoutError("no servers"),
        WTimeoutError("waiting for replication timed out", 64, {"code": 64}),
        OperationFailure("stepped down", 189),
        OperationFailure("interrupted at shutdown", 11600),
        OperationFailure("stale config", 13388),
        OperationFailure("retry change stream", 234),
        WriteError("not writable primary", 10107),
        OperationFailure(
            "labelled", 99999, {"code": 99999, "errorLabels": ["ResumableChangeStreamError"]}
        ),
        BulkWriteError(
            {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "wtimeout"}]}
        ),
    ],
)
def test_transient_failures_are_retried(exc: Exception) -> None:
    assert classify(exc) == TRANSIENT


@pytest.mark.parametrize(
    "exc",
    [
        OperationFailure("not authorized on shop to execute command", 13),
        OperationFailure("Authentication failed.", 18),
        # An auth failure is fatal even when the server labels the operation retryable.
        OperationFailure("no", 13, {"code": 13, "errorLabels": ["RetryableWriteError"]}),
        ConfigurationError("bad option"),
        InvalidURI("mongodb://"),
        DuplicateKeyError("E11000", 11000),
        OperationFailure("unknown code", 2),
        BulkWriteError({"writeErrors": [{"code": 11000}], "writeConcernErrors": []}),
        LogConflict("seq 5 holds a different event"),
        LeaseLost("lost"),
        ValueError("a bug"),
        KeyError("another bug"),
    ],
)
def test_fatal_and_unclassified_failures_stop_the_worker(exc: Exception) -> None:
    assert classify(exc) == FATAL


def test_a_wrapped_driver_error_is_judged_by_its_cause() -> None:
    def wrapped(cause: Exception) -> SourceError:
        try:
            raise SourceError("cannot reach MongoDB") from cause
        except SourceError as exc:
            return exc

    assert classify(wrapped(ServerSelectionTimeoutError("x"))) == TRANSIENT
    assert classify(wrapped(OperationFailure("not authorized", 13))) == FATAL
    assert classify(SourceError("ndjson: line 3: not JSON")) == FATAL


def test_backoff_doubles_from_first_to_its_cap_with_bounded_jitter() -> None:
    backoff = Backoff(first=0.1, cap=30.0, jitter=0.5, rng=random.Random(7))
    ceilings, delays = [], []
    for _ in range(12):
        ceilings.append(backoff.ceiling)
        delays.append(backoff.delay())
    assert ceilings == [min(30.0, 0.1 * 2**i) for i in range(12)]
    assert ceilings[-1] == 30.0 and ceilings[8] == 25.6
    assert all(c * 0.5 <= d <= c for c, d in zip(ceilings, delays, strict=True))
    assert len(set(delays)) == len(delays)  # jittered: no two instances retry in lockstep
    backoff.reset()
    assert backoff.ceiling == 0.1


def test_backoff_refuses_nonsense() -> None:
    for first, cap in ((0, 1), (-1, 1), (2, 1)):
        with pytest.raises(ValueError) as refused:
            Backoff(first=first, cap=cap)
        assert str(refused.value) == "back-off needs 0 < first <= cap"
    for jitter in (1.5, -0.1):
        with pytest.raises(ValueError) as refused:
            Backoff(first=1, cap=2, jitter=jitter)
        assert str(refused.value) == "jitter is a fraction between 0 and 1"


def test_backoff_defaults_and_the_ends_of_the_jitter_range() -> None:
    """About 0.1 s doubling to 30 s, by default; no jitter waits the ceiling, full jitter any part."""
    default = Backoff(rng=random.Random(3))
    assert (default.first, default.cap, default.jitter) == (0.1, 30.0, 0.5)
    for _ in range(20):
        default.delay()
    assert default.ceiling == 30.0
    steady = Backoff(first=1, cap=8, jitter=0)
    assert [steady.delay() for _ in range(5)] == [1, 2, 4, 8, 8]
    full = Backoff(first=1, cap=8, jitter=1, rng=random.Random(5))
    delays = [full.delay() for _ in range(4)]
    assert all(0 <= d <= c for d, c in zip(delays, [1, 2, 4, 8], strict=True))


def test_describe_scrubs_credentials_and_configured_keys() -> None:
    exc = ServerSelectionTimeoutError(
        "mongodb://admin:s3cret@db1:27017 unreachable; key sk-ADMIN-123; bob:pw@db2:27017"
    )
    text = describe(exc, ["sk-ADMIN-123"])
    assert text == (
        "ServerSelectionTimeoutError: mongodb://***@db1:27017 unreachable; key ***; ***@db2:27017"
    )


def test_a_bad_change_under_the_stop_policy_is_fatal_even_when_chained() -> None:
    from eventstore.badinput import BadChange

    bad = BadChange("ndjson", "line 51", "no resume token (_id._data)")
    assert classify(bad) == FATAL
    try:
        raise bad from ValueError("Expecting property name")
    except BadChange as chained:
        assert classify(chained) == FATAL
    assert describe(bad) == "ndjson: line 51: no resume token (_id._data)"


def test_the_services_own_errors_read_as_written_and_a_conflict_says_so() -> None:
    assert describe(SourceError("cannot reach MongoDB at db:27017 within 200 ms")) == (
        "cannot reach MongoDB at db:27017 within 200 ms"
    )
    assert describe(LogConflict("seq 5 holds a different event")) == (
        "another writer changed the log: seq 5 holds a different event"
    )
    assert describe(ValueError("a bug")) == "ValueError: a bug"


# The drivers' specifications' retryable and resumable codes, written out here (not read from
# the module) so that dropping or changing one of the module's codes fails a case.
SPEC_RETRYABLE_CODES = {
    6: "HostUnreachable",
    7: "HostNotFound",
    43: "CursorNotFound",
    63: "StaleShardVersion",
    64: "WriteConcernFailed",
    89: "NetworkTimeout",
    91: "ShutdownInProgress",
    133: "FailedToSatisfyReadPreference",
    134: "ReadConcernMajorityNotAvailableYet",
    150: "StaleEpoch",
    189: "PrimarySteppedDown",
    234: "RetryChangeStream",
    262: "ExceededTimeLimit",
    9001: "SocketException",
    10058: "LegacyNotPrimary",
    10107: "NotWritablePrimary",
    11600: "InterruptedAtShutdown",
    11602: "InterruptedDueToReplStateChange",
    13388: "StaleConfig",
    13435: "NotPrimaryNoSecondaryOk",
    13436: "NotPrimaryOrSecondary",
}


@pytest.mark.parametrize("code", sorted(SPEC_RETRYABLE_CODES))
def test_every_retryable_code_of_the_specs_is_transient_alone_and_in_a_bulk_write(
    code: int,
) -> None:
    name = SPEC_RETRYABLE_CODES[code]
    assert classify(OperationFailure(name, code)) == TRANSIENT
    assert classify(OperationFailure(name, code, {"code": code, "errmsg": name})) == TRANSIENT
    bulk = BulkWriteError({"writeErrors": [{"code": code}], "writeConcernErrors": []})
    assert classify(bulk) == TRANSIENT
    # one non-retryable item among retryable ones: the whole write is not retried
    mixed = BulkWriteError({"writeErrors": [{"code": code}, {"code": 11000}]})
    assert classify(mixed) == FATAL


@pytest.mark.parametrize("code", [13, 18, 8000, 31])
def test_an_auth_code_is_fatal_whatever_else_the_failure_says(code: int) -> None:
    labelled = {"code": code, "errorLabels": ["RetryableWriteError"]}
    assert classify(OperationFailure("auth", code, labelled)) == FATAL
    # a retryable write error alongside it does not make it retryable
    bulk = BulkWriteError({"writeErrors": [{"code": 189}, {"code": code}]})
    assert classify(bulk) == FATAL
    # nor does the connection failure it comes wrapped in
    assert classify(AutoReconnect("auth", {"code": code})) == FATAL
    assert classify(AutoReconnect("no code", {"code": 189})) == TRANSIENT


@pytest.mark.parametrize(
    "label", ["RetryableWriteError", "ResumableChangeStreamError", "TransientTransactionError"]
)
def test_each_retryable_label_makes_an_unknown_code_transient(label: str) -> None:
    assert classify(OperationFailure("x", 99999, {"code": 99999, "errorLabels": [label]})) == (
        TRANSIENT
    )
    assert classify(OperationFailure("x", 99999, {"code": 99999, "errorLabels": ["Other"]})) == (
        FATAL
    )


class ServerReplyError(PyMongoError):
    """A driver error that carries the server's reply (`details`) and no labels of its own."""

    def __init__(self, reply: dict[str, object]) -> None:
        super().__init__("server said no")
        self.details = reply


def test_a_retryable_label_counts_from_the_driver_or_from_the_servers_reply() -> None:
    # added by the driver itself (as it labels a retryable write), not in any reply
    driver_labelled = PyMongoError("x", error_labels=["TransientTransactionError"])
    assert classify(driver_labelled) == TRANSIENT
    assert classify(PyMongoError("x", error_labels=["SomethingElse"])) == FATAL
    assert classify(PyMongoError("x")) == FATAL
    # only in the server's reply
    assert classify(ServerReplyError({"errorLabels": ["RetryableWriteError"]})) == TRANSIENT
    assert classify(ServerReplyError({"errorLabels": ["SomethingElse"]})) == FATAL
    assert classify(ServerReplyError({"errorLabels": None})) == FATAL
    # an operation failure the driver labelled after the reply came
    failure = OperationFailure("unknown code", 99999)
    assert classify(failure) == FATAL
    failure._add_error_label("RetryableWriteError")
    assert classify(failure) == TRANSIENT


def test_a_write_concern_error_is_judged_by_its_own_code_and_odd_items_are_ignored() -> None:
    def reply(details: dict[str, object]) -> OperationFailure:
        return OperationFailure("write concern", None, details)

    assert classify(reply({"writeConcernError": {"code": 91, "errmsg": "shutdown"}})) == TRANSIENT
    assert classify(reply({"writeConcernError": {"code": 13, "errmsg": "unauthorized"}})) == FATAL
    assert classify(reply({"writeConcernError": {"code": 11000}})) == FATAL
    assert classify(reply({"writeConcernError": {"errmsg": "no code"}})) == FATAL
    assert classify(reply({"writeConcernError": "not a document"})) == FATAL
    # items that are not documents, or carry no integer code, say nothing
    odd = BulkWriteError({"writeErrors": [{"code": 189}, {"code": "x"}, "junk", {"errmsg": "?"}]})
    assert classify(odd) == TRANSIENT


def test_the_cause_chain_is_followed_once_through_context_unless_suppressed() -> None:
    def raised(inner: BaseException, *, suppress: bool) -> SourceError:
        try:
            try:
                raise inner
            except BaseException:
                if suppress:
                    raise SourceError("cannot reach MongoDB") from None
                raise SourceError("cannot reach MongoDB")  # noqa: B904 (the implicit context)
        except SourceError as exc:
            return exc

    assert classify(raised(AutoReconnect("reset"), suppress=False)) == TRANSIENT
    assert classify(raised(AutoReconnect("reset"), suppress=True)) == FATAL  # `from None`
    # a cycle of causes that says nothing ends (fatal) instead of looping
    first, second = ValueError("a"), KeyError("b")
    first.__cause__, second.__cause__ = second, first
    assert classify(first) == FATAL
    # a plain connection failure without a reply is transient
    assert classify(ConnectionFailure("gone")) == TRANSIENT


def test_an_error_of_the_service_without_a_message_reads_as_its_type() -> None:
    assert describe(SourceError("")) == "SourceError"
    assert describe(LogConflict("")) == "LogConflict"
    assert describe(TimeoutError()) == "TimeoutError"  # what asyncio.timeout raises
    assert describe(ValueError("x")) == "ValueError: x"
