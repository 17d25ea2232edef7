"""The sink a configuration names."""

from __future__ import annotations

from eventstore.ports import Clock
from eventstore.subscriptions import config as cfg
from eventstore.subscriptions.sinks.base import Sink


def build_sink(config: cfg.SubscriptionConfig, *, clock: Clock) -> Sink:
    """A new sink (nothing connects until the first delivery); SecretError for a missing secret."""
    sink = config.sink
    kind = config.kind
    if kind == cfg.WEBHOOK:
        from eventstore.subscriptions.sinks.webhook import WebhookSink

        return WebhookSink(sink, clock=clock)
    from eventstore.subscriptions.sinks import redis_sinks

    if kind == cfg.REDIS_PUBSUB:
        return redis_sinks.RedisPubSubSink(sink)
    if kind == cfg.REDIS_INVALIDATE:
        return redis_sinks.RedisInvalidateSink(sink, clock=clock)
    return redis_sinks.RedisStreamSink(sink, writer=config.name)
