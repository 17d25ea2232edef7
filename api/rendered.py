"""A bounded cache of rendered history entries (event JSON and its field-level diff).

Events are never updated, except that an erasure removes payload and salt (and
sets `erased_by`), so an event's rendering changes only then: a history page
whose events are all cached costs one read of the log and no fold. Entries are
keyed by the event's `_id`, `hash` and `erased_by`, so a rendering made before an
erasure is never served after it (and is dropped when the erased event is met).
Verification never reads this cache; it recomputes the chains from the store.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import msgspec

from api.schemas import HistoryEventOut
from eventstore import render
from eventstore.history import HistoryEntry
from eventstore.model import Event

DEFAULT_SIZE: Final = 20_000


class RenderedHistory:
    """Rendered history entries, least recently used dropped first."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str, int | None], HistoryEventOut] = OrderedDict()

    def get_all(self, events: list[Event]) -> list[HistoryEventOut] | None:
        """Every event's rendering, or None when one is missing."""
        out = []
        for e in events:
            if e.erased_by is not None:
                # The rendering from before the erasure holds the data: drop it.
                self._entries.pop((e.id, e.hash, None), None)
            found = self._entries.get(_key(e))
            if found is None:
                return None
            self._entries.move_to_end(_key(e))
            out.append(found)
        return out

    def render(self, entries: list[HistoryEntry]) -> list[HistoryEventOut]:
        """Render entries (and keep them)."""
        out = []
        for entry in entries:
            rendered = msgspec.convert(render.event_json(entry.event, entry.diff), HistoryEventOut)
            key = _key(entry.event)
            if entry.event.erased_by is not None:
                self._entries.pop((entry.event.id, entry.event.hash, None), None)
            self._entries[key] = rendered
            self._entries.move_to_end(key)
            out.append(rendered)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return out


def _key(event: Event) -> tuple[str, str, int | None]:
    return (event.id, event.hash, event.erased_by)
