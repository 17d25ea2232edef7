"""Prometheus series of subscriptions: delivered, failures, unheard, already delivered, parked,
lag, state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api.subscription_access import admin_of
from eventstore.worker_state import STATES


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# (metric, type, help, status field)
SERIES = (
    (
        "eventstore_subscription_delivered_total",
        "counter",
        "Events delivered (or already held by the sink).",
        "delivered",
    ),
    (
        "eventstore_subscription_failures_total",
        "counter",
        "Failed delivery attempts.",
        "failed_attempts",
    ),
    (
        "eventstore_subscription_unheard_total",
        "counter",
        "Pub/sub messages that reached no subscriber.",
        "unheard",
    ),
    (
        "eventstore_subscription_already_delivered_total",
        "counter",
        "Events the sink already held (a Redis stream refused the id as at or below its top).",
        "already_delivered",
    ),
    (
        "eventstore_subscription_parked",
        "gauge",
        "Events parked, waiting for replay or skip.",
        "parked",
    ),
    (
        "eventstore_subscription_lag_events",
        "gauge",
        "Events between the checkpoint and the log's head.",
        "lag",
    ),
    (
        "eventstore_subscription_lag_seconds",
        "gauge",
        "Age of the oldest event not yet settled (0 when caught up).",
        "lag_seconds",
    ),
)


def subscription_lines(statuses: Iterable[dict[str, Any]]) -> list[str]:
    """The series of each subscription's status (as GET /v1/admin/subscriptions shows it)."""
    rows = list(statuses)
    lines: list[str] = []
    for metric, kind, text, field in SERIES:
        # As prometheus_client writes them (text format 0.0.4): a counter's TYPE names `_total`.
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        lines += [f'{metric}{{subscription="{_esc(r["name"])}"}} {r[field]}' for r in rows]
    lines += [
        "# HELP eventstore_subscription_state 1 for the subscription's current state.",
        "# TYPE eventstore_subscription_state gauge",
    ]
    for r in rows:
        for s in STATES:
            lines.append(
                f'eventstore_subscription_state{{subscription="{_esc(r["name"])}",state="{s}"}} '
                f"{int(s == r['state'])}"
            )
    return lines


async def subscription_metric_lines(services: Any) -> list[str]:
    """Every stored subscription's series (none when there are none)."""
    records = await services.store.subscriptions.all()
    if not records:
        return []
    admin = admin_of(services)
    return subscription_lines([await admin.status(r) for r in records])
