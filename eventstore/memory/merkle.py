"""The Merkle tree's nodes and checkpoints in process memory."""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence

import msgspec

from eventstore.codec import utc_ms
from eventstore.merkle import NodeId
from eventstore.model import TreeCheckpoint


class MemoryMerkleTree:
    """The `MerkleTree` port over dicts."""

    def __init__(self) -> None:
        self._nodes: dict[NodeId, bytes] = {}
        self._size = 0
        self._checkpoints: dict[int, TreeCheckpoint] = {}
        self._sizes: list[int] = []  # the checkpoints' sizes, sorted
        self.queries = 0

    async def ensure_indexes(self) -> None:
        """Nothing to create."""

    async def size(self) -> int:
        """How many leaves the stored tree covers."""
        return self._size

    async def put_nodes(self, nodes: Sequence[tuple[int, int, bytes]], *, size: int) -> None:
        """Store the nodes, then the size (never lowered)."""
        stored = self._nodes
        for level, index, h in nodes:  # the per-event cost of capture: a plain loop
            stored[level, index] = h
        self._size = max(self._size, size)

    async def get_nodes(self, ids: Collection[NodeId]) -> dict[NodeId, bytes]:
        """The stored nodes among `ids` (one query)."""
        self.queries += 1
        return {i: self._nodes[i] for i in ids if i in self._nodes}

    async def truncate(self, size: int) -> None:
        """Drop the nodes past `size` leaves, then lower the size to it."""
        self._nodes = {k: h for k, h in self._nodes.items() if (k[1] + 1) << k[0] <= size}
        self._size = min(self._size, size)

    async def add_checkpoint(self, checkpoint: TreeCheckpoint) -> bool:
        """Store a checkpoint unless one of its size exists."""
        if checkpoint.size in self._checkpoints:
            return False
        # At MongoDB's millisecond precision: what the mongo adapter reads back.
        bisect.insort(self._sizes, checkpoint.size)
        self._checkpoints[checkpoint.size] = msgspec.structs.replace(
            checkpoint,
            created_at=utc_ms(checkpoint.created_at),
            cosignatures=list(checkpoint.cosignatures),
        )
        return True

    async def checkpoint(self, size: int | None = None) -> TreeCheckpoint | None:
        """The checkpoint of `size`, or the latest."""
        if size is None:
            return self._checkpoints[max(self._checkpoints)] if self._checkpoints else None
        return self._checkpoints.get(size)

    async def checkpoints(self, *, after: int = 0, limit: int = 100) -> list[TreeCheckpoint]:
        """The checkpoints above `after`, by size (a bisect into the sorted sizes)."""
        start = bisect.bisect_right(self._sizes, after)
        return [self._checkpoints[s] for s in self._sizes[start : start + max(limit, 0)]]

    async def add_cosignature(self, size: int, line: str) -> None:
        """Add a cosignature line once."""
        found = self._checkpoints.get(size)
        if found is not None and line not in found.cosignatures:
            self._checkpoints[size] = msgspec.structs.replace(
                found, cosignatures=[*found.cosignatures, line]
            )
