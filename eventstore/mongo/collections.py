"""MongoDB collection names of the store database, defined once."""

from __future__ import annotations

from typing import Final

EVENTS: Final = "events"
CHECKPOINTS: Final = "checkpoints"
SNAPSHOTS: Final = "snapshots"
LEASES: Final = "leases"
MIGRATIONS: Final = "migrations"
JOBS: Final = "jobs"
MERKLE_NODES: Final = "merkle_nodes"
MERKLE_CHECKPOINTS: Final = "merkle_checkpoints"
ERASURE_REQUESTS: Final = "erasure_requests"
WORKERS: Final = "workers"
