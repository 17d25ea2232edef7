"""MongoDB collection names of the store database, defined once."""

from __future__ import annotations

from typing import Final

EVENTS: Final = "events"
# Payloads of events too large for one document, in parts (`payload_parts`).
EVENT_PAYLOADS: Final = "event_payloads"
CHECKPOINTS: Final = "checkpoints"
SNAPSHOTS: Final = "snapshots"
LEASES: Final = "leases"
MIGRATIONS: Final = "migrations"
JOBS: Final = "jobs"
MERKLE_NODES: Final = "merkle_nodes"
MERKLE_CHECKPOINTS: Final = "merkle_checkpoints"
ERASURE_REQUESTS: Final = "erasure_requests"
WORKERS: Final = "workers"
SUBSCRIPTIONS: Final = "subscriptions"
SUBSCRIPTION_SETTLED: Final = "subscription_settled"
SUBSCRIPTION_PARKED: Final = "subscription_parked"
ADMIN_ACTIONS: Final = "admin_actions"
ENTITY_HEADS: Final = "entity_heads"
STREAM_STATS: Final = "stream_stats"
