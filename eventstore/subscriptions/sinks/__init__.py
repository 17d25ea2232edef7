"""Sinks: where a subscription delivers (webhook, Redis pub/sub, invalidation, streams)."""
