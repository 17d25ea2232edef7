"""The log's Merkle tree kept in the store, and proofs read from it (one query each).

Leaf `i` is the event with `seq = i + 1`, leaf input the 32 bytes of its `hash`.
The capturing instance extends the tree after each stored batch (`LogTree.extend`),
outside the batch's transaction. Invariant: the stored tree is a prefix of the log's
tree: nodes are written only for stored events, the stored size only after the nodes
it covers. A tree behind the log (written before this existed, a failed tree write,
a crash between the batch and its nodes or between the nodes and the size) is caught
up from the log's events: by the next batch, or on `open` at start-up, in pages,
with progress. A tree ahead of the log (the log lost events: restored, rolled back)
is cut back to the log on `open`, and a damaged one (a node missing) rebuilt from it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from eventstore.merkle import (
    EMPTY_ROOT,
    Frontier,
    NodeId,
    ProofError,
    consistency_plan,
    fold_range,
    inclusion_plan,
    leaf_hash,
    range_nodes,
)
from eventstore.model import Event
from eventstore.ports import EventLog, MerkleTree

log = logging.getLogger(__name__)

Heartbeat = Callable[[], Awaitable[None]]
Progress = Callable[[int, int], None]
"""Called with (tree size, log size) while a tree is being built from the log."""


def event_leaf(event: Event) -> bytes:
    """The leaf hash of an event: SHA-256(0x00 || bytes of its `hash`)."""
    return leaf_hash(bytes.fromhex(event.hash))


class LogTree:
    """The writer's side: a frontier over the stored tree, extended as the log grows."""

    def __init__(
        self,
        merkle: MerkleTree,
        events: EventLog,
        *,
        page: int = 5000,
        progress: Progress | None = None,
    ) -> None:
        self.merkle = merkle
        self.events = events
        self.page = page
        self.progress = progress
        self._frontier: Frontier | None = None

    @property
    def size(self) -> int:
        """Leaves in the tree (0 before `open`)."""
        return self._frontier.size if self._frontier else 0

    def root(self) -> bytes:
        """The current root."""
        return self._frontier.root() if self._frontier else EMPTY_ROOT

    async def open(self, heartbeat: Heartbeat | None = None) -> int:
        """Load the frontier from the store, then catch up with the log; returns the size.

        `heartbeat` is awaited after each page of a long build (the ingester keeps its
        lease with it).
        """
        size = await self.merkle.size()
        head = (await self.events.head()).seq  # read after the size: never behind it honestly
        if size > head:
            # The log lost events the tree held (restored from a backup, rolled back) and
            # may have gone on with others: the tree keeps only the prefix whose leaves
            # are the log's events, and follows the log from there. Signing the smaller
            # tree is then refused by the signer state, loudly: what was signed is gone.
            agree = await self._agreeing_prefix(head, heartbeat)
            log.error(
                "the stored Merkle tree has %d events but the log only %d: cutting the tree"
                " back to the %d events it shares with the log",
                size,
                head,
                agree,
            )
            await self.merkle.truncate(agree)
            size = agree
        nodes = await self.merkle.get_nodes(Frontier.ids(size))
        try:
            self._frontier = Frontier.from_store(size, nodes)
        except KeyError as exc:  # a damaged tree (or a cut interrupted): rebuilt from the log
            log.error(
                "the stored Merkle tree of %d events lacks node %s: rebuilding it from the log",
                size,
                exc,
            )
            await self.merkle.truncate(0)
            self._frontier = Frontier()
        await self.catch_up(heartbeat)
        return self.size

    async def _agreeing_prefix(self, upto: int, heartbeat: Heartbeat | None) -> int:
        """How many of the first `upto` stored leaves are the leaves of the log's events."""
        agreed = 0
        while agreed < upto:
            events = await self.events.read(after_seq=agreed, limit=min(self.page, upto - agreed))
            if not events:
                break
            stored = await self.merkle.get_nodes([(0, e.seq - 1) for e in events])
            for event in events:
                if event.seq != agreed + 1 or stored.get((0, event.seq - 1)) != event_leaf(event):
                    return agreed
                agreed = event.seq
            if heartbeat is not None:
                await heartbeat()
        return agreed

    def reset(self) -> None:
        """Forget the frontier: the next use reloads it from the store and catches up."""
        self._frontier = None

    async def catch_up(self, heartbeat: Heartbeat | None = None) -> None:
        """Add every stored event the tree lacks, a page at a time."""
        frontier = await self._require()
        target = (await self.events.head()).seq
        if frontier.size >= target:
            return
        start = frontier.size
        log.info("building the Merkle tree: %d of %d events", start, target)
        while frontier.size < target:
            batch = await self.events.read(after_seq=frontier.size, limit=self.page)
            if not batch:
                break
            await self._add(batch)
            if self.progress is not None:
                self.progress(frontier.size, target)
            if heartbeat is not None:
                await heartbeat()
            log.info("building the Merkle tree: %d of %d events", frontier.size, target)
        log.info("Merkle tree built: %d events added, size %d", frontier.size - start, target)

    async def extend(self, events: Sequence[Event]) -> None:
        """Add a stored batch (in seq order); catches up from the log if the batch skips ahead."""
        frontier = await self._require()
        size = frontier.size
        if not events or events[-1].seq <= size:
            return
        if events[0].seq <= size:
            events = [e for e in events if e.seq > size]
        if events[0].seq != size + 1:
            await self.catch_up()
            return
        await self._add(events)

    async def _add(self, events: Sequence[Event]) -> None:
        frontier = await self._require()
        start = frontier.size + 1
        # The leaves must be the next seqs, densely: one C-level comparison per batch.
        if [e.seq for e in events] != list(range(start, start + len(events))):
            raise ValueError(f"the batch does not continue the tree of size {frontier.size}")
        sha256, zero, fromhex = hashlib.sha256, b"\x00", bytes.fromhex
        created = frontier.extend([sha256(zero + fromhex(e.hash)).digest() for e in events])
        # Nodes first, then the size that covers them (the port's invariant). A failed
        # write leaves the frontier ahead of the store: forget it, reload next time.
        try:
            await self.merkle.put_nodes(created, size=frontier.size)
        except BaseException:
            self.reset()
            raise

    async def ensure_open(self) -> None:
        """Open the tree unless it is open."""
        await self._require()

    async def _require(self) -> Frontier:
        if self._frontier is None:
            await self.open()
        assert self._frontier is not None
        return self._frontier


async def _fetch(merkle: MerkleTree, size: int, ids: set[NodeId]) -> dict[NodeId, bytes]:
    """The nodes, in one query; a tree of `size` not (yet) stored lacks some of them.

    Nodes are only ever written for stored events, so when all are present the
    tree of `size` is the log's own.
    """
    nodes = await merkle.get_nodes(ids)
    if len(nodes) != len(ids):
        raise ProofError(f"tree size {size} is beyond the stored tree", argument="size")
    return nodes


async def root_at(merkle: MerkleTree, size: int) -> bytes:
    """The root of the tree of `size` leaves, from stored nodes."""
    if size < 0:
        raise ProofError("a tree size is not negative", argument="size")
    if size == 0:
        return EMPTY_ROOT
    ids = range_nodes(0, size)
    nodes = await _fetch(merkle, size, set(ids))
    return fold_range([nodes[i] for i in ids])


async def inclusion_proof(merkle: MerkleTree, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf `index` in the tree of `size`, from one node query."""
    plan = inclusion_plan(index, size)
    return plan.assemble(await _fetch(merkle, size, plan.node_ids()))


async def consistency_proof(merkle: MerkleTree, first: int, second: int) -> list[bytes]:
    """RFC 9162 consistency proof between sizes `first` and `second`, from one node query."""
    plan = consistency_plan(first, second)
    return plan.assemble(await _fetch(merkle, second, plan.node_ids()))


async def leaf_and_inclusion(
    merkle: MerkleTree, index: int, size: int
) -> tuple[bytes, list[bytes]]:
    """The stored leaf hash of `index` and its inclusion proof in tree `size`: one node query."""
    plan = inclusion_plan(index, size)
    ids = plan.node_ids() | {(0, index)}
    nodes = await _fetch(merkle, size, ids)
    return nodes[(0, index)], plan.assemble(nodes)
