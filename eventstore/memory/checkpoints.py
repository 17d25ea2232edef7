"""Checkpoints in process memory."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from eventstore.codec import utc_ms
from eventstore.model import Checkpoint


class MemoryCheckpoints:
    """The `Checkpoints` port over a dict keyed by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Checkpoint] = {}

    async def get(self, name: str) -> Checkpoint | None:
        """The checkpoint, or None before the first one."""
        return self._by_name.get(name)

    async def put(self, checkpoint: Checkpoint, *, session: Any = None) -> None:
        """Store (replace) a checkpoint."""
        # A copy, at MongoDB's millisecond precision: what the mongo adapter reads back.
        stored = msgspec.structs.replace(
            checkpoint,
            token=copy.deepcopy(checkpoint.token),
            updated_at=utc_ms(checkpoint.updated_at) if checkpoint.updated_at else None,
        )
        self._by_name[checkpoint.name] = stored
