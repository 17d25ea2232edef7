"""The memory change feed's history: recorded changes, their resume tokens, clusterTimes and horizon.

Resume tokens are `{"_data": "82" + clusterTime (16 hex) + position (16 hex)}`:
fixed width upper-case hex, so string order is time order. Position n is the
n-th change of the feed (0 = before the first); a stream at position n goes on
with change n + 1.

Every operation here is O(1) (amortised) or O(log n) in the number of changes
remembered: appending, forgetting the oldest ones (as an oplog rolls over),
reading a change by position, finding the first change at a clusterTime.
"""

from __future__ import annotations

import asyncio
import bisect
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from bson import Timestamp

from eventstore.codec import utc_ms
from eventstore.ports import Clock, SourceError

_TOKEN: Final = re.compile(r"^82([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{16})$")
IMAGE_OPS: Final = frozenset({"update", "replace", "delete"})
DATABASE_OPS: Final = frozenset({"dropDatabase", "invalidate"})


def make_token(cluster_time: Timestamp, position: int) -> dict[str, Any]:
    """The resume token of the change at `position` (position 0, time 0: before any change)."""
    return {"_data": f"82{cluster_time.time:08X}{cluster_time.inc:08X}{position:016X}"}


def token_position(token: Mapping[str, Any] | None) -> int:
    """The feed position a resume token stands for; SourceError for a token of another kind."""
    data = token.get("_data") if isinstance(token, Mapping) else None
    match = _TOKEN.fullmatch(data) if isinstance(data, str) else None
    if match is None:
        raise SourceError(f"not a resume token of the memory change feed: {token!r}")
    return int(match.group(3), 16)


class FeedEntry:
    """One recorded change; `image` is the pre-image when the collection kept one."""

    __slots__ = ("event", "image", "position")

    def __init__(self, position: int, event: dict[str, Any], image: dict[str, Any] | None) -> None:
        self.position = position
        self.event = event
        self.image = image


class FeedHistory:
    """The recorded changes, oldest first, with dense positions from 1; the oldest may be forgotten."""

    def __init__(self, clock: Clock, *, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("history_limit must be at least 1")
        self.clock = clock
        # Remembered: _entries[_first:]; _entries[_first + i].position == lost_through + 1 + i.
        # Forgetting advances _first; the list is compacted once half of it is forgotten
        # (amortised O(1) per change).
        self._entries: list[FeedEntry] = []
        self._first = 0
        self._position = 0
        self._lost_through = 0
        self._lost_time: Timestamp | None = None
        self._limit = limit
        self._last_time = Timestamp(0, 0)
        self._last_token: dict[str, Any] | None = None
        self._invalidates: set[int] = set()
        self._changed = asyncio.Event()

    # -- recording ---------------------------------------------------------------------------------

    def append(
        self,
        body: Mapping[str, Any],
        *,
        image: dict[str, Any] | None,
        uuid: Any = None,
        cluster_time: Timestamp | None = None,
        wall_time: datetime | None = None,
    ) -> dict[str, Any]:
        """Record a change (`body` without `_id`, clusterTime, wallTime); returns its token."""
        position = self._position + 1
        when = cluster_time or self.tick()
        token = make_token(when, position)
        event: dict[str, Any] = {
            "_id": token,
            "operationType": body["operationType"],
            "clusterTime": when,
            "wallTime": wall_time or utc_ms(self.clock.now()),
        }
        if uuid is not None:
            event["collectionUUID"] = uuid
        event.update((k, v) for k, v in body.items() if k != "operationType")
        self._entries.append(FeedEntry(position, event, image))
        self._position = position
        self._last_token = token
        if event["operationType"] == "invalidate":
            self._invalidates.add(position)
        if self._limit is not None and self.remembered > self._limit:
            self._drop_oldest(self.remembered - self._limit)
        self._changed.set()  # wake waiting streams; the next waiters get a fresh event
        self._changed = asyncio.Event()
        return token

    def tick(self) -> Timestamp:
        """The next clusterTime: strictly increasing, seconds from the clock."""
        seconds = int(self.clock.now().timestamp())
        if seconds > self._last_time.time:
            self._last_time = Timestamp(seconds, 1)
        else:
            self._last_time = Timestamp(self._last_time.time, self._last_time.inc + 1)
        return self._last_time

    def cluster_time(self) -> Timestamp:
        """The current cluster time: never before the newest change's, never going back."""
        now = Timestamp(int(self.clock.now().timestamp()), 0)
        if now > self._last_time:
            self._last_time = now
        return self._last_time

    # -- forgetting --------------------------------------------------------------------------------

    def forget_before(self, token: Mapping[str, Any] | None = None) -> None:
        """Drop history before `token` (None: everything before the newest change)."""
        keep = self._position if token is None else min(token_position(token), self._position)
        count = keep - (self._lost_through + 1)
        if count > 0:
            self._drop_oldest(count)

    def _drop_oldest(self, count: int) -> None:
        newest_lost = self._entries[self._first + count - 1]
        self._lost_time = newest_lost.event.get("clusterTime")
        self._lost_through = newest_lost.position
        for entry in self._entries[self._first : self._first + count]:
            if entry.position in self._invalidates:
                self._invalidates.discard(entry.position)
        self._first += count
        if self._first * 2 >= len(self._entries):
            del self._entries[: self._first]
            self._first = 0

    # -- reading -----------------------------------------------------------------------------------

    @property
    def remembered(self) -> int:
        """How many changes are remembered."""
        return len(self._entries) - self._first

    @property
    def position(self) -> int:
        """How many changes were recorded."""
        return self._position

    @property
    def last_token(self) -> dict[str, Any] | None:
        """The newest change's resume token (None before the first change)."""
        return dict(self._last_token) if self._last_token else None

    def current_token(self) -> dict[str, Any]:
        """A token at the feed's current position (what an idle stream reports)."""
        return self.last_token or make_token(Timestamp(0, 0), 0)

    @property
    def horizon(self) -> int:
        """The newest forgotten position (0: nothing forgotten)."""
        return self._lost_through

    @property
    def horizon_time(self) -> Timestamp | None:
        """The clusterTime of the newest forgotten change (None: nothing forgotten)."""
        return self._lost_time

    @property
    def latest_time(self) -> Timestamp:
        """The newest cluster time handed out."""
        return self._last_time

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next recorded change."""
        return self._changed

    def entry_at(self, position: int) -> FeedEntry | None:
        """The remembered change at a position, or None."""
        index = position - self._lost_through - 1
        if not 0 <= index < self.remembered:
            return None
        return self._entries[self._first + index]

    def is_invalidate(self, position: int) -> bool:
        """True when the change at the position is a remembered `invalidate`."""
        return position in self._invalidates

    def first_at_or_after(self, at: Timestamp) -> int:
        """The position of the first remembered change at or after `at` (position + 1 if none).

        clusterTimes increase with the position, so this is a binary search.
        """
        index = bisect.bisect_left(
            self._entries, at, lo=self._first, key=lambda e: e.event["clusterTime"]
        )
        if index == len(self._entries):
            return self._position + 1
        return self._entries[index].position


__all__ = [
    "DATABASE_OPS",
    "IMAGE_OPS",
    "FeedEntry",
    "FeedHistory",
    "make_token",
    "token_position",
]
