"""Erasure requests in process memory."""

from __future__ import annotations

from eventstore.model import ErasureRequest


class MemoryErasures:
    """The `Erasures` port over a dict (insertion order is request order)."""

    def __init__(self) -> None:
        self._requests: dict[str, ErasureRequest] = {}

    async def create(self, request: ErasureRequest) -> None:
        """Store a new request."""
        self._requests[request.id] = request

    async def get(self, request_id: str) -> ErasureRequest | None:
        """A request by id."""
        return self._requests.get(request_id)

    async def queued(self) -> list[ErasureRequest]:
        """The queued requests, oldest first (by requested_at, as the mongo adapter sorts)."""
        queued = [r for r in self._requests.values() if r.state == "queued"]
        return sorted(queued, key=lambda r: (r.requested_at is not None, r.requested_at or 0))

    async def done_for(self, stream: str, entity_key: str) -> ErasureRequest | None:
        """The newest carried-out request for this entity."""
        done = [
            r
            for r in self._requests.values()
            if r.state == "done" and r.stream == stream and r.entity_key == entity_key
        ]
        return max(done, key=lambda r: r.seq or 0) if done else None

    async def update(self, request: ErasureRequest) -> None:
        """Replace a request's record."""
        self._requests[request.id] = request
