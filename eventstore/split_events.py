"""Change events that `$changeStreamSplitLargeEvent` split into fragments, put back together (pure).

MongoDB cannot send a change event over 16 MB (a large document with its pre-
and post-image): without the stage the stream fails on it with
`BSONObjectTooLarge`, at every resume, and capture can never pass it. With the
stage (7.0, 6.0.9) it sends the event as consecutive fragments, each a document
with its own resume token `_id`, `splitEvent: {fragment, of}` (1-based) and some
of the event's top-level fields, the first fragment as many as fit.

A stream resumed from a fragment's token goes on with the next fragment; from
the last fragment's, with the next event. So a whole event takes the last
fragment's token as its `_id`: stored as the event's id and saved as the resume
position, it never names a place inside an event, and a restart reads an
unfinished event again from its first fragment.

A sequence that cannot be put together (a fragment without the ones before it,
an event cut short by another change or by the end of the input, two fragments
holding the same field) comes out as its raw fragments, and the ingester judges
each as bad input (`badinput.problem` names it).
"""

from __future__ import annotations

from typing import Any, Final, Generic, TypeVar

SPLIT_EVENT: Final = "splitEvent"
# The last stage of the production pipeline.
SPLIT_STAGE: Final = "$changeStreamSplitLargeEvent"

T = TypeVar("T")


def fragment_of(change: Any) -> tuple[int, int] | None:
    """`(fragment, of)` when the change is a well-formed fragment, else None."""
    split = change.get(SPLIT_EVENT) if isinstance(change, dict) else None
    if not isinstance(split, dict):
        return None
    fragment, of = split.get("fragment"), split.get("of")
    if (
        not isinstance(fragment, int)
        or not isinstance(of, int)
        or bool in (type(fragment), type(of))
    ):
        return None
    return (fragment, of) if 1 <= fragment <= of else None


class Fragments(Generic[T]):
    """Puts split events back together, change by change; each change comes with a tag.

    `add` returns what is complete after a change, each with the tags of the
    changes it was made of: nothing while an event's fragments are still
    arriving, the whole event after its last fragment, a change that is not a
    fragment as it is (after any unfinished event before it, as raw fragments).
    """

    def __init__(self) -> None:
        self._parts: list[tuple[dict[str, Any], T]] = []
        self._of = 0

    @property
    def pending(self) -> bool:
        """True while an event's first fragments have arrived and its last has not."""
        return bool(self._parts)

    def add(self, change: Any, tag: T) -> list[tuple[Any, list[T]]]:
        """The changes complete after this one (see the class)."""
        split = fragment_of(change)
        if split is None:
            return [*self.flush(), (change, [tag])]
        fragment, of = split
        out: list[tuple[Any, list[T]]] = []
        if self._parts and (fragment != len(self._parts) + 1 or of != self._of):
            out = self.flush()
        if fragment != 1 and not self._parts:
            out.append((change, [tag]))  # its first fragments never came
            return out
        self._parts.append((change, tag))
        self._of = of
        if fragment == of:
            out.extend(self._whole())
        return out

    def flush(self) -> list[tuple[Any, list[T]]]:
        """An unfinished event's fragments as they came (at the end of the input, or cut short)."""
        out: list[tuple[Any, list[T]]] = [(change, [tag]) for change, tag in self._parts]
        self._parts = []
        return out

    def _whole(self) -> list[tuple[Any, list[T]]]:
        parts = self._parts
        merged: dict[str, Any] = {"_id": parts[-1][0].get("_id")}
        for change, _ in parts:
            for name, value in change.items():
                if name in ("_id", SPLIT_EVENT):
                    continue
                if name in merged:  # two fragments cannot hold one field: not one event
                    return self.flush()
                merged[name] = value
        if merged["_id"] is None:
            del merged["_id"]
        self._parts = []
        return [(merged, [tag for _, tag in parts])]
