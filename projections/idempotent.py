"""The runner's idempotency for projections that do not track it themselves (plugins).

Every row written carries `_seq`, the seq of the last change applied to it. A
write to a row whose `_seq` is already at or past the change's seq is dropped:
that row has this change. A row's write depends only on that row and the change,
so dropping it leaves the other rows' writes right. (A deleted row keeps no
`_seq`: a projection that deletes rows and counts by delta relies on the batch
and its checkpoint being written together, as they are in one transaction.)
"""

from __future__ import annotations

from projections.api import SEQ_FIELD, Apply, Change, Projection, Rows, Write


def guarded(projection: Projection) -> Apply:
    """The projection's apply, applying each change to each row at most once."""
    apply = projection.apply
    if projection.tracks_seq:
        return apply

    def apply_once(rows: Rows, change: Change) -> list[Write]:
        seq = change.event.seq
        out: list[Write] = []
        for w in apply(rows, change):
            old = rows.get(w.key)
            if old is not None and _seq(old) >= seq:
                continue  # that row has this change
            row = w.row
            if row is not None:
                row = {**row, SEQ_FIELD: seq}
            out.append(Write(key=w.key, row=row))
        return out

    return apply_once


def _seq(row: object) -> int:
    value = row.get(SEQ_FIELD, 0) if isinstance(row, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


__all__ = ["guarded"]
