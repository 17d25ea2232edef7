"""The `eventstore` command line: every command, its arguments and its setting flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any, Final, NoReturn, TypeVar, overload

from eventstore.cli.argtypes import WRITTEN, nonneg_int, positive_int, whole_int
from eventstore.cli.common import EXIT_ERROR, one_line
from eventstore.decimal_text import decimal_float
from eventstore.settings import SETTING_NAMES

_N = TypeVar("_N")

# Settings every command accepts as flags (`--source-db` <-> EVENTSTORE_SOURCE_DB).
_SETTING_HELP = {
    "uri": "MongoDB URI (mongodb://, mongodb+srv://) or memory://",
    "source": "where changes come from: mongo, simulator, ndjson:PATH (- = stdin)",
    "source_db": "database whose collections are captured (default shop)",
    "store_db": "database holding events and state (default eventstore)",
    "collections": "captured collections, comma-separated (default orders)",
    "operations": "captured operation types, comma-separated (default all)",
    "redact": "field paths removed before storage; path:mask keeps a fixed mask",
    "actor_field": "document field naming who made the change (default updatedBy)",
    "pre_images": "off, when-available or required (default off)",
    "bad_input": "a change that cannot be interpreted: stop capture, or record it as rejected (default stop)",
    "projections": "your own projections, module:attribute,... (see the README)",
    "order_stream": "the stream the order read models read (default orders)",
    "order_fields": "order inputs to document paths: a JSON object or @FILE (see the README)",
    "paid_statuses": "statuses whose totals count as revenue (default paid,shipped,delivered)",
    "snapshot_every": "entity snapshot interval in versions (default 100)",
    "state_cache": "entities whose states the projections keep while following (default 20000)",
    "batch_size": "most changes per ingest batch (default 1000)",
    "lease_seconds": "lease time for the ingester and each projection (default 10)",
    "server_timeout_ms": "server selection timeout in ms (default 5000)",
    "admin_key": "bearer key for /v1/admin (prefer EVENTSTORE_ADMIN_KEY)",
    "read_keys": "comma-separated bearer keys for /v1 reads",
    "signing_key": "private key file (eventstore keygen) signing checkpoints; mode 0600",
    "log_origin": "origin line of checkpoints (default eventstore/<store db>)",
    "checkpoint_interval": "seconds between checkpoints, appending or idle (default 1)",
    "signer_state": "file with the last signed size and root (default <signing key>.state)",
    "publish_checkpoints": "comma-separated dir:PATH or http(s):// targets of signed checkpoints",
    "witnesses": "comma-separated URL=VERIFIER_KEY of C2SP tlog-witnesses",
    "unhealthy_after": "seconds capture may retry before /health/ready answers 503 (default 30)",
    "subscriptions": "JSON file of subscriptions applied at start (created or updated by name)",
    "api_secret_references": (
        "true lets a subscription PUT over the admin API give {env}/{file} secret references"
        " (default false)"
    ),
    "cors_origins": "origins allowed to call the API from a browser, comma-separated, or *",
}


# The destinations of the options taking one value given so far in this parse (`_Once`).
SEEN: Final = "options_seen"


class _Once(argparse.Action):
    """An option taking one value (argparse's `store`, the action of every option here that
    takes one): given a second time, it is refused with one line.

    argparse keeps the last one given, so `--redact amount --redact state` stored `amount`
    in the immutable log unnoticed, and `--read-keys a --read-keys b` dropped key `a`:
    which one counts would be a guess, as the API says of a parameter given twice. No
    option here accumulates its values. Invariant: each option of this kind is set at most
    once per parse (an abbreviation, `--red`, or `--redact=x` is the same option); the
    values are not quoted back (a key may be among them). A positional is taken once by
    argparse itself.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        self.once(namespace)
        setattr(namespace, self.dest, values)

    def once(self, namespace: argparse.Namespace) -> None:
        """Note this option as given; an ArgumentError (its usage error) when it was already."""
        if not self.option_strings:
            return
        seen: tuple[str, ...] = getattr(namespace, SEEN, ())
        if self.dest in seen:
            raise argparse.ArgumentError(
                self, "given more than once (which one counts would be a guess): give it once"
            )
        setattr(namespace, SEEN, (*seen, self.dest))


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (bad input): exit 2 is reserved for tampering.

    The message is one line, its control characters escaped: it quotes what was typed.
    The usage comes first for what the command does not take (an unknown or missing
    argument, an unknown command or choice), not for a bad value of an argument it takes
    (`argument --workers: not a whole number: '2.0'`) or an option given twice: that is
    its one line alone. An option's default action is `_Once`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # For this parser and its argument groups (they share its registry).
        self.register("action", None, _Once)
        self.register("action", "store", _Once)

    def error(self, message: str) -> NoReturn:
        if not message.startswith("argument ") or "invalid choice" in message:
            self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"eventstore: error: {one_line(message)}\n")


class _CommandParser(_Parser):
    """A command's parser: an argument it does not know is its usage error, not the top level's.

    `trailing`: the destination of a `nargs="*"` positional that may also follow the
    options (`projections rebuild --workers 2 NAME`): argparse gives the names before
    the options to it and leaves those after them over; they are names too.
    `check`: what is wrong with the arguments taken together (`demo --json` without
    `--report`), a usage error; None when nothing is.
    """

    def __init__(
        self,
        *args: Any,
        trailing: str | None = None,
        check: Callable[[argparse.Namespace], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.trailing = trailing
        self.check = check

    @overload
    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: None = None
    ) -> tuple[argparse.Namespace, list[str]]: ...
    @overload
    def parse_known_args(
        self, args: Iterable[str] | None, namespace: _N
    ) -> tuple[_N, list[str]]: ...
    @overload
    def parse_known_args(self, *, namespace: _N) -> tuple[_N, list[str]]: ...

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        if extra and self.trailing and not any(x.startswith("-") for x in extra):
            setattr(parsed, self.trailing, [*getattr(parsed, self.trailing), *extra])
            extra = []
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        problem = self.check(parsed) if self.check is not None else None
        if problem is not None:
            self.error(problem)
        return parsed, extra


# Where a command's options that `_Noted` keeps note of are listed when given (by their
# first option string), so a command can refuse one it would ignore: its default alone
# cannot tell `--rate 5` from no `--rate`.
GIVEN: Final = "given_options"


class _Noted(_Once):
    """Stores the value `read` reads from the argument (as `type=` would), notes the option
    as given, and keeps the argument as it was typed (`argtypes.written`). Once (`_Once`).

    `read` raises ArgumentTypeError for an argument it refuses: the usage error of a `type`.
    """

    def __init__(self, *args: Any, read: Callable[[str], Any] = str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read = read

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        self.once(namespace)
        text = str(values)
        try:
            value = self.read(text)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        option = self.option_strings[0]
        setattr(namespace, self.dest, value)
        setattr(namespace, GIVEN, (*getattr(namespace, GIVEN, ()), option))
        setattr(namespace, WRITTEN, {**getattr(namespace, WRITTEN, {}), option: text})


class _Refused(argparse.Action):
    """An option a command declares only to refuse it, with a line saying why (`demo --uri`)."""

    def __init__(self, *args: Any, message: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message = message

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        parser.error(self.message)


def _add_settings(
    parser: argparse.ArgumentParser, refused: Mapping[str, str] | None = None
) -> None:
    """Every setting as a flag; those in `refused` are refused with the line given."""
    refused = refused or {}
    group = parser.add_argument_group("settings (also EVENTSTORE_<NAME> variables)")
    for name in SETTING_NAMES:
        flag = "--" + name.replace("_", "-")
        if name in refused:  # not shown in --help
            group.add_argument(
                flag,
                dest="setting_" + name,
                action=_Refused,
                message=refused[name],
                help=argparse.SUPPRESS,
            )
            continue
        group.add_argument(flag, dest="setting_" + name, metavar="VALUE", help=_SETTING_HELP[name])


def installed_version() -> str:
    """This distribution's version as installed (`unknown` when run from a bare source tree)."""
    try:
        return metadata.version("eventstore")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = _Parser(
        prog="eventstore",
        description="An immutable, hash-chained audit log and event store for MongoDB.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument(
        "--version",
        action="version",
        version=f"eventstore {installed_version()}",
        help="print the installed version and exit",
    )
    # Not `required`: `eventstore -x` is "unrecognized arguments: -x", and `main` says
    # that COMMAND is required only when nothing else is wrong.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    p = sub.add_parser("migrate", help="create collections, validators, indexes and roles")
    _add_settings(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("keygen", help="write a checkpoint signing key; print its verifier key")
    p.add_argument("name", help="key name (no '+', spaces or newlines), e.g. log.example.com")
    p.add_argument("--out", required=True, help="private key file to create (mode 0600)")

    p = sub.add_parser("proof", help="the self-contained proof file of one event")
    _add_settings(p)
    p.add_argument("seq", type=positive_int)
    p.add_argument("--size", type=positive_int, default=None, help="checkpoint size (latest)")
    p.add_argument("--out", default=None, help="write the file here instead of stdout")

    p = sub.add_parser("verify-proof", help="check a proof file offline (no database)")
    p.add_argument("file", help="the proof file (- = stdin)")
    p.add_argument("--key", required=True, help="the log's verifier key")
    p.add_argument(
        "--origin", default=None, help="the log's origin: a proof of another log is refused"
    )
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")

    p = sub.add_parser("monitor", help="watch a service's signed checkpoints (exit 2 on a fork)")
    p.add_argument("url", help="the service's base URL, e.g. https://audit.example.com")
    p.add_argument("--key", required=True, help="the log's verifier key")
    p.add_argument("--state", required=True, help="directory keeping the checkpoints seen")
    p.add_argument("--read-key", default=None, help="bearer key, if the service needs one")
    p.add_argument(
        "--interval",
        type=_interval,
        default=60.0,
        metavar="S",
        help=f"seconds between checks (default 60, at least {MIN_INTERVAL:g})",
    )
    p.add_argument("--once", action="store_true", help="check once; exit 2 on evidence")

    p = sub.add_parser("ingest", help="capture changes into the event log")
    _add_settings(p)
    p.add_argument("--until-idle", action="store_true", help="stop once nothing is pending")
    _add_workload(p)

    p = sub.add_parser("history", help="an entity's events with field-level diffs")
    _add_settings(p)
    p.add_argument("stream")
    p.add_argument("key", help="entity key (bare, or typed: oid:, int:, str:, json:)")
    p.add_argument("--from-version", type=positive_int, default=1)
    p.add_argument("--to-version", type=positive_int, default=None)
    p.add_argument("--limit", type=positive_int, default=100)
    p.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser("state", help="an entity as it was at a time or version")
    _add_settings(p)
    p.add_argument("stream")
    p.add_argument("key")
    p.add_argument("--at", help="RFC 3339 time with a zone, e.g. 2026-11-26T14:03:00Z")
    p.add_argument("--version", type=positive_int, default=None)
    p.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser("diff", help="what changed between two versions, field by field")
    _add_settings(p)
    p.add_argument("stream")
    p.add_argument("key")
    p.add_argument("from_version", type=positive_int)
    p.add_argument("to_version", type=positive_int)
    p.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser("verify", help="recompute the hash chains (exit 2 on tampering)")
    _add_settings(p)
    p.add_argument("stream", nargs="?")
    p.add_argument("key", nargs="?")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--head", action="store_true", help="print the log head to keep elsewhere")
    g.add_argument("--against-head", metavar="FILE", help="verify the log against an exported head")
    g.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="hold the log to a saved signed checkpoint (needs --key)",
    )
    p.add_argument("--key", dest="key_", metavar="VERIFIER_KEY", help="the log's verifier key")
    p.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser(
        "erase", help="request the erasure of one entity's payloads (asks unless --yes)"
    )
    _add_settings(p)
    p.add_argument("stream")
    p.add_argument("key", help="entity key (bare, or typed: oid:, int:, str:, json:)")
    p.add_argument("--reason", required=True, help="why (recorded in the erased event)")
    p.add_argument("--actor", required=True, help="who asks (recorded in the erased event)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser("project", help="run the projector (each projection holds its own lease)")
    _add_settings(p)
    p.add_argument("--until-caught-up", action="store_true", help="stop at the log's end")

    p = sub.add_parser(
        "projections", help="projection status, or rebuild from the whole log", trailing="names"
    )
    _add_settings(p)
    p.add_argument("action", choices=["status", "rebuild"])
    # A default: argparse counts a `*` positional without one as required.
    p.add_argument(
        "names", nargs="*", default=[], metavar="NAME", help="projections to show or rebuild"
    )
    p.add_argument("--all", action="store_true", help="rebuild every projection")
    p.add_argument(
        "--workers",
        read=whole_int,
        action=_Noted,
        default=None,  # rebuild: 1; given to `status` at all, refused
        metavar="N",
        help="rebuild with N processes, each folding a share of the entities (1-16, default 1)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    from eventstore.cli.subscriptions import add_parser as add_subscriptions

    add_subscriptions(sub, _add_settings)

    p = sub.add_parser("status", help="every instance's background workers (as GET /v1/workers)")
    _add_settings(p)
    p.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser("serve", help="serve the HTTP API (one JSON access line per request)")
    _add_settings(p)
    _add_listen(p)
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")

    p = sub.add_parser("run", help="capture, project and serve the API in one process")
    _add_settings(p)
    _add_listen(p)
    _add_workload(p)

    p = sub.add_parser(
        "demo",
        help="the whole service on memory:// with simulated order traffic (serves the API)",
        check=_demo_problem,
    )
    _add_settings(p, refused=_DEMO_REFUSED)
    _add_listen(p)
    p.add_argument(
        "--orders",
        read=nonneg_int,
        default=200,
        action=_Noted,
        help="initial orders (default 200)",
    )
    p.add_argument(
        "--rate",
        read=_nonneg_float,
        default=5.0,
        action=_Noted,
        help="changes per second after them (default 5); 0 = unpaced: --changes as fast "
        "as they go, or none without --changes",
    )
    p.add_argument(
        "--seed", read=whole_int, default=1, action=_Noted, help="workload seed (default 1)"
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="do not serve: capture --orders and --changes as fast as possible and report",
    )
    p.add_argument(
        "--changes",
        read=nonneg_int,
        default=None,
        action=_Noted,
        help="stop the traffic after this many changes and keep serving "
        "(default: unlimited; with --report: 2000)",
    )
    p.add_argument("--json", action="store_true", help="with --report: print the summary as JSON")

    # `-v` after the command too (`eventstore migrate -v`): no command has an option of its
    # own spelled so. Not given, it leaves the top level's value (argparse copies a
    # command's defaults over it).
    for command in sub.choices.values():
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more"
        )
    return parser


# `demo` runs on memory:// with the simulator, whatever these say: refused, never ignored.
_DEMO_REFUSED: Final = {
    "uri": "demo runs on memory:// and takes no --uri (run does)",
    "source": "demo captures the simulator's traffic and takes no --source (run and ingest do)",
}


def _demo_problem(args: argparse.Namespace) -> str | None:
    """`demo`'s flags that the other mode would ignore (`--json` serving, `--rate` reporting)."""
    if args.json and not args.report:
        return "demo takes --json only with --report (serving prints no summary)"
    if args.report:
        unused = [o for o in ("--rate", "--host", "--port") if o in getattr(args, GIVEN, ())]
        if unused:
            return (
                f"demo --report takes no {' or '.join(unused)} "
                "(it captures as fast as it can and serves nothing)"
            )
    return None


def _add_listen(p: argparse.ArgumentParser) -> None:
    p.set_defaults(**{GIVEN: ()})
    g = p.add_argument_group("HTTP")
    g.add_argument(
        "--host",
        read=_host,
        default=DEFAULT_HOST,
        action=_Noted,
        help=f"address to listen on (default {DEFAULT_HOST})",
    )
    g.add_argument(
        "--port",
        read=_port,
        default=8000,
        action=_Noted,
        help="port to listen on (default 8000)",
    )


# Where the API listens unless told: this machine alone. Every interface is `0.0.0.0` or
# `::`, written out.
DEFAULT_HOST: Final = "127.0.0.1"


def _host(value: str) -> str:
    """`--host`: an empty value is the option not given, as for every setting: DEFAULT_HOST.

    Passed on, `""` was every interface (getaddrinfo's and uvicorn's), an API exposed on
    the network without a word.
    """
    return value or DEFAULT_HOST


def _port(value: str) -> int:
    n = nonneg_int(value)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {value}")
    return n


def _add_workload(p: argparse.ArgumentParser) -> None:
    p.set_defaults(**{GIVEN: ()})
    g = p.add_argument_group("simulator (with --source simulator)")
    g.add_argument(
        "--orders",
        read=nonneg_int,
        default=100,
        action=_Noted,
        help="initial orders (default 100)",
    )
    g.add_argument(
        "--rate",
        read=_nonneg_float,
        default=5.0,
        action=_Noted,
        help="changes per second after them; 0 = stop (default 5)",
    )
    g.add_argument(
        "--seed",
        read=whole_int,
        default=None,
        action=_Noted,
        help="workload seed (same seed, same operations)",
    )


# The monitor's pace: a checkpoint is made at most every CHECKPOINT_INTERVAL (1 s by
# default); asking more often only loads the service (0 was ~2,000 requests a second).
MIN_INTERVAL: Final = 1.0


def _interval(value: str) -> float:
    """`monitor --interval`: seconds in ASCII decimal digits, at least MIN_INTERVAL.

    `inf`, `1e400` and `nan`, which float() reads, are refused, as are `1_0` and other
    scripts' digits (as every number on the command line is).
    """
    n = decimal_float(value)
    if n is None:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r} (e.g. 60 or 1.5)")
    if n < MIN_INTERVAL:  # a negative one too: a number, whose sign is what is wrong
        raise argparse.ArgumentTypeError(f"must be {MIN_INTERVAL:g} or more seconds: {value}")
    return n


def _nonneg_float(value: str) -> float:
    """`--rate`: 0 or more, in ASCII decimal digits (`inf`, `1_0`, `+5`, `٣` are refused).

    A negative rate is a number out of range, said as `--orders -1` says it.
    """
    n = decimal_float(value)
    if n is None:
        raise argparse.ArgumentTypeError(f"not a number: {value!r} (e.g. 5 or 0.5)")
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return n + 0.0  # `-0` is 0
