"""The subscription operations as the API reaches them (one place for routes and metrics)."""

from __future__ import annotations

from typing import Any

from eventstore.subscriptions.control import SubscriptionAdmin
from eventstore.subscriptions.manager import MANAGER, SubscriptionManager


def admin_of(services: Any) -> SubscriptionAdmin:
    """The subscription operations over the app's store (nudging this instance's workers)."""
    supervised = services.supervisor.get(MANAGER)
    worker = supervised.worker if supervised is not None else None
    nudge = worker.nudge if isinstance(worker, SubscriptionManager) else None
    return SubscriptionAdmin(
        services.store,
        clock=services.clock,
        owner=services.supervisor.instance,
        lease_seconds=services.settings.lease_seconds,
        nudge=nudge,
    )
