"""The CLI's point-in-time commands: history, state, diff, verify."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from eventstore.cli import EXIT_ERROR, EXIT_OK, EXIT_TAMPERED, CliError, settings_from
from eventstore.commands import opened_store
from eventstore.history import History, HistoryError
from eventstore.model import Head
from eventstore.render import (
    diff_json,
    entity_verdict_json,
    head_json,
    history_json,
    log_verdict_json,
    state_json,
    stream_verdict_json,
)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with a zone; a time without one is refused (it would be a guess)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CliError(f"not an RFC 3339 time: {text!r} (e.g. 2026-11-26T14:03:00Z)") from None
    if value.tzinfo is None:
        raise CliError(f"the time {text!r} has no zone: add Z or an offset such as +01:00")
    return value


def _history(args: argparse.Namespace, store: Any) -> History:
    settings = settings_from(args)
    return History(
        store, snapshot_every=settings.snapshot_every, head_checkpoint=settings.ingester_role
    )


def _emit(data: dict[str, Any], args: argparse.Namespace, out: TextIO, text: str) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False), file=out)
    else:
        print(text, file=out)


async def _guarded(args: argparse.Namespace, out: TextIO, body: Any) -> int:
    settings = settings_from(args)
    async with opened_store(settings, args) as store:
        try:
            return int(await body(_history(args, store)))
        except HistoryError as exc:
            raise CliError(str(exc)) from None


async def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore history STREAM KEY`."""

    async def body(h: History) -> int:
        page = await h.history(
            args.stream,
            args.key,
            from_version=args.from_version,
            to_version=args.to_version,
            limit=args.limit,
        )
        data = history_json(page)
        lines = [
            f"{'ver':>4}  {'seq':>7}  {'occurred_at':<24}  {'type':<9}  {'actor':<16}  changes"
        ]
        for ev in data["events"]:
            changed = ", ".join(f"{d['path']} ({d['op']})" for d in ev["diff"][:6])
            if len(ev["diff"]) > 6:
                changed += f", +{len(ev['diff']) - 6} more"
            mark = " (inferred)" if ev["inferred"] else ""
            lines.append(
                f"{ev['version']:>4}  {ev['seq']:>7}  {ev['occurred_at']:<24}  {ev['type']:<9}  "
                f"{ev['actor'] or '-'!s:<16}  {changed}{mark}"
            )
        if data["next"]:
            lines.append(f"(more: --from-version {int(data['next']) + 1})")
        _emit(data, args, out, "\n".join(lines))
        return EXIT_OK

    return await _guarded(args, out, body)


async def cmd_state(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore state STREAM KEY [--at T | --version N]`."""
    if args.at is not None and args.version is not None:
        raise CliError("give --at or --version, not both")
    at = parse_time(args.at) if args.at is not None else None

    async def body(h: History) -> int:
        state = await h.state(args.stream, args.key, at=at, version=args.version)
        data = state_json(state)
        text = [f"{state.stream}/{state.entity_key} version {state.version} as of {data['as_of']}"]
        if state.uncertain and data["gap"]:
            text.append(
                f"UNCERTAIN: inside a gap from {data['gap']['from']} to {data['gap']['to']}"
            )
        text.append(
            json.dumps(data["document"], indent=2, ensure_ascii=False)
            if state.exists
            else "(deleted)"
        )
        _emit(data, args, out, "\n".join(text))
        return EXIT_OK

    return await _guarded(args, out, body)


async def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore diff STREAM KEY FROM TO`."""

    async def body(h: History) -> int:
        changes = await h.diff(args.stream, args.key, args.from_version, args.to_version)
        data = diff_json(args.from_version, args.to_version, changes)
        rows = [
            f"{c['op']:<8} {c['path']}: {json.dumps(c['before'])} -> {json.dumps(c['after'])}"
            for c in data["changes"]
        ]
        _emit(data, args, out, "\n".join(rows) or "(no differences)")
        return EXIT_OK

    return await _guarded(args, out, body)


async def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore verify [STREAM [KEY]] [--head | --against-head FILE]`; exit 2 on tampering."""
    against: Head | None = None
    if args.against_head is not None:
        against = _read_head(Path(args.against_head))

    async def body(h: History) -> int:
        if args.head:
            head = await h.store.events.head()
            print(json.dumps(head_json(head)), file=out)
            return EXIT_OK
        if args.key is not None:
            v = await h.verify_entity(args.stream, args.key)
            data = entity_verdict_json(v)
            text = f"{args.stream}/{args.key}: {'valid' if v.valid else 'INVALID'}, {v.events_checked} events checked"
            if not v.valid:
                text += f"; first invalid version {v.first_invalid_version}: {v.reason}"
        elif args.stream is not None:
            sv = await h.verify_stream(args.stream)
            data = stream_verdict_json(sv)
            text = f"{args.stream}: {'valid' if sv.valid else 'INVALID'}, {sv.entities_checked} entities, {sv.events_checked} events checked"
            for bad in sv.invalid:
                text += f"\n  {bad['entity_key']}: first invalid version {bad['first_invalid_version']}: {bad['reason']}"
        else:
            lv = await h.verify_log(against)
            data = log_verdict_json(lv)
            text = f"log: {'valid' if lv.valid else 'INVALID'}, {lv.events_checked} events checked, head seq {lv.head.seq}"
            if lv.head_matches is not None:
                text += f", head {'matches' if lv.head_matches else 'DOES NOT MATCH'}"
            if not lv.valid:
                text += f"\n  first invalid seq {lv.first_invalid_seq}: {lv.reason}"
        _emit(data, args, out, text)
        return EXIT_OK if data["valid"] else EXIT_TAMPERED

    return await _guarded(args, out, body)


def _read_head(path: Path) -> Head:
    try:
        data = json.loads(path.read_text())
        return Head(seq=int(data["seq"]), log_hash=str(data["log_hash"]))
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except (ValueError, KeyError, TypeError):
        raise CliError(f"{path} is not an exported head (JSON with seq and log_hash)") from None


__all__ = ["EXIT_ERROR", "cmd_diff", "cmd_history", "cmd_state", "cmd_verify", "parse_time"]
