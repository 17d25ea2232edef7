"""Opening the store a URI names: `memory://` in process, `mongodb://` / `mongodb+srv://` on a server."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, Final

from pymongo import AsyncMongoClient
from pymongo.common import validate as validate_option
from pymongo.errors import (
    ConfigurationError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.uri_parser import split_options

from eventstore.memory.store import MemoryStore
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from eventstore.settings import Settings
from eventstore.uri_secrets import SECRET_OPTIONS, scrub, secrets_of

# MongoDB's AuthenticationFailed: a wrong user name or password (a missing privilege is 13).
AUTH_FAILED = 18

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be opened; the message names the problem, never a password."""


def redact_uri(uri: str) -> str:
    """The URI with its credentials and secret options (`uri_secrets`) replaced by `***`."""
    scheme, sep, rest = uri.partition("://")
    # The last "@" anywhere: an unescaped "@", "/" or "?" in a password never shows.
    at = rest.rfind("@")
    if not sep or at < 0:
        return scrub(uri)
    return scrub(f"{scheme}://***@{rest[at + 1 :]}")


def _detail(exc: BaseException, uri: str) -> str:
    """The driver's message without credentials (withheld when they cannot be cut out cleanly)."""
    text = scrub(str(exc).split(", Timeout:")[0])  # no topology dump of a selection timeout
    for secret in secrets_of(uri):
        if secret in text:
            if len(secret) < 4:
                return "details withheld: they contain credentials"
            text = text.replace(secret, "***")
    return text


async def open_store(settings: Settings, *, bounded: bool = True) -> Store:
    """The store of `settings.uri`; a MongoStore has already asked the server what it supports.

    `bounded`: a reply that does not come within `OPERATION_TIMEOUT_MS` fails the operation
    (a transient error, retried like a lost connection), unless the URI sets
    `socketTimeoutMS` itself. Without it, a server that answers the handshake and then
    nothing else (wedged, or a connection a firewall dropped silently) held every
    operation, health check and command forever. `migrate` passes False: an index build
    on a large collection answers when it is done.
    """
    uri = settings.uri
    if uri is None:
        raise StoreError("no URI: set EVENTSTORE_URI or --uri")
    if uri.startswith("memory://"):
        return MemoryStore()
    shown = redact_uri(uri)
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise StoreError(f"unsupported URI {shown}: use mongodb://, mongodb+srv:// or memory://")
    try:
        timeouts = _timeouts(uri, settings.server_timeout_ms, bounded=bounded)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                uri, tz_aware=True, appname="eventstore", **timeouts
            )
    except (ConfigurationError, ValueError, TypeError) as exc:  # InvalidURI is a ConfigurationError
        if _unresolved(exc):
            raise StoreError(f"cannot reach MongoDB at {shown}: {_detail(exc, uri)}") from None
        raise StoreError(f"bad MongoDB URI {shown}: {_detail(exc, uri)}") from None
    for warning in said:  # one line each (a compressor not installed), not Python's two
        log.warning("MongoDB client: %s", scrub(str(warning.message)))
    store = MongoStore(client, settings.store_db, owns_client=True)
    try:
        await store.detect()
    except PyMongoError as exc:
        await store.close()
        raise _open_error(exc, uri, _selection_ms(uri, settings.server_timeout_ms)) from None
    except BaseException:
        await store.close()
        raise
    return store


_TIMEOUT_OPTIONS = ("serverSelectionTimeoutMS", "connectTimeoutMS")
# Every timeout a URI may set. PyMongo warns of a bad one and goes on without it (its
# default instead, 30 s for server selection): here a bad one is refused.
_URI_TIMEOUTS = (
    *_TIMEOUT_OPTIONS,
    "socketTimeoutMS",
    "timeoutMS",
    "waitQueueTimeoutMS",
    "heartbeatFrequencyMS",
    "maxIdleTimeMS",
    "localThresholdMS",
    "wTimeoutMS",
    "maxStalenessSeconds",
)


def _uri_options(uri: str) -> Mapping[str, Any]:
    """The URI's options as PyMongo splits them, not yet checked (names are case-insensitive)."""
    query = uri.split("?", 1)[1] if "?" in uri else ""
    if not query:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicates, deprecations: the client warns of them
        return split_options(query, validate=False, normalize=False)


def _timeouts(uri: str, default_ms: int, *, bounded: bool = True) -> dict[str, Any]:
    """SERVER_TIMEOUT_MS for each timeout the URI does not set itself: the URI's own wins.

    With `bounded`, OPERATION_TIMEOUT_MS as `socketTimeoutMS` unless the URI sets it. Every
    option the URI sets is checked as PyMongo checks it (`_check_options`).
    """
    given = _check_options(uri)
    out: dict[str, Any] = {name: default_ms for name in _TIMEOUT_OPTIONS if name not in given}
    if bounded and "socketTimeoutMS" not in given:
        out["socketTimeoutMS"] = OPERATION_TIMEOUT_MS
    return out


# How long an operation waits for the server's reply (`socketTimeoutMS`), unless the URI
# says otherwise. Above any reply this service waits for on purpose: a change stream's
# getMore waits at most a second (`max_await_ms`), and reads come in pages.
# A read is retried once on a fresh connection (retryable reads): a database that answers
# the handshake and nothing else fails it within about twice this, a minute.
OPERATION_TIMEOUT_MS: Final = 30_000

# Options whose value may hold a secret: named in a message, never quoted.
_SECRET_OPTIONS: Final = frozenset(name.lower() for name in SECRET_OPTIONS)
# The timeouts, as PyMongo's split of a query names them (lower case).
_TIMEOUT_NAMES: Final = frozenset(name.lower() for name in _URI_TIMEOUTS)


def _check_options(uri: str) -> Mapping[str, Any]:
    """The URI's options, each checked as PyMongo checks it; ValueError naming a bad one.

    PyMongo only warns of a bad or unknown option and goes on without it: `tls=maybe`
    connected unencrypted, `authMechanism=BOGUS` used the default mechanism, a misspelt
    option did nothing, and a timeout fell back to PyMongo's own (30 s for server
    selection). A TLS file that is not there failed later, naming no file. A duplicated
    option is refused too: PyMongo keeps the last one, silently.
    """
    query = uri.split("?", 1)[1] if "?" in uri else ""
    if not query:
        return {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        given = split_options(query, validate=False, normalize=False)
    for warning in caught:
        if str(warning.message).startswith("Duplicate URI option"):
            raise ValueError(f"{warning.message} Give each option once")
    # The timeouts first, by the names PyMongo spells them with (its messages use them).
    names = [n for n in _URI_TIMEOUTS if n in given]
    names += [n for n in given if n not in _TIMEOUT_NAMES]
    for name in names:
        value = given[name]
        try:
            with warnings.catch_warnings(record=True) as said:
                # What is only worth a warning (a compressor not installed) the client says
                # itself when it is built: not twice.
                warnings.simplefilter("always")
                validate_option(name, value)
            for warning in said:  # a compressor PyMongo does not know: dropped, so refused
                if str(warning.message).startswith("Unsupported compressor"):
                    raise ValueError(f"{warning.message} (snappy, zlib or zstd)")
        except ConfigurationError as exc:
            if not str(exc).startswith("Unknown option"):
                raise ValueError(str(exc)) from None
            raise ValueError(f"unknown option {name!r} (PyMongo would go on without it)") from None
        except (ValueError, TypeError) as exc:
            shown = "" if name.lower() in _SECRET_OPTIONS else f", got {value!r}"
            raise ValueError(f"{exc}{shown}") from None
        except OSError as exc:  # a TLS file: tlsCAFile, tlsCertificateKeyFile, tlsCRLFile
            raise ValueError(f"{name}: {exc.strerror or exc}: {value!r}") from None
    return given


def _selection_ms(uri: str, default_ms: int) -> float:
    """The server selection timeout in force, for messages (the URI's, checked by `_timeouts`)."""
    given = _uri_options(uri).get("serverSelectionTimeoutMS")
    if given is None:
        return default_ms
    ms = float(given)
    return int(ms) if ms.is_integer() else ms


def _unresolved(exc: BaseException) -> bool:
    """A mongodb+srv:// name whose DNS records cannot be found (now): the URI may be right."""
    return isinstance(exc, ConfigurationError) and "DNS" in str(exc)


def _open_error(exc: PyMongoError, uri: str, timeout_ms: float) -> StoreError:
    """The StoreError for a failure while first talking to the server."""
    shown = redact_uri(uri)
    if isinstance(exc, ServerSelectionTimeoutError):
        return StoreError(
            f"cannot reach MongoDB at {shown}: no server answered within {timeout_ms} ms "
            f"({_detail(exc, uri)})"
        )
    if _unresolved(exc):
        return StoreError(f"cannot reach MongoDB at {shown}: {_detail(exc, uri)}")
    if isinstance(exc, ConfigurationError) and "wire version" in str(exc):
        # The server answered, and is one this driver cannot talk to: the URI is not at fault.
        return StoreError(
            f"MongoDB at {shown} is not one this service supports: {_detail(exc, uri)}"
        )
    if isinstance(exc, ConfigurationError):
        return StoreError(f"bad MongoDB URI {shown}: {_detail(exc, uri)}")
    if isinstance(exc, OperationFailure) and exc.code == AUTH_FAILED:
        return StoreError(f"authentication failed at {shown}: check the user name and password")
    return StoreError(f"MongoDB at {shown} failed: {_detail(exc, uri)}")
