"""The JSON shapes of DESIGN.md, shared by the CLI (`--json`) and the API."""

from __future__ import annotations

from typing import Any

from eventstore.chain import CheckpointCheck, EntityVerdict, LogVerdict
from eventstore.codec import rfc3339, to_jsonable
from eventstore.diff import FieldChange, is_ambiguous
from eventstore.history import EntityState, HistoryPage, VersionDiff
from eventstore.keys import event_typed_key, relaxed_json
from eventstore.model import Event, Head
from eventstore.verification import StreamVerdict


def event_json(event: Event, changes: list[FieldChange] | None = None) -> dict[str, Any]:
    """An event: entity_id as relaxed Extended JSON, times RFC 3339 UTC with ms."""
    out: dict[str, Any] = {
        "seq": event.seq,
        "id": event.id,
        "stream": event.stream,
        "entity_key": event.entity_key,
        # The key that, given back, names this event's entity alone (`str:int:5`, `int:42`):
        # `entity_key` is the key it was stored with, which may read as another value.
        "typed_key": event_typed_key(event),
        "entity_id": relaxed_json(event.entity_id),
        "version": event.version,
        "type": event.type,
        "occurred_at": rfc3339(event.occurred_at),
        # the change's clusterTime, hashed with the event: relaxed Extended JSON (`$timestamp`)
        "cluster_time": relaxed_json(event.cluster_time),
        "recorded_at": rfc3339(event.recorded_at),
        "actor": to_jsonable(event.actor),
        "inferred": event.inferred,
        "document": to_jsonable(event.document),
        "changes": to_jsonable(event.changes),
        "before": to_jsonable(event.before),
        "changed_fields": list(event.changed_fields),
        "txn": to_jsonable(event.txn),
        "hash": event.hash,
        "prev_hash": event.prev_hash,
        "log_hash": event.log_hash,
        "hash_scheme": event.hash_scheme,
        "salt": event.salt,
        "commit": event.commit,
        "erased": event.erased,
        "erased_by": event.erased_by,
    }
    if changes is not None:
        out["diff"] = changes_json(changes)
    return out


def changes_json(changes: list[FieldChange]) -> list[dict[str, Any]]:
    """A field-level diff: [{path, op, before, after}], and `before_type`, `after_type`
    (MongoDB's `$type` aliases) on a `changed` entry whose two sides differ in BSON type:
    `Decimal128("1.0")` and `"1.0"` render alike, the types tell them apart; and `parts`
    (field names as strings, array indexes as integers) when the path is ambiguous."""
    return [_change_json(c) for c in changes]


def _change_json(c: FieldChange) -> dict[str, Any]:
    out = {
        "path": c.path,
        "op": c.op,
        "before": to_jsonable(c.before),
        "after": to_jsonable(c.after),
    }
    if c.before_type is not None or c.after_type is not None:
        out["before_type"] = c.before_type
        out["after_type"] = c.after_type
    if is_ambiguous(c.parts):  # `a.b` the field "a.b" or `b` in `a`: the components say
        out["parts"] = list(c.parts)
    return out


def history_json(page: HistoryPage) -> dict[str, Any]:
    """{stream, entity_key, events, next}."""
    return {
        "stream": page.stream,
        "entity_key": page.entity_key,
        "events": [event_json(entry.event, entry.diff) for entry in page.events],
        "next": page.next,
    }


def state_json(state: EntityState) -> dict[str, Any]:
    """{stream, entity_key, version, as_of, exists, uncertain, gap, document}."""
    return {
        "stream": state.stream,
        "entity_key": state.entity_key,
        "version": state.version,
        "as_of": rfc3339(state.as_of),
        "exists": state.exists,
        "uncertain": state.uncertain,
        "gap": {"from": rfc3339(state.gap.from_), "to": rfc3339(state.gap.to)}
        if state.gap
        else None,
        "document": to_jsonable(state.document),
        "findings": [
            {"version": f.version, "kind": f.kind, "detail": f.detail} for f in state.findings
        ],
        "erased": state.erased,
    }


def diff_json(d: VersionDiff) -> dict[str, Any]:
    """{from_version, to_version, changes, erased}."""
    return {
        "from_version": d.from_version,
        "to_version": d.to_version,
        "changes": changes_json(d.changes),
        "erased": d.erased,
    }


def head_json(head: Head) -> dict[str, Any]:
    """{seq, log_hash}: what `verify --head` exports."""
    return {"seq": head.seq, "log_hash": head.log_hash}


def entity_verdict_json(v: EntityVerdict) -> dict[str, Any]:
    """{valid, events_checked, first_invalid_version, reason} and, once erased, `erased`.

    A log without erasures renders exactly as before erasure existed.
    """
    out: dict[str, Any] = {
        "valid": v.valid,
        "events_checked": v.events_checked,
        "first_invalid_version": v.first_invalid_version,
        "reason": v.reason,
    }
    if v.erased:
        out["erased"] = [
            {"seq": e.seq, "version": e.version, "erased_by": e.erased_by} for e in v.erased
        ]
    out["checkpoint"] = checkpoint_json(v.checkpoint, scoped=True)
    return out


def checkpoint_json(
    check: CheckpointCheck | None, *, scoped: bool = False
) -> dict[str, Any] | None:
    """{size, root, signed, signed_by, matches, reason} (+ `seq`, `pending` for a stream or entity).

    None before the first checkpoint.
    """
    if check is None:
        return None
    out: dict[str, Any] = {
        "size": check.size,
        "root": check.root,
        "signed": check.signed,
        "signed_by": check.signed_by,
        "matches": check.matches,
        "reason": check.reason,
    }
    if scoped:
        out |= {"seq": check.seq, "pending": check.pending}
    return out


def stream_verdict_json(v: StreamVerdict) -> dict[str, Any]:
    """{valid, entities_checked, events_checked, invalid} and, once erased, `events_erased`."""
    return {
        "valid": v.valid,
        "entities_checked": v.entities_checked,
        "events_checked": v.events_checked,
        "invalid": [
            {
                "entity_key": bad.entity_key,
                "first_invalid_version": bad.first_invalid_version,
                "reason": bad.reason,
            }
            for bad in v.invalid
        ],
        "checkpoint": checkpoint_json(v.checkpoint, scoped=True),
    } | ({"events_erased": v.events_erased} if v.events_erased else {})


def log_verdict_json(v: LogVerdict) -> dict[str, Any]:
    """{valid, events_checked, first_invalid_seq, reason, head, head_matches, checkpoint} (+ `events_erased`).

    `checkpoint` is the latest stored checkpoint held to the events, null before the first.
    """
    return {
        "valid": v.valid,
        "events_checked": v.events_checked,
        "first_invalid_seq": v.first_invalid_seq,
        "reason": v.reason,
        "head": head_json(v.head),
        "head_matches": v.head_matches,
        "checkpoint": checkpoint_json(v.checkpoint),
    } | ({"events_erased": v.events_erased} if v.events_erased else {})
