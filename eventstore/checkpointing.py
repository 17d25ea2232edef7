"""Checkpoints of the log's Merkle tree, made by the capturing instance while it appends.

A checkpoint is made at most every `interval` seconds, idle or not: with each
stored batch once the interval since the last one has passed, and while capture is
idle (it polls `idle` many times an interval) as soon as it has, so the newest
events are in a checkpoint about one interval after they were stored even when
traffic stops. Light traffic goes idle after every batch: checkpointing each idle
at once would sign, store, publish and send to every witness one checkpoint per
event. A run that ends (until idle, the source's end, a stop) checkpoints its tree
at once (`idle(final=True)`), so nothing it stored waits for a next start. Each is
stored (`MerkleTree.add_checkpoint`); with a key it is signed, after the signer
state has shown that the new tree extends the last one this key signed.

While signing is refused it is tried again at most every `interval` (idle or not:
the operator may settle the signer state at any time). The refusal is logged at
ERROR when it starts or its reason changes, then once every `REMIND_SECONDS`
while it lasts; its reason names no size that grows with the log, so the capture
worker's standing problem changes only when the reason does.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from eventstore.merkle import ProofFailed, verify_consistency
from eventstore.model import Event, TreeCheckpoint
from eventstore.notes import Signer, checkpoint_text, sign_note
from eventstore.ports import Clock, EventLog, MerkleTree
from eventstore.settings import Settings, SettingsError
from eventstore.signing import SignerState, load_signer, read_state, root_b64, write_state
from eventstore.tree import Heartbeat, LogTree, consistency_proof

log = logging.getLogger(__name__)

# While signing stays refused for one reason, how often the ERROR line is repeated.
REMIND_SECONDS = 60.0

OnCheckpoint = Callable[[TreeCheckpoint], Awaitable[None]]
OnRefused = Callable[[str | None], None]
"""Told why signing is refused, and None once a checkpoint is signed again."""


class SigningRefused(Exception):
    """The tree does not extend the last signed checkpoint: the log was rolled back or forked."""


class Checkpointer:
    """Extends the tree with each stored batch and makes (signed) checkpoints."""

    def __init__(
        self,
        tree: LogTree,
        *,
        origin: str,
        clock: Clock,
        interval: float = 1.0,
        signer: Signer | None = None,
        state_path: str | None = None,
        on_checkpoint: OnCheckpoint | None = None,
    ) -> None:
        if signer is not None and state_path is None:
            raise ValueError("a signer needs a signer state file")
        self.tree = tree
        self.origin = origin
        self.clock = clock
        self.interval = interval
        self.signer = signer
        self.state_path = state_path
        self.on_checkpoint = on_checkpoint
        self._last_at: datetime | None = None
        self._last_size: int | None = None
        self.refused: str | None = None  # why the last signing was refused, if it was
        self._logged_at: datetime | None = None  # when the refusal was last logged
        # Told when signing starts being refused and when it is over (the capture worker).
        self.on_refused: OnRefused | None = None

    @property
    def merkle(self) -> MerkleTree:
        """The stored tree."""
        return self.tree.merkle

    async def open(self, heartbeat: Heartbeat | None = None) -> None:
        """Load (or build) the tree; remember the latest stored checkpoint's size."""
        await self.tree.open(heartbeat)
        latest = await self.merkle.checkpoint()
        self._last_size = latest.size if latest else None

    async def after_batch(self, events: Sequence[Event]) -> None:
        """Add a stored batch to the tree; checkpoint when the interval has passed.

        Never fails capture: the batch is stored already, and a tree that fell
        behind is caught up from the log with the next batch.
        """
        try:
            await self.tree.extend(events)
            now = self.clock.now()
            if self._last_at is None or (now - self._last_at).total_seconds() >= self.interval:
                await self.make()
        except Exception as exc:  # the tree is rebuilt from the log: capture goes on
            self._failed(exc)

    async def idle(self, *, final: bool = False) -> None:
        """Capture has nothing pending: checkpoint the tree once the interval has passed.

        Capture polls this many times an interval while idle, so a tree that is not
        checkpointed yet is checkpointed about one interval after the last checkpoint
        at the latest. `final`: the run ends here (until idle, the source ended,
        stopped): checkpoint now, whatever the interval, except while signing is
        refused (tried again once every `interval`, never more often).
        """
        due = (
            self._last_at is None
            or (self.clock.now() - self._last_at).total_seconds() >= self.interval
        )
        if not due and (self.refused is not None or not final):
            return
        try:
            await self.tree.ensure_open()
            if self.tree.size != self._last_size and self.tree.size > 0:
                await self.make()
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, SigningRefused):
            now = self.clock.now()
            new = str(exc) != self.refused
            self._refusal(str(exc))
            if new or self._logged_at is None:
                log.error("checkpoint not signed: %s", exc)
                self._logged_at = now
            elif (now - self._logged_at).total_seconds() >= REMIND_SECONDS:
                log.error(
                    "checkpoint still not signed (tree of %d events): %s", self.tree.size, exc
                )
                self._logged_at = now
        else:
            self.tree.reset()
            log.warning("Merkle tree not extended (caught up with the next batch): %r", exc)

    def _refusal(self, reason: str | None) -> None:
        if reason == self.refused:
            return
        self.refused = reason
        if self.on_refused is not None:
            self.on_refused(reason)

    async def make(self) -> TreeCheckpoint | None:
        """Make, sign (with a key), store and hand on a checkpoint of the current tree."""
        size, root = self.tree.size, self.tree.root()
        self._last_at = self.clock.now()
        if size == 0 or size == self._last_size:
            return None
        text = checkpoint_text(self.origin, size, root)
        note = text
        if self.signer is not None:
            await self._check_extends(size, root)
            note = sign_note(text, self.signer)
            assert self.state_path is not None
            # Remembered before the checkpoint is stored: a crash in between leaves a
            # state the next, larger tree still extends.
            state = SignerState(origin=self.origin, size=size, root=root_b64(root))
            try:
                write_state(self.state_path, state)  # one pwrite + fdatasync (about 1 ms)
            except (OSError, SettingsError) as exc:  # no durable state: no signature
                raise SigningRefused(
                    f"the signer state {self.state_path} cannot be written ({exc});"
                    " refusing to sign"
                ) from exc
        checkpoint = TreeCheckpoint(
            size=size,
            root=root_b64(root),
            note=note,
            signed=self.signer is not None,
            created_at=self._last_at,
        )
        await self.merkle.add_checkpoint(checkpoint)
        self._last_size = size
        if self.signer is not None:
            self._refusal(None)  # this tree extends the signed one again
        log.debug("checkpoint %d %s", size, checkpoint.root)
        if self.on_checkpoint is not None:
            await self.on_checkpoint(checkpoint)
        return checkpoint

    async def _check_extends(self, size: int, root: bytes) -> None:
        assert self.state_path is not None
        try:
            state = read_state(self.state_path)
        except (OSError, SettingsError) as exc:  # unreadable or spoiled: what was signed is unknown
            raise SigningRefused(
                f"the signer state {self.state_path} cannot be read ({exc}); refusing to sign"
            ) from exc
        if state is None:
            return
        if state.origin != self.origin:
            raise SigningRefused(
                f"the signer state {self.state_path} belongs to log {state.origin!r},"
                f" not {self.origin!r}"
            )
        last_root = base64.b64decode(state.root)
        if size < state.size:
            raise SigningRefused(
                f"this key signed a tree of {state.size} events and the log now has fewer:"
                " the log was rolled back; refusing to sign"
            )
        try:
            proof = (
                [] if size == state.size else await consistency_proof(self.merkle, state.size, size)
            )
            verify_consistency(state.size, size, last_root, root, proof)
        except (ProofFailed, ValueError) as exc:
            raise SigningRefused(
                f"the log does not extend the tree of {state.size} events this key signed"
                f" ({exc}): the log was rewritten; refusing to sign"
            ) from exc


def checkpointer_for(
    store_merkle: MerkleTree,
    events: EventLog,
    settings: Settings,
    clock: Clock,
    *,
    on_checkpoint: OnCheckpoint | None = None,
) -> Checkpointer:
    """The checkpointer the settings ask for (SettingsError for an unusable key file)."""
    signer = load_signer(settings.signing_key) if settings.signing_key else None
    return Checkpointer(
        LogTree(store_merkle, events),
        origin=settings.origin,
        clock=clock,
        interval=settings.checkpoint_interval,
        signer=signer,
        state_path=settings.signer_state_path,
        on_checkpoint=on_checkpoint,
    )
