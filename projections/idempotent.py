"""The runner's guard around projections that do not track idempotency themselves (plugins).

Every row written carries `_seq`, the seq of the last change applied to it. A
write to a row whose `_seq` is already at or past the change's seq is dropped:
that row has this change. A row's write depends only on that row and the change,
so dropping it leaves the other rows' writes right. (A deleted row keeps no
`_seq`: a projection that deletes rows and counts by delta relies on the batch
and its checkpoint being written together, as they are in one transaction.)

A plugin's output is checked as it comes back, so that what one store would
refuse at write time (MongoDB) is refused on every store, at the change that
made it, with the reason: `keys` must give a list of non-empty strings;
`apply` a list of `Write` (of a projection that declares `skippable`, only for the
rows it was given to apply to: `check_named`), each with such a key and a row that is None or a
document MongoDB can store (string field names, none starting with `$`, an
`_id` only equal to the key, which is the row's `_id`; every value BSON; at most 16 MiB as
stored, with its `_id` and `_seq`). A bad output raises `PluginOutputError`, and the runner
marks the projection failed at that seq. A plugin's `merge` (partitioned rebuilds) is checked
the same way, its rows being documents (never None); a merge that raises is `MergeFailed`,
naming the key.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Any, Final

import bson

from eventstore.model import MAX_DOCUMENT_BYTES
from projections.api import SEQ_FIELD, Apply, Change, Keys, Merge, Projection, Rows, Write

# A stored row, `_id` and `_seq` included, is one MongoDB document.
MAX_ROW_BYTES: Final = MAX_DOCUMENT_BYTES


class PluginOutputError(TypeError):
    """A plugin's keys, apply or merge returned something the runner cannot store."""


class MergeFailed(Exception):
    """A plugin's merge raised on the two partial rows of one key."""


class PluginExited(Exception):
    """A plugin's code raised what is no Exception (`sys.exit`, KeyboardInterrupt, ...).

    Invariant: a plugin stops only its own projection, whatever it raises; the service,
    capture and the other projections go on.
    """


def plugin_exit(exc: BaseException) -> bool:
    """Whether `exc` (a BaseException out of a plugin's code) is the plugin's, to contain.

    Any is (SystemExit, GeneratorExit, a CancelledError, a subclass of its own): plugin
    code runs without awaiting, so no cancellation of ours can arrive inside it. But a
    KeyboardInterrupt under Python's own SIGINT handler may be the user's Ctrl-C, which
    ends a command (exit 130); the services handle SIGINT themselves, so one there is
    the plugin's.
    """
    if isinstance(exc, Exception):
        return False  # an ordinary failure: the callers handle it as they always did
    if isinstance(exc, KeyboardInterrupt):
        return signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    return True


def exited(source: str, exc: BaseException) -> PluginExited:
    """`exc`, which `source` (keys, apply, ...) of a plugin raised, as a `PluginExited`."""
    return PluginExited(f"{source} raised {type(exc).__name__}: {exc}")


def checked_keys(projection: Projection) -> Keys:
    """The projection's keys; a plugin's checked to be a list of non-empty strings."""
    keys = projection.keys
    if projection.tracks_seq:  # the built-in order models: tested, and on the hot path
        return keys

    def keys_checked(change: Change) -> list[str]:
        try:
            found = keys(change)
        except BaseException as exc:
            if plugin_exit(exc):
                raise exited("keys", exc) from None
            raise
        if not isinstance(found, (list, tuple)):
            raise PluginOutputError(
                f"keys returned {_shown(found)} ({type(found).__name__}), not a list of strings"
            )
        for key in found:
            _check_key("keys", key)
        return list(found)

    return keys_checked


def guarded(projection: Projection) -> Apply:
    """The projection's apply, applying each change to each row at most once (plugins checked)."""
    apply = projection.apply
    if projection.tracks_seq:
        return apply

    def apply_once(rows: Rows, change: Change) -> list[Write]:
        seq = change.event.seq
        out: list[Write] = []
        try:
            writes = apply(rows, change)
        except BaseException as exc:
            if plugin_exit(exc):
                raise exited("apply", exc) from None
            raise
        if not isinstance(writes, (list, tuple)):
            raise PluginOutputError(
                f"apply returned {_shown(writes)} ({type(writes).__name__}), not a list of Write"
            )
        for w in writes:
            if not isinstance(w, Write):
                raise PluginOutputError(
                    f"apply returned {_shown(w)} ({type(w).__name__}) in its list, not a Write"
                )
            _check_key("apply", w.key)
            old = rows.get(w.key)
            if old is not None and _seq(old) >= seq:
                continue  # that row has this change
            row = w.row
            if row is not None:
                _check_row("apply", w.key, row)
                row = {**row, SEQ_FIELD: seq}
                _check_size("apply", w.key, row)
            out.append(Write(key=w.key, row=row))
        return out

    return apply_once


def checked_skippable(projection: Projection) -> Callable[[Change], bool] | None:
    """The projection's skippable (None: it has none); a plugin's contained as apply is."""
    skippable = projection.skippable
    if skippable is None or projection.tracks_seq:  # the order models: tested
        return skippable
    plugin_skippable = skippable

    def skippable_checked(change: Change) -> bool:
        try:
            return bool(plugin_skippable(change))
        except BaseException as exc:
            if plugin_exit(exc):
                raise exited("skippable", exc) from None
            raise

    return skippable_checked


def checked_merge(projection: Projection) -> Merge | None:
    """The projection's merge (None: it has none); a plugin's rows checked as apply's are.

    `merge(key, a, b)` must return a row (a dict, never None) MongoDB can store, as
    written with the newer `_seq` of the two; a merge that raises is `MergeFailed`.
    """
    merge = projection.merge
    if merge is None or projection.tracks_seq:  # the order models: tested, rows their own
        return merge
    plugin_merge = merge

    def merge_checked(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        try:
            row = plugin_merge(key, a, b)
        except BaseException as exc:
            if not isinstance(exc, Exception) and not plugin_exit(exc):
                raise
            raise MergeFailed(
                f"merge raised for {_shown(key)}: {type(exc).__name__}: {exc}"
            ) from None
        _check_row("merge", key, row, deletes=False)
        row = {**row, SEQ_FIELD: max(_seq(a), _seq(b))}  # the newest change applied
        _check_size("merge", key, row)
        return row

    return merge_checked


def check_rewritten(key: str, row: Any) -> None:
    """Refuse what `forget`'s rewrite returned for the row `key` unless it is a row MongoDB
    can store (checked as apply's are) or None (the row deleted)."""
    if row is None:
        return
    _check_row("forget's rewrite", key, row)
    _check_size("forget's rewrite", key, row)


def check_named(key: str, touched: Sequence[str]) -> None:
    """Refuse a skippable projection's write to a row it was not applying to (`touched`).

    Its changes are held and released by row key (projections.replay): a write to
    another row would slip past what is held there, and a rebuild's rows would differ
    from following's.
    """
    if key not in touched:
        raise PluginOutputError(
            f"apply wrote the row {_shown(key)}, which keys did not name ({_shown(list(touched))}):"
            " a projection that declares skippable writes only the rows its keys name"
        )


def _check_key(source: str, key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise PluginOutputError(
            f"{source} returned the key {_shown(key)} ({type(key).__name__}): "
            "a key is a non-empty string"
        )


def _check_row(source: str, key: str, row: Any, *, deletes: bool = True) -> None:
    """Refuse a row MongoDB would refuse: `source` (apply, merge) returned it for `key`."""
    if not isinstance(row, dict):
        what = "a row is a dict, or None to delete it" if deletes else "a merged row is a dict"
        raise PluginOutputError(
            f"{source} returned for {key!r} the row {_shown(row)} ({type(row).__name__}): {what}"
        )
    for field in row:
        if not isinstance(field, str):
            raise PluginOutputError(
                f"{source} returned for {key!r} a row with the field name {_shown(field)}: "
                "field names are strings"
            )
        if field.startswith("$"):
            raise PluginOutputError(
                f"{source} returned for {key!r} a row with the field {field!r}: "
                "MongoDB stores no top-level field starting with `$`"
            )
    # A row read back carries its key as `_id` (so `{**old, ...}` keeps it): any other is refused.
    if "_id" in row and row["_id"] != key:
        raise PluginOutputError(
            f"{source} returned for {key!r} a row whose _id is {_shown(row['_id'])}: "
            "a row's _id is its key"
        )


def _check_size(source: str, key: str, row: dict[str, Any]) -> None:
    """Refuse a row (as written, with its `_seq`) MongoDB cannot store, or store whole.

    The stored document is `{"_id": key, **row}`: its size is the row's encoded size plus,
    when the row has no `_id`, that element's (type, name and NUL, length, key and NUL).
    """
    try:
        size = len(bson.encode(row))
    except Exception as exc:  # InvalidDocument, OverflowError (int over 64 bits), ...
        raise PluginOutputError(
            f"{source} returned for {key!r} a row MongoDB cannot store: {type(exc).__name__}: {exc}"
        ) from None
    if "_id" not in row:
        size += 1 + 4 + 4 + len(key.encode("utf-8", "surrogatepass")) + 1
    if size > MAX_ROW_BYTES:
        raise PluginOutputError(
            f"{source} returned for {key!r} a row of {size} bytes as stored (with _id and "
            f"{SEQ_FIELD}): MongoDB stores documents of at most {MAX_ROW_BYTES} bytes (16 MiB)"
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _seq(row: object) -> int:
    value = row.get(SEQ_FIELD, 0) if isinstance(row, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


__all__ = [
    "MAX_ROW_BYTES",
    "MergeFailed",
    "PluginOutputError",
    "check_named",
    "check_rewritten",
    "checked_keys",
    "checked_merge",
    "guarded",
]
