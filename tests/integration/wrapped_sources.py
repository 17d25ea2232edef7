"""A change source wrapping another, for tests that alter its stream on the way (a server
gone wrong, a driver's own resume, history lost mid-stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from bson import Timestamp

from eventstore.model import ResumePoint
from eventstore.ports import ChangeSource, ChangeStream


class WrappedSource:
    """The `inner` source as it is, except each stream it opens, given to `wrap`."""

    def __init__(self, inner: ChangeSource) -> None:
        self.inner = inner

    def wrap(self, stream: ChangeStream) -> ChangeStream:
        """The stream tests read instead of `stream` (override)."""
        return stream

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def can_snapshot(self) -> bool:
        return self.inner.can_snapshot

    @property
    def finite(self) -> bool:
        return self.inner.finite

    async def cluster_time(self) -> Timestamp:
        return await self.inner.cluster_time()

    def scan(self, collection: str, *, batch_size: int) -> AsyncIterator[list[dict[str, Any]]]:
        return self.inner.scan(collection, batch_size=batch_size)

    def watch(self, resume: ResumePoint | None) -> AbstractAsyncContextManager[ChangeStream]:
        return self._watch(resume)

    @asynccontextmanager
    async def _watch(self, resume: ResumePoint | None) -> AsyncIterator[ChangeStream]:
        async with self.inner.watch(resume) as stream:
            yield self.wrap(stream)
