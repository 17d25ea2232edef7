"""What of a driver's error message people read (pure)."""

from __future__ import annotations

from typing import Final

# Where a driver's message stops saying anything people read: its topology's dump (a
# ServerSelectionTimeoutError's `, Topology Description: <…>`, hundreds of characters).
TOPOLOGY_DUMP: Final = ", Topology Description:"


def without_topology(text: str) -> str:
    """`text` cut before the driver's topology dump, if it has one."""
    return text.split(TOPOLOGY_DUMP, 1)[0]
