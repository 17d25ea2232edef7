"""The CLI's point-in-time commands: history, state, diff, verify.

Readable tables by default, the JSON of DESIGN.md with `--json`. Exit 1 for a
question that cannot be answered as asked (unknown stream, entity or version,
ambiguous key, malformed time); exit 2 when verification finds tampering.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec

from eventstore import json_input
from eventstore.chain import CheckpointCheck
from eventstore.checkpoint_audit import verify_checkpoint
from eventstore.cli.bootstrap import open_service
from eventstore.cli.common import EXIT_OK, EXIT_TAMPERED, CliError, printable, settings_from
from eventstore.history import History, HistoryError, UnknownEntity, UnknownStream
from eventstore.model import HASH_PATTERN, Head
from eventstore.notes import NoteError, Verifier
from eventstore.render import (
    diff_json,
    entity_verdict_json,
    head_json,
    history_json,
    log_verdict_json,
    state_json,
    stream_verdict_json,
)
from eventstore.rfc3339 import NoSuchTime, NotRfc3339, NoZone, parse_instant

# How many changed paths a history row names before "+N more".
_PATHS_SHOWN = 6


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with a zone (`2026-11-26T14:03:00.123Z`, `...+01:00`).

    A time without a zone is refused: it would be a guess at the zone. One whose instant
    lies before year 1 or after year 9999 in UTC is before or after every stored time.
    """
    try:
        return parse_instant(text)
    except NotRfc3339 as exc:
        raise CliError(f"{exc} (e.g. 2026-11-26T14:03:00Z or 2026-11-26T15:03:00+01:00)") from None
    except (NoZone, NoSuchTime) as exc:
        raise CliError(str(exc)) from None


def _emit(data: dict[str, Any], args: argparse.Namespace, out: TextIO, lines: list[str]) -> None:
    """The JSON with `--json`, else the lines, each with its control characters escaped.

    Lines hold keys, actors, paths and reasons from the log: escaping each line (never
    the joined text) keeps a newline inside a value from forging a line of its own.
    """
    if args.json:
        print(json.dumps(data, ensure_ascii=False), file=out)
    else:
        print("\n".join(printable(line) for line in lines), file=out)


async def _guarded(args: argparse.Namespace, body: Callable[[History], Awaitable[int]]) -> int:
    """Run `body` on the history service of the URI's store; its refusals exit 1."""
    settings = settings_from(args)
    async with open_service(settings, store=args.store) as service:
        try:
            return await body(History.from_settings(service.store, settings))
        except (UnknownStream, UnknownEntity):
            raise  # open_service says so, and why on a new memory:// store
        except HistoryError as exc:
            raise CliError(str(exc)) from None


def _scalar(value: Any) -> str:
    return "-" if value is None else str(value)


async def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore history STREAM KEY [--from-version N] [--to-version N] [--limit N]`."""

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
            f"{data['stream']}/{data['entity_key']}",
            f"{'ver':>5}  {'seq':>8}  {'occurred_at':<24}  {'type':<9}  {'actor':<16}  changes",
        ]
        for ev in data["events"]:
            diff = ev["diff"]
            changed = ", ".join(f"{d['path']} ({d['op']})" for d in diff[:_PATHS_SHOWN])
            if len(diff) > _PATHS_SHOWN:
                changed += f", +{len(diff) - _PATHS_SHOWN} more"
            mark = " [inferred]" if ev["inferred"] else ""
            lines.append(
                f"{ev['version']:>5}  {ev['seq']:>8}  {ev['occurred_at']:<24}  {ev['type']:<9}  "
                f"{_scalar(ev['actor']):<16}  {changed or '-'}{mark}"
            )
        if not data["events"]:
            lines.append("(no events in that range)")
        if data["next"]:
            lines.append(f"(more: --from-version {int(data['next']) + 1})")
        _emit(data, args, out, lines)
        return EXIT_OK

    return await _guarded(args, body)


async def cmd_state(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore state STREAM KEY [--at T | --version N]`."""
    if args.at is not None and args.version is not None:
        raise CliError("give --at or --version, not both")
    at = parse_time(args.at) if args.at is not None else None

    async def body(h: History) -> int:
        state = await h.state(args.stream, args.key, at=at, version=args.version)
        data = state_json(state)
        text = [
            f"{state.stream}/{state.entity_key}  version {state.version}  as of {data['as_of']}"
        ]
        if data["gap"] is not None:
            text.append(
                f"UNCERTAIN: the time falls inside a gap in the record "
                f"({data['gap']['from']} to {data['gap']['to']}): changes then were not observed"
            )
        for f in data["findings"]:
            text.append(f"finding at version {f['version']} ({f['kind']}): {f['detail']}")
        if state.exists:  # JSON escapes newlines inside strings: its own lines are safe to split
            text += json.dumps(data["document"], indent=2, ensure_ascii=False).split("\n")
        else:
            text.append("(no document: deleted at or before this version)")
        _emit(data, args, out, text)
        return EXIT_OK

    return await _guarded(args, body)


async def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore diff STREAM KEY FROM TO`."""

    async def body(h: History) -> int:
        result = await h.diff(args.stream, args.key, args.from_version, args.to_version)
        data = diff_json(result)
        rows = [f"{args.stream}/{args.key}: version {result.from_version} -> {result.to_version}"]
        rows += [f"  {c['op']:<8} {c['path']}: {_change_text(c)}" for c in data["changes"]]
        if result.erased:
            rows.append(
                "  (erased: a version's data was removed by an erasure; what changed cannot be told)"
            )
        elif not data["changes"]:
            rows.append("  (no differences)")
        _emit(data, args, out, rows)
        return EXIT_OK

    return await _guarded(args, body)


def _change_text(c: dict[str, Any]) -> str:
    """`before -> after` as JSON, each with its BSON type when the types differ
    (`"1.0" (decimal) -> "1.0" (string)`: alike in JSON, not in the database)."""
    before = json.dumps(c["before"], ensure_ascii=False)
    after = json.dumps(c["after"], ensure_ascii=False)
    if "before_type" in c:
        return f"{before} ({c['before_type']}) -> {after} ({c['after_type']})"
    return f"{before} -> {after}"


async def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore verify [STREAM [KEY]] [--head | --against-head FILE]`; exit 2 on tampering."""
    checkpoint = getattr(args, "checkpoint", None)
    whole_log = args.head or args.against_head is not None or checkpoint is not None
    if whole_log and args.stream is not None:
        flag = "--head" if args.head else "--against-head" if args.against_head else "--checkpoint"
        raise CliError(f"{flag} is about the whole log: give it without STREAM or KEY")
    if checkpoint is not None:
        return await _verify_checkpoint(args, out)
    if args.key_ is not None:  # a key alone would be ignored: the verdict must not look held to it
        raise CliError("--key is the key of a saved checkpoint: give it with --checkpoint FILE")
    against = _read_head(Path(args.against_head)) if args.against_head is not None else None

    async def body(h: History) -> int:
        if args.head:
            # Always JSON: it is meant to be kept elsewhere and given back to --against-head.
            print(json.dumps(head_json(await h.store.events.head())), file=out)
            return EXIT_OK
        if args.key is not None:
            v = await h.verify_entity(args.stream, args.key)
            data = entity_verdict_json(v)
            text = [
                f"{args.stream}/{args.key}: {'valid' if v.valid else 'TAMPERED'}, "
                f"{v.events_checked} events checked",
                checkpoint_line(v.checkpoint),
            ]
            if not v.valid and v.first_invalid_version is not None:
                text.append(f"  first invalid version {v.first_invalid_version}: {v.reason}")
            elif not v.valid:
                text.append(f"  {v.reason}")
        elif args.stream is not None:
            sv = await h.verify_stream(args.stream)
            data = stream_verdict_json(sv)
            text = [
                f"{args.stream}: {'valid' if sv.valid else 'TAMPERED'}, "
                f"{sv.entities_checked} entities, {sv.events_checked} events checked",
                checkpoint_line(sv.checkpoint),
            ]
            for bad in sv.invalid:
                text.append(
                    f"  {bad.entity_key}: first invalid version "
                    f"{bad.first_invalid_version}: {bad.reason}"
                )
            if sv.checkpoint is not None and not sv.checkpoint.holds:
                text.append(f"  {sv.checkpoint.reason}")
        else:
            lv = await h.verify_log(against)
            data = log_verdict_json(lv)
            source = "the exported head" if against is not None else "the recorded head"
            head = (
                f"log: {'valid' if lv.valid else 'TAMPERED'}, {lv.events_checked} events checked, "
                f"head seq {lv.head.seq}"
            )
            if lv.head_matches is None:
                head += " (no recorded head: truncation of the newest events cannot be checked)"
            else:
                head += f", {source} {'matches' if lv.head_matches else 'DOES NOT MATCH'}"
            text = [head, checkpoint_line(lv.checkpoint)]
            if not lv.valid and lv.first_invalid_seq is not None:
                text.append(f"  first invalid seq {lv.first_invalid_seq}: {lv.reason}")
            elif not lv.valid:
                text.append(f"  {lv.reason}")
        _emit(data, args, out, text)
        return EXIT_OK if data["valid"] else EXIT_TAMPERED

    return await _guarded(args, body)


def checkpoint_line(check: CheckpointCheck | None) -> str:
    """`checkpoint: size 120, unsigned (no signing key)` / `signed by <name>` / `none yet`.

    For a stream or an entity: whether its newest event inside the checkpoint is in
    its tree, or that none of its events is in it yet.
    """
    if check is None:
        return "checkpoint: none yet"
    if not check.signed:
        how = "unsigned (no signing key)"
    else:
        how = f"signed by {check.signed_by or 'an unreadable signature'}"
    line = f"checkpoint: size {check.size}, {how}"
    if check.pending:
        return line + ", none of these events is in it yet"
    if check.seq is not None and check.matches:
        return line + f", seq {check.seq} (the newest event in it) is in its tree"
    return line + (", the events match it" if check.matches else ", DOES NOT MATCH the events")


async def _verify_checkpoint(args: argparse.Namespace, out: TextIO) -> int:
    """`verify --checkpoint FILE --key KEY`: the saved checkpoint, then the usual chains."""
    if not args.key_:
        raise CliError("--checkpoint needs --key VERIFIER_KEY (the log's public key)")
    try:
        verifier = Verifier.parse(args.key_)
    except NoteError as exc:
        raise CliError(f"--key: {exc}") from None
    try:
        # Read as bytes: text mode would turn CRLF into LF, hiding the note's altered line ends.
        raw = await asyncio.to_thread(Path(args.checkpoint).read_bytes)
        note = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the checkpoint in {args.checkpoint}: {exc}") from None

    async def body(h: History) -> int:
        cv = await verify_checkpoint(h.store, note, verifier)
        lv = await h.verify_log(None) if cv.valid else None
        valid = cv.valid and lv is not None and lv.valid and lv.head_matches is not False
        data: dict[str, Any] = {"valid": valid, "checkpoint": msgspec.to_builtins(cv)}
        text = [f"checkpoint: {'valid' if cv.valid else 'TAMPERED'}: {cv.reason}"]
        if lv is not None:
            data["log"] = log_verdict_json(lv)
            text.append(
                f"log: {'valid' if lv.valid else 'TAMPERED'}, {lv.events_checked} events checked"
            )
            if lv.head_matches is False:
                text[-1] += ", the recorded head DOES NOT MATCH"
            if not lv.valid:
                text.append(f"  first invalid seq {lv.first_invalid_seq}: {lv.reason}")
        _emit(data, args, out, text)
        return EXIT_OK if valid else EXIT_TAMPERED

    return await _guarded(args, body)


def _read_head(path: Path) -> Head:
    """A head exported by `verify --head`: {seq, log_hash}."""
    try:
        data = json_input.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the head in {path}: {exc}") from None
    seq = data.get("seq") if isinstance(data, dict) else None
    log_hash = data.get("log_hash") if isinstance(data, dict) else None
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 0
        or not isinstance(log_hash, str)
        or not HASH_PATTERN.fullmatch(log_hash)
    ):
        raise CliError(
            f"{path} is not an exported head: expected JSON {{seq, log_hash}} as "
            "`eventstore verify --head` prints it"
        )
    return Head(seq=seq, log_hash=log_hash)


__all__ = ["cmd_diff", "cmd_history", "cmd_state", "cmd_verify", "parse_time"]
