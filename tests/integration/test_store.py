"""Opening a store, and what it says about transactions (mongomock, and a scripted server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from mockupdb import Matcher, MockupDB
from pymongo import AsyncMongoClient

from eventstore.memory.store import MemoryStore
from eventstore.model import Checkpoint
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from eventstore.settings import Settings, SettingsError
from eventstore.storage import StoreError, open_store, redact_uri
from tests.integration.conftest import open_test_store

PASSWORD = "s3cret-pw"
HELLO: dict[str, Any] = {
    "ismaster": True,
    "isWritablePrimary": True,
    "maxWireVersion": 21,
    "minWireVersion": 0,
}
REPLICA_SET = {**HELLO, "setName": "rs0", "hosts": [], "logicalSessionTimeoutMinutes": 30}


class Recorder(Matcher):  # type: ignore[misc]
    """Matches the named commands and keeps each request, so an autoresponder can answer them."""

    def __init__(self, *names: str) -> None:
        super().__init__()
        self.names = names
        self.seen: list[dict[str, Any]] = []

    def matches(self, *args: Any, **kwargs: Any) -> bool:
        request: Any = args[0] if args else None
        name = getattr(request, "command_name", None)
        if name in self.names:
            self.seen.append(dict(request.doc))
            return True
        return False


@pytest.fixture
def server() -> Iterator[MockupDB]:
    """A scripted MongoDB that answers the handshake; `server.hello` sets what `hello` says."""
    mock = MockupDB(auto_ismaster=REPLICA_SET)
    mock.run()
    # Closing a client ends its implicit sessions: answer that, whatever the test scripts.
    mock.autoresponds(Recorder("endSessions"))
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
async def client(server: MockupDB) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A real PyMongo Async client of the scripted server."""
    real: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        server.uri, directConnection=True, serverSelectionTimeoutMS=2000
    )
    try:
        yield real
    finally:
        await real.close()


async def test_adapters_without_transactions_yield_no_session(store: Store) -> None:
    assert store.transactions is False

    async with store.transaction() as session:
        assert session is None


async def test_mongomock_store_says_why_it_has_no_transactions() -> None:
    store = await open_test_store("mongo")

    assert isinstance(store, MongoStore)
    assert store.degraded == ["transactions unavailable: server did not answer hello (mongomock)"]
    await store.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hello", "transactions", "degraded"),
    [
        (REPLICA_SET, True, []),
        ({**HELLO, "msg": "isdbgrid", "logicalSessionTimeoutMinutes": 30}, True, []),
        ({**HELLO, "logicalSessionTimeoutMinutes": 30}, False, ["a standalone server"]),
        ({**HELLO, "setName": "rs0", "hosts": []}, False, ["no logical sessions"]),
    ],
)
async def test_detect_reads_transactions_from_hello(
    server: MockupDB,
    client: AsyncMongoClient[dict[str, Any]],
    hello: dict[str, Any],
    transactions: bool,
    degraded: list[str],
) -> None:
    server.autoresponds("hello", hello)
    store = MongoStore(client, "eventstore")

    await store.detect()

    assert store.transactions is transactions
    assert len(store.degraded) == len(degraded)
    for reason, part in zip(store.degraded, degraded, strict=True):
        assert reason.startswith("transactions unavailable: ") and part in reason


@pytest.mark.slow
async def test_transaction_commits_the_writes_made_with_its_session(
    server: MockupDB, client: AsyncMongoClient[dict[str, Any]]
) -> None:
    server.autoresponds("hello", REPLICA_SET)
    writes = Recorder("update", "commitTransaction", "abortTransaction")
    server.autoresponds(writes, {"ok": 1, "n": 1, "nModified": 1})
    store = MongoStore(client, "eventstore")
    await store.detect()

    async with store.transaction() as session:
        assert session is not None
        await store.checkpoints.put(Checkpoint(name="ingester:shop"), session=session)

    update, commit = writes.seen
    assert update["update"] == "checkpoints"
    assert update["startTransaction"] is True and update["autocommit"] is False
    assert update["lsid"] == commit["lsid"] and update["txnNumber"] == commit["txnNumber"]
    assert "commitTransaction" in commit


@pytest.mark.slow
async def test_transaction_aborts_when_its_body_fails(
    server: MockupDB, client: AsyncMongoClient[dict[str, Any]]
) -> None:
    server.autoresponds("hello", REPLICA_SET)
    writes = Recorder("update", "commitTransaction", "abortTransaction")
    server.autoresponds(writes, {"ok": 1, "n": 1, "nModified": 1})
    store = MongoStore(client, "eventstore")
    await store.detect()

    with pytest.raises(RuntimeError, match="boom"):
        async with store.transaction() as session:
            await store.checkpoints.put(Checkpoint(name="ingester:shop"), session=session)
            raise RuntimeError("boom")

    assert [next(iter(w)) for w in writes.seen] == ["update", "abortTransaction"]


async def test_memory_uri_opens_the_in_process_store() -> None:
    store = await open_store(Settings(uri="memory://"))

    assert isinstance(store, MemoryStore)
    assert store.transactions is False


async def test_missing_uri_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="no URI: set EVENTSTORE_URI or --uri"):
        await open_store(Settings())


@pytest.mark.parametrize(
    "uri",
    [
        f"mongodb://admin:{PASSWORD}@db.example:notaport/",
        f"mongodb+srv://admin:{PASSWORD}@db.example:27017/",
    ],
)
async def test_bad_uri_is_a_clear_error_without_the_password(uri: str) -> None:
    with pytest.raises(StoreError) as raised:
        await open_store(Settings(uri=uri))

    message = str(raised.value)
    assert PASSWORD not in message
    assert "***@db.example" in message


def test_a_uri_of_another_scheme_is_refused_by_the_settings_without_the_password() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings(uri=f"postgres://admin:{PASSWORD}@db.example/")

    assert str(raised.value) == "URI must start with mongodb://, mongodb+srv:// or memory://"


async def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    # A name that never resolves (RFC 2606), not a refused port: PyMongo 4.20 leaks the
    # socket of a connect attempt that close() cancels, and warnings are errors here.
    uri = f"mongodb://admin:{PASSWORD}@db.example.invalid:27017/"

    with pytest.raises(StoreError) as raised:
        await open_store(Settings(uri=uri, server_timeout_ms=150))

    message = str(raised.value)
    assert message.startswith("cannot reach MongoDB at mongodb://***@db.example.invalid:27017/")
    assert "150 ms" in message
    assert PASSWORD not in message


async def test_the_uris_own_timeout_wins_over_the_setting() -> None:
    # SERVER_TIMEOUT_MS is a default: a URI that sets serverSelectionTimeoutMS keeps it.
    uri = "mongodb://db.example.invalid:27017/?ServerSelectionTimeoutMS=120"

    with pytest.raises(StoreError) as raised:
        await open_store(Settings(uri=uri, server_timeout_ms=60_000))

    assert "no server answered within 120 ms" in str(raised.value)


async def test_the_timeout_reported_is_the_one_in_force() -> None:
    uri = "mongodb://db.example.invalid:27017/?serverSelectionTimeoutMS=1.2e2"

    with pytest.raises(StoreError) as raised:
        await open_store(Settings(uri=uri))

    assert "no server answered within 120 ms" in str(raised.value)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("mongodb://u:p@h1,h2/db?x=1", "mongodb://***@h1,h2/db?x=1"),
        ("mongodb://u:p/a?b@h/db", "mongodb://***@h/db"),
        ("mongodb+srv://u%40x:p%2F@cluster.example", "mongodb+srv://***@cluster.example"),
        ("mongodb://h:27017/db", "mongodb://h:27017/db"),
    ],
)
def test_redact_uri_hides_the_credentials(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        # PyMongo warned of each timeout and waited its own 30 s instead.
        (
            "serverSelectionTimeoutMS=abc",
            "serverSelectionTimeoutMS must be an integer or float, got 'abc'",
        ),
        (
            "serverselectiontimeoutms=1000000000",
            "serverSelectionTimeoutMS must be greater than 0 and less than one billion, got"
            " '1000000000'",
        ),
        ("connectTimeoutMS=", "connectTimeoutMS must be an integer or float, got ''"),
        (
            "directConnection=true&socketTimeoutMS=-5",
            "socketTimeoutMS must be greater than 0 and less than one billion, got '-5'",
        ),
        # PyMongo warned and went on without each: `tls=maybe` connected unencrypted.
        ("tls=maybe", "The value of tls must be 'true' or 'false', got 'maybe'"),
        ("authMechanism=BOGUS", "authmechanism must be in ("),
        ("replicaSte=rs0", "unknown option 'replicaste' (PyMongo would go on without it)"),
        ("replicaSet=a&replicaSet=b", "Duplicate URI option 'replicaset'. Give each option once"),
        # It failed later, saying "no such file: None".
        (
            "tls=true&tlsCAFile=/nonexistent/ca.pem",
            "tlscafile: No such file or directory: '/nonexistent/ca.pem'",
        ),
        # A value that may be a secret is named, never quoted.
        ("authMechanismProperties=SECRETVALUE", "Malformed auth mechanism properties"),
    ],
)
async def test_a_uri_option_pymongo_would_warn_of_and_drop_is_refused_naming_it(
    option: str, problem: str
) -> None:
    uri = f"mongodb://admin:{PASSWORD}@db.example.invalid:27017/?{option}"

    with pytest.raises(StoreError) as raised:
        await open_store(Settings(uri=uri))

    message = str(raised.value)
    shown = redact_uri(uri)  # a secret option's value too is `***`
    assert message.startswith(f"bad MongoDB URI {shown}: ")
    assert message.partition(f"{shown}: ")[2].startswith(problem)
    assert PASSWORD not in message and "SECRETVALUE" not in message


def test_an_operation_waits_for_its_reply_at_most_the_operation_timeout() -> None:
    # A server that answers the handshake and then nothing else held every operation (and
    # so health, metrics and every command) forever: the client had no socketTimeoutMS.
    from eventstore.storage import OPERATION_TIMEOUT_MS, _timeouts

    uri = "mongodb://db.example.invalid:27017/"
    assert _timeouts(uri, 2000) == {
        "serverSelectionTimeoutMS": 2000,
        "connectTimeoutMS": 2000,
        "socketTimeoutMS": OPERATION_TIMEOUT_MS,
    }
    assert _timeouts(uri, 2000, bounded=False) == {
        "serverSelectionTimeoutMS": 2000,
        "connectTimeoutMS": 2000,
    }
    # The URI's own wins, 0 (no limit) too.
    assert _timeouts(uri + "?socketTimeoutMS=0", 2000) == {
        "serverSelectionTimeoutMS": 2000,
        "connectTimeoutMS": 2000,
    }


@pytest.mark.parametrize(
    ("argv", "bounded"),
    [(["migrate"], False), (["history", "orders", "o1"], True), (["verify"], True)],
)
def test_only_migrate_opens_the_store_without_a_reply_timeout(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], bounded: bool
) -> None:
    # An index build on a large collection answers when it is done: migrate waits for it.
    import io

    import eventstore.storage as storage
    from eventstore.cli import main

    asked: list[bool] = []

    async def opened(settings: Settings, *, bounded: bool = True) -> Any:
        asked.append(bounded)
        raise StoreError("stop here")

    monkeypatch.setattr(storage, "open_store", opened)
    uri = "mongodb://db.example.invalid:27017/"
    assert main([*argv, "--uri", uri], out=io.StringIO()) == 1
    assert asked == [bounded]


@pytest.mark.parametrize(
    "options",
    [
        "replicaSet=rs0&readPreference=secondaryPreferred&readPreferenceTags=dc:ny,rack:1"
        "&readPreferenceTags=",
        "w=majority&wtimeoutMS=5000&journal=true&retryWrites=false&retryReads=true",
        "authSource=admin&authMechanism=SCRAM-SHA-256&appName=shop",
        "compressors=zstd,snappy,zlib&zlibCompressionLevel=6",
        "tls=true&tlsAllowInvalidCertificates=true",
        "directConnection=true&maxPoolSize=50&minPoolSize=1&maxIdleTimeMS=1000",
        "readConcernLevel=majority&localThresholdMS=20&heartbeatFrequencyMS=10000",
        "authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc",
        "ssl=true&uuidRepresentation=standard&timeoutMS=10000&maxConnecting=2",
    ],
)
def test_the_options_a_real_deployment_uses_are_taken_without_a_warning(options: str) -> None:
    # Checking every option must refuse none PyMongo takes, nor warn twice of one it takes
    # (an unavailable compressor is the client's to warn of; warnings are errors here).
    from eventstore.storage import _check_options

    assert _check_options(f"mongodb://db.example.invalid/?{options}")


@pytest.mark.parametrize(
    "uri",
    [
        # A valid URI, quoted whole by an outage's line: its AWS session token never shows.
        f"mongodb://AKIA:{PASSWORD}@db.example.invalid:27017/?authMechanism=MONGODB-AWS"
        "&authSource=%24external&authMechanismProperties=AWS_SESSION_TOKEN:Hunter2tok",
        # A bad one, quoted by its refusal: the key file's password never shows.
        "mongodb://db.example.invalid:27017/?tls=false&tlsCertificateKeyFilePassword=Hunter2pw",
        "mongodb://db.example.invalid:27017/?TLSCERTIFICATEKEYFILEPASSWORD=Hunter2pw&tls=maybe",
    ],
)
async def test_a_secret_in_a_uri_option_never_shows_in_an_error(uri: str) -> None:
    with pytest.raises(StoreError) as raised:
        await open_store(Settings(uri=uri, server_timeout_ms=150))
    message = str(raised.value)
    assert "Hunter2" not in message and PASSWORD not in message
    assert "=***" in message


def test_scrub_and_redact_hide_secret_options_wherever_a_uri_is_quoted() -> None:
    from eventstore.errors import scrub

    text = (
        "at mongodb+srv://u:p@c.example/?authMechanismProperties=TOKEN_RESOURCE:Hunter2res"
        ";appName=a&tlsCertificateKeyFilePassword=Hunter2pw now"
    )
    assert scrub(text) == (
        "at mongodb+srv://***@c.example/?authMechanismProperties=***;appName=a"
        "&tlsCertificateKeyFilePassword=*** now"
    )
    assert redact_uri("mongodb://h/?tlsCertificateKeyFilePassword=x%26y") == (
        "mongodb://h/?tlsCertificateKeyFilePassword=***"
    )


async def test_a_compressor_pymongo_does_not_know_is_refused_not_dropped() -> None:
    with pytest.raises(StoreError) as raised:
        await open_store(Settings(uri="mongodb://db.example.invalid/?compressors=zlib,lz4"))
    assert str(raised.value) == (
        "bad MongoDB URI mongodb://db.example.invalid/?compressors=zlib,lz4: Unsupported"
        " compressor: lz4 (snappy, zlib or zstd), got 'zlib,lz4'"
    )


def test_an_srv_name_that_does_not_resolve_is_unreachable_not_a_bad_uri() -> None:
    from pymongo.errors import ConfigurationError

    from eventstore.storage import _open_error

    uri = "mongodb+srv://cluster0.example/?retryWrites=true"
    found = _open_error(
        ConfigurationError("The DNS query name does not exist: _mongodb._tcp.cluster0.example."),
        uri,
        5000,
    )
    assert str(found).startswith(f"cannot reach MongoDB at {uri}: The DNS query name")


def test_a_server_of_an_unsupported_wire_version_is_not_called_a_bad_uri() -> None:
    from pymongo.errors import ConfigurationError

    from eventstore.storage import _open_error

    uri = "mongodb://127.0.0.1:27017/?directConnection=true"
    message = "Server at 127.0.0.1:27017 reports wire version 0, but this version of PyMongo"
    found = _open_error(ConfigurationError(message), uri, 5000)
    assert str(found) == f"MongoDB at {uri} is not one this service supports: {message}"
