"""A fault-injecting store: any port operation raises planned (real PyMongo) exceptions.

`faults.plan("events.append", NotPrimaryError(...))` makes the next `events.append`
raise it; `after=True` lets the write happen first and then raises (the reply was
lost: the write landed but the caller cannot know). Calls are counted per operation.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from pymongo.errors import NotPrimaryError

from eventstore.ports import (
    AdminActions,
    Checkpoints,
    Deliveries,
    Erasures,
    EventLog,
    Jobs,
    Leases,
    MerkleTree,
    ReadModels,
    Snapshots,
    Store,
    Subscriptions,
)
from eventstore.ports import Workers as WorkerStates


def not_primary() -> NotPrimaryError:
    """What the driver raises for a `NotWritablePrimary` (10107) reply to a write."""
    return NotPrimaryError(
        "not primary", {"ok": 0, "code": 10107, "codeName": "NotWritablePrimary"}
    )


@dataclass
class Fault:
    """One planned failure of an operation."""

    exc: BaseException
    after: bool = False
    when: Callable[[tuple[Any, ...]], bool] | None = None


@dataclass
class Faults:
    """Planned failures by operation (`events.append`, `read_models.write`, ...), in order."""

    planned: dict[str, list[Fault]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    # An operation waits on its gate (when set) before running: the test holds it there.
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def plan(
        self,
        op: str,
        *excs: BaseException,
        after: bool = False,
        when: Callable[[tuple[Any, ...]], bool] | None = None,
    ) -> None:
        """The next calls of `op` (matching `when`, given the call's arguments) raise these."""
        self.planned.setdefault(op, []).extend(Fault(e, after, when) for e in excs)

    def pending(self, op: str) -> int:
        """How many planned failures of `op` have not happened yet."""
        return len(self.planned.get(op, []))

    def next_fault(self, op: str, args: tuple[Any, ...]) -> Fault | None:
        queue = self.planned.get(op)
        if queue and (queue[0].when is None or queue[0].when(args)):
            return queue.pop(0)
        return None


class _Faulty:
    """Wraps one adapter: its coroutine methods consult `faults` first."""

    def __init__(self, inner: Any, prefix: str, faults: Faults) -> None:
        self._inner = inner
        self._prefix = prefix
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        op = f"{self._prefix}.{name}"
        faults = self._faults

        async def call(*args: Any, **kwargs: Any) -> Any:
            faults.calls[op] += 1
            gate = faults.gates.get(op)
            if gate is not None:
                await gate.wait()
            fault = faults.next_fault(op, args)
            if fault is not None and not fault.after:
                faults.raised[op] += 1
                raise fault.exc
            result = await attr(*args, **kwargs)
            if fault is not None:
                faults.raised[op] += 1
                raise fault.exc
            return result

        return call


class FaultyStore:
    """A `Store` whose every port goes through `faults` (transactions as the inner store's)."""

    def __init__(self, inner: Store, faults: Faults | None = None) -> None:
        self.inner = inner
        self.faults = faults or Faults()
        f = self.faults
        self.events = cast(EventLog, _Faulty(inner.events, "events", f))
        self.checkpoints = cast(Checkpoints, _Faulty(inner.checkpoints, "checkpoints", f))
        self.leases = cast(Leases, _Faulty(inner.leases, "leases", f))
        self.snapshots = cast(Snapshots, _Faulty(inner.snapshots, "snapshots", f))
        self.read_models = cast(ReadModels, _Faulty(inner.read_models, "read_models", f))
        self.jobs = cast(Jobs, _Faulty(inner.jobs, "jobs", f))
        self.workers = cast(WorkerStates, _Faulty(inner.workers, "workers", f))
        self.subscriptions = cast(Subscriptions, _Faulty(inner.subscriptions, "subscriptions", f))
        self.deliveries = cast(Deliveries, _Faulty(inner.deliveries, "deliveries", f))
        self.admin_actions = cast(AdminActions, _Faulty(inner.admin_actions, "admin_actions", f))
        self.merkle = cast(MerkleTree, _Faulty(inner.merkle, "merkle", f))
        self.erasures = cast(Erasures, _Faulty(inner.erasures, "erasures", f))

    @property
    def transactions(self) -> bool:
        """As the inner store."""
        return self.inner.transactions

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """The inner store's transaction."""
        async with self.inner.transaction() as session:
            yield session

    async def close(self) -> None:
        """Close the inner store."""
        await self.inner.close()
