"""Keeps one delivery worker per stored subscription under this instance's supervisor.

A supervised worker itself (`subscriptions`): it lists the stored subscriptions
every few seconds (at once when nudged) and adds a `SubscriptionWorker` for each
one this instance does not run yet. A failed worker stays failed until restarted
or until its subscription's configuration changes (an update that may fix it:
started again at once, with a log line); it is never restarted silently with
the configuration it failed with. The worker of a subscription no longer stored
is removed from the supervisor, whatever its state and whichever instance the
delete reached: stopped, its record and metric series gone. A worker's change of
state is written to the `Workers` port at once (not only at the supervisor's next
publication), so the status of a subscription is current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Final

from eventstore.awaiting import cancel_and_wait
from eventstore.failures import describe
from eventstore.ports import Clock, Store
from eventstore.subscriptions import positions
from eventstore.subscriptions.delivery import SubscriptionWorker
from eventstore.supervisor import Progress, Supervisor, WorkerContext
from eventstore.worker_state import FAILED, RUNNING, STOPPED

MANAGER: Final = "subscriptions"
log = logging.getLogger("eventstore.subscriptions")


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
        self._publishing: asyncio.Task[None] | None = None
        self._publish_again = False

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
            if supervised is not None and supervised.state == FAILED:
                await self._restart_if_changed(record.name, record.config)
                continue
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
            worker.on_state = self.publish_soon
            self.workers[record.name] = worker
            self.supervisor.add(worker)
            self.publish_soon()

    async def _restart_if_changed(self, name: str, config: dict[str, object]) -> None:
        """Start a failed worker again when its configuration changed since it failed."""
        worker = self.workers.get(name)
        if worker is None or worker.ran_config is None or worker.ran_config == config:
            return
        role = positions.checkpoint_name(name)
        try:
            await self.supervisor.restart(role)
        except (KeyError, ValueError):
            return  # gone, running already, or the supervisor is stopping
        log.info("subscription %s: its configuration changed, its failed worker starts again", name)
        self.publish_soon()

    def publish_soon(self) -> None:
        """Write this instance's worker states to the store soon (one write at a time)."""
        if self.supervisor.stopping.is_set():
            return  # a stopping instance removes its records: none written after
        if self._publishing is not None and not self._publishing.done():
            self._publish_again = True
            return
        self._publishing = asyncio.ensure_future(self._publish())

    async def _publish(self) -> None:
        while True:
            self._publish_again = False
            await asyncio.sleep(0)  # let the supervisor record the state first
            try:
                await self.supervisor.publish()
            except Exception as exc:  # the next publication of the supervisor tries again
                log.debug("worker states not recorded now: %s", describe(exc, self.secrets))
            if not self._publish_again:
                return

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
        """Nothing outlives a run (a publication under way ends)."""
        if self._publishing is not None:
            with contextlib.suppress(Exception):
                await cancel_and_wait([self._publishing])
            self._publishing = None
