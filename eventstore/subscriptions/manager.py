"""Keeps one delivery worker per stored subscription under this instance's supervisor.

A supervised worker itself (`subscriptions`): it lists the stored subscriptions
every few seconds (at once when nudged) and adds a `SubscriptionWorker` for each
one this instance does not run yet. A failed worker stays failed until restarted
(never restarted silently). The worker of a subscription no longer stored is
removed from the supervisor, whatever its state and whichever instance the
delete reached: stopped, its record and metric series gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from eventstore.awaiting import cancel_and_wait
from eventstore.ports import Clock, Store
from eventstore.subscriptions import positions
from eventstore.subscriptions.delivery import SubscriptionWorker
from eventstore.supervisor import Progress, Supervisor, WorkerContext
from eventstore.worker_state import RUNNING, STOPPED

MANAGER: Final = "subscriptions"


class SubscriptionManager:
    """Adds delivery workers for stored subscriptions (name and kind `subscriptions`)."""

    name = MANAGER
    kind = MANAGER

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        *,
        clock: Clock,
        owner: str,
        lease_seconds: float,
        secrets: Sequence[str] = (),
        every_s: float = 2.0,
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self.clock = clock
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.secrets = tuple(secrets)
        self.every_s = every_s
        self._wake = asyncio.Event()
        self.workers: dict[str, SubscriptionWorker] = {}

    def nudge(self, name: str) -> None:
        """A subscription changed: its worker looks now, and the list is read again."""
        worker = self.workers.get(name)
        if worker is not None:
            worker.nudge()
        self._wake.set()

    async def sync(self) -> None:
        """Add a worker for every stored subscription without a live one here; remove the rest."""
        records = await self.store.subscriptions.all()
        stored = {record.name for record in records}
        for name in [n for n in self.workers if n not in stored]:
            await self.supervisor.remove(self.workers.pop(name).name)
        for record in records:
            role = positions.checkpoint_name(record.name)
            supervised = self.supervisor.get(role)
            if supervised is not None and supervised.state != STOPPED:
                continue
            worker = SubscriptionWorker(
                self.store,
                record.name,
                clock=self.clock,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
                secrets=self.secrets,
            )
            self.workers[record.name] = worker
            self.supervisor.add(worker)

    async def run(self, ctx: WorkerContext) -> None:
        """Sync now and every few seconds until stopped."""
        ctx.report(RUNNING)
        while not ctx.stop.is_set():
            await self.sync()
            ctx.healthy()
            self._wake.clear()
            waits = [
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(ctx.stop.wait()),
            ]
            try:
                await asyncio.wait(waits, timeout=self.every_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait(waits)

    async def progress(self) -> Progress:
        """How many subscriptions are stored (as position)."""
        return Progress(position=len(await self.store.subscriptions.all()))

    async def close(self) -> None:
        """Nothing outlives a run."""
