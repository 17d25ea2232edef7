"""A bounded cache of rendered history entries (event JSON and its field-level diff).

Events are immutable, so an event's rendering never changes: a history page whose
events are all cached costs one read of the log and no fold. Entries are keyed
by the event's `_id` and `hash`. Verification never reads this cache; it
recomputes the chains from the store.
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
        self._entries: OrderedDict[tuple[str, str], HistoryEventOut] = OrderedDict()

    def get_all(self, events: list[Event]) -> list[HistoryEventOut] | None:
        """Every event's rendering, or None when one is missing."""
        out = []
        for e in events:
            found = self._entries.get((e.id, e.hash))
            if found is None:
                return None
            self._entries.move_to_end((e.id, e.hash))
            out.append(found)
        return out

    def render(self, entries: list[HistoryEntry]) -> list[HistoryEventOut]:
        """Render entries (and keep them)."""
        out = []
        for entry in entries:
            rendered = msgspec.convert(render.event_json(entry.event, entry.diff), HistoryEventOut)
            key = (entry.event.id, entry.event.hash)
            self._entries[key] = rendered
            self._entries.move_to_end(key)
            out.append(rendered)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return out
