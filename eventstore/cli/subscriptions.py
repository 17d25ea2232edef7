"""`eventstore subscriptions list|status|add|remove|pause|resume|reset|parked|run`.

The same operations and JSON as the admin API (`--json`); every change is recorded
in the admin action trail with `--actor` (default: the login name). `run` is a
delivery-only process: it delivers every stored subscription (leases decide which
instance delivers each) until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec

from eventstore.cli.argtypes import positive_int
from eventstore.cli.bootstrap import open_service
from eventstore.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    NothingThere,
    frozen_gc,
    install_stop_signals,
    printable,
    settings_from,
)
from eventstore.decimal_text import decimal_int
from eventstore.erasure import MAX_ACTOR, check_text, text_fault
from eventstore.history import HistoryError
from eventstore.json_input import decode_json
from eventstore.rfc3339 import NoSuchTime, NotRfc3339, NoZone, parse_rfc3339
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions.control import (
    NoParkedEvent,
    NotFound,
    SubscriptionAdmin,
    parked_json,
    record_json,
)

ACTIONS = ("list", "status", "add", "remove", "pause", "resume", "reset", "parked", "run")


def add_parser(sub: Any, add_settings: Any) -> None:
    """The `subscriptions` command's arguments."""
    p = sub.add_parser("subscriptions", help="manage and run subscriptions (webhooks, Redis)")
    add_settings(p)
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("name", nargs="?", metavar="NAME", help="the subscription")
    p.add_argument("--file", metavar="SUB.json", help="add: the subscription's JSON (PUT body)")
    p.add_argument(
        "--start", metavar="START", help="reset: earliest, latest, a seq or an RFC 3339 time"
    )
    p.add_argument("--replay", action="store_true", help="parked: deliver them again")
    p.add_argument(
        "--up-to", type=positive_int, metavar="SEQ", help="parked --replay: up to this seq"
    )
    p.add_argument("--skip", type=positive_int, metavar="SEQ", help="parked: give up on one event")
    p.add_argument("--actor", help="who acts (the admin action trail; default: login name)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")


# The actions each option belongs to; given to another, it would be ignored: refused.
_CHANGES: Final = ("add", "remove", "pause", "resume", "reset", "parked")
_OPTION_ACTIONS: Final = {
    "--file": ("file", ("add",)),
    "--start": ("start", ("reset",)),
    "--replay": ("replay", ("parked",)),
    "--up-to": ("up_to", ("parked",)),
    "--skip": ("skip", ("parked",)),
    "--actor": ("actor", _CHANGES),  # the admin action trail records changes only
    "--json": ("json", ("list", "status", "add", "remove", "pause", "resume", "reset", "parked")),
}


def _unused_option(args: argparse.Namespace) -> str | None:
    """The line refusing an option this action would ignore, or two it cannot take together."""
    action = args.action
    for option, (dest, actions) in _OPTION_ACTIONS.items():
        if getattr(args, dest) not in (None, False) and action not in actions:
            return f"subscriptions {action} takes no {option}"
    if action != "parked":
        return None
    acts = args.replay or args.skip is not None
    if args.replay and args.skip is not None:
        return "subscriptions parked takes --replay or --skip, not both"
    if args.up_to is not None and not args.replay:
        return "subscriptions parked takes --up-to only with --replay"
    if args.actor is not None and not acts:  # a listing changes nothing: no actor to record
        return "subscriptions parked takes --actor only with --replay or --skip"
    if args.json and acts:
        return "subscriptions parked takes --json only to list (not with --replay or --skip)"
    return None


def _actor(args: argparse.Namespace) -> str:
    """Who the admin action trail records: `--actor`, else the login name, else `unknown`.

    One rule for every actor the trail keeps for good, the API's `Eventstore-Actor` and
    `erase --actor` alike (`check_text`): trimmed, not blank, at most MAX_ACTOR characters,
    no control or bidirectional character. A `--actor` that breaks it is a CliError naming
    it, before anything connects; a login name that does (it is not typed here) is
    `unknown`, as the API records a request without the header.
    """
    if args.actor is not None:
        try:
            return check_text("--actor", args.actor, MAX_ACTOR)
        except HistoryError as exc:
            raise CliError(str(exc)) from None
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
    return "unknown" if text_fault(login, MAX_ACTOR) is not None else login.strip()


# The starts `--start` takes, in its own words (the API's body spells them `{"seq": N}`, ...).
_START_FORMS: Final = "earliest, latest, a seq or an RFC 3339 time"


def _start(value: str | None) -> Any:
    """The start `--start` names, as the API's body gives it; a CliError naming `--start`."""
    if value is None:
        raise CliError("reset needs --start earliest|latest|SEQ|TIME")
    if value in ("earliest", "latest"):
        return value
    seq = decimal_int(value)
    if seq is None:
        try:
            parse_rfc3339(value)
        except NotRfc3339:
            raise CliError(f"--start: {value!r} is not {_START_FORMS}") from None
        except (NoZone, NoSuchTime) as exc:
            raise CliError(f"--start: {exc}") from None
    start = {"seq": seq} if seq is not None else {"time": value}
    try:
        cfg.parse_start(start)  # a seq out of range
    except cfg.ConfigError as exc:
        raise _start_refused(exc) from None
    return start


def _start_refused(exc: cfg.ConfigError) -> CliError:
    """A start refused (out of range, beyond the log) as the CLI names it: `--start`, not the
    API body's `start.seq`."""
    return CliError("--start: " + "; ".join(e["message"] for e in exc.errors))


def _table(rows: list[dict[str, Any]], out: TextIO) -> None:
    print(
        f"{'NAME':<24} {'STATE':<10} {'POSITION':>9} {'LAG':>7} {'DELIVERED':>10} {'PARKED':>7}  LAST ERROR",
        file=out,
    )
    for r in rows:
        line = (
            f"{r['name']:<24} {r['state']:<10} {r['position']:>9} {r['lag']:>7} "
            f"{r['delivered']:>10} {r['parked']:>7}  {r['last_error'] or r['disabled_reason'] or ''}"
        )
        print(printable(line), file=out)


def _need_name(args: argparse.Namespace) -> str:
    if not args.name:
        raise CliError(f"subscriptions {args.action} needs a NAME")
    return str(args.name)


async def cmd_subscriptions(args: argparse.Namespace, out: TextIO) -> int:
    """Run one `subscriptions` action."""
    if args.action in ("list", "run") and args.name is not None:
        raise CliError(f"subscriptions {args.action} takes no NAME, got {args.name!r}")
    unused = _unused_option(args)  # before anything connects or is looked up
    if unused is not None:
        raise CliError(unused)
    actor = _actor(args) if args.action in _CHANGES else "unknown"  # a bad --actor: here
    settings = settings_from(args)
    async with open_service(settings, store=args.store) as service:
        if args.action == "run":
            return await _run(service, out)
        admin = SubscriptionAdmin(
            service.store,
            clock=service.clock,
            owner="cli",
            lease_seconds=settings.lease_seconds,
        )
        try:
            return await _act(admin, args, actor, out)
        except NoParkedEvent as exc:
            raise CliError(exc.detail) from None
        except NotFound as exc:
            raise NothingThere(
                f"no subscription {exc.args[0]!r}" if exc.args else "not found"
            ) from None
        except cfg.ConfigError as exc:
            raise CliError(f"refused: {exc}") from None


async def _act(admin: SubscriptionAdmin, args: argparse.Namespace, actor: str, out: TextIO) -> int:
    action = args.action
    if action == "list":
        rows = [await admin.status(r) for r in await admin.store.subscriptions.all()]
        if args.json:
            print(json.dumps(rows), file=out)
        else:
            _table(rows, out)
        return EXIT_OK
    name = _need_name(args)
    if action == "add":
        if not args.file:
            raise CliError("add needs --file SUB.json (the PUT body)")
        try:
            body = decode_json(await asyncio.to_thread(Path(args.file).read_bytes))
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
        except msgspec.DecodeError as exc:
            raise CliError(f"{args.file} is not JSON: {exc}") from None
        done = await admin.apply(name, body, actor=actor)
        note = done.start_note(done.reset_command(name))
        if args.json:  # as the API's PUT answers: the subscription, its status, the note
            record = await admin.get(name)
            shown = {**record_json(record), "status": await admin.status(record)}
            print(json.dumps(shown if note is None else {**shown, "note": note}), file=out)
            return EXIT_OK
        print(f"{'created' if done.created else 'updated'} {name}", file=out)
        if note is not None:  # the position stays: say how to deliver from the new start
            print(note, file=out)
        return EXIT_OK
    if action == "remove":
        await admin.delete(name, actor=actor)
        if not args.json:  # the API's DELETE answers 204, with no body: nothing to print
            print(f"removed {name}", file=out)
        return EXIT_OK
    if action in ("pause", "resume"):
        await getattr(admin, action)(name, actor=actor)
    elif action == "reset":
        start = _start(args.start)
        try:
            await admin.reset(name, start, actor=actor)
        except cfg.ConfigError as exc:  # beyond the log
            raise _start_refused(exc) from None
    elif action == "parked":
        return await _parked(admin, name, args, actor, out)
    record = await admin.get(name)
    status = await admin.status(record)
    if args.json:
        print(json.dumps({**record_json(record), "status": status}), file=out)
    else:
        _table([status], out)
    return EXIT_OK


async def _parked(
    admin: SubscriptionAdmin, name: str, args: argparse.Namespace, actor: str, out: TextIO
) -> int:
    if args.skip is not None:
        await admin.skip(name, args.skip, actor=actor)
        print(f"skipped seq {args.skip} of {name}", file=out)
        return EXIT_OK
    if args.replay:
        queued = await admin.replay(name, args.up_to, actor=actor)
        print(f"replaying {queued} parked event(s) of {name}", file=out)
        return EXIT_OK
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page, more = await admin.parked(name, after_seq=after, limit=1000)
        items.extend(parked_json(p) for p in page)
        if more is None:
            break
        after = more
    if args.json:
        print(json.dumps({"items": items, "next": None}), file=out)
        return EXIT_OK
    for p in items:
        line = (
            f"{p['seq']:>10} {p['stream']}/{p['entity_key']} {p['type']} "
            f"attempts={p['attempts']} {p['last_error'] or ''}"
        )
        print(printable(line), file=out)
    if not items:
        print(f"{name}: nothing parked", file=out)
    return EXIT_OK


async def _run(service: Any, out: TextIO) -> int:
    """Deliver every stored subscription until stopped (exit 1 when one failed)."""
    from eventstore.leasing import default_owner
    from eventstore.worker_state import FAILED

    await service.apply_subscriptions()
    owner = default_owner()
    supervisor = service.supervisor(owner)
    install_stop_signals(supervisor.stopping)
    manager = service.subscription_manager(supervisor, owner)
    supervisor.add(manager)
    # A delivery-only process of its own: a full collection need not walk every module and
    # class loaded at start (a 30-130 ms stall of every delivery in flight, measured).
    with frozen_gc():
        await supervisor.start()
        try:
            await supervisor.stopping.wait()
        finally:
            await supervisor.stop()
    failed = [s for s in supervisor.workers if s.state == FAILED]
    for s in failed:
        print(f"{s.name} failed: {s.last_error}", file=out)
    return EXIT_ERROR if failed else EXIT_OK
