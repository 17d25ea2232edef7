"""Publishing signed checkpoints and collecting witnesses' cosignatures, off the capture path.

Targets (`PUBLISH_CHECKPOINTS`): `dir:PATH` writes `PATH/<size>` (never rewritten)
and replaces `PATH/latest` atomically; `http(s)://...` POSTs the note. Witnesses
(`WITNESSES`, c2sp.org/tlog-witness): `add-checkpoint` with `old <size>`, the
consistency proof from that size, an empty line and the note; a 409 names the
witness's own latest size, and the request is made again from there. Each returned
cosignature is verified and stored with the checkpoint.

The capturing instance only hands a checkpoint over (`offer`, never blocks); the
worker (`run`) delivers the newest one to each target, and reports each target's
state (`status`). Each target has a delivery loop of its own: a failing one is
retried on its own back-off (`BACKOFF`, a new checkpoint does not cut it short)
and never holds up the others, so a healthy witness cosigns every checkpoint at
once while another refuses, times out or answers nonsense. The supervised worker
stays `running` and shows the failing targets as its standing problem.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import msgspec

from eventstore.awaiting import cancel_and_wait
from eventstore.failures import describe
from eventstore.merkle import ProofError
from eventstore.model import TreeCheckpoint
from eventstore.notes import NoteError, Verifier, split_note, verify_cosignature
from eventstore.ports import Clock, MerkleTree
from eventstore.settings import Settings
from eventstore.supervisor import Progress, WorkerContext
from eventstore.tree import consistency_proof
from eventstore.worker_state import RUNNING

log = logging.getLogger(__name__)

Post = Callable[[str, bytes, str], Awaitable[tuple[int, bytes]]]
"""POST (url, body, content type) -> (status, body)."""

BACKOFF: Final = (1.0, 5.0, 30.0, 120.0, 600.0)


class TargetStatus(msgspec.Struct, kw_only=True):
    """What one target has received, and its failures (`failing`: in a row, now)."""

    target: str
    delivered: int = 0
    failures: int = 0
    failing: int = 0
    last_error: str | None = None
    retry_at: datetime | None = None  # while failing: when it is tried again


class _Target:
    """One target's delivery: its status and the event that wakes its loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = TargetStatus(target=name)
        self.wake = asyncio.Event()

    def behind(self, checkpoint: TreeCheckpoint | None) -> bool:
        return checkpoint is not None and self.status.delivered < checkpoint.size

    def wait(self, now: datetime) -> float:
        """Seconds left of its back-off (0: due)."""
        at = self.status.retry_at
        return 0.0 if at is None else max((at - now).total_seconds(), 0.0)


class DeliveryFailed(Exception):
    """This target did not take the checkpoint; it alone is retried after its back-off."""

    transient = True


def write_to_dir(path: Path, checkpoint: TreeCheckpoint, note: str) -> None:
    """`PATH/<size>` once (never rewritten), then `PATH/latest` replaced atomically."""
    path.mkdir(parents=True, exist_ok=True)
    by_size = path / str(checkpoint.size)
    try:
        fd = os.open(by_size, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(note)
    tmp = path / ".latest.tmp"
    tmp.write_text(note, encoding="utf-8")
    os.replace(tmp, path / "latest")


class Witness:
    """One tlog-witness: its URL, key, and the last size it cosigned for us."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.verifier = Verifier.parse(key)
        self.size = 0


class Publisher:
    """Delivers the newest signed checkpoint to every target and witness, each on its own."""

    def __init__(
        self,
        merkle: MerkleTree,
        *,
        targets: tuple[str, ...],
        witnesses: list[Witness],
        post: Post,
        clock: Clock,
    ) -> None:
        self.merkle = merkle
        self.targets = targets
        self.witnesses = witnesses
        self.post = post
        self.clock = clock
        self._latest: TreeCheckpoint | None = None
        names = [*targets, *(w.url for w in witnesses)]
        self._targets = {name: _Target(name) for name in names}
        # Told after each attempt (the worker: its standing problem, its back-off reset).
        self.on_attempt: Callable[[TargetStatus], None] | None = None

    @classmethod
    def from_settings(
        cls, merkle: MerkleTree, settings: Settings, *, post: Post, clock: Clock
    ) -> Publisher | None:
        """The publisher the settings ask for, or None when they name no target."""
        if not settings.publish_checkpoints and not settings.witnesses:
            return None
        witnesses = [Witness(w.url, w.key) for w in settings.witnesses]
        return cls(
            merkle,
            targets=settings.publish_checkpoints,
            witnesses=witnesses,
            post=post,
            clock=clock,
        )

    async def offer(self, checkpoint: TreeCheckpoint) -> None:
        """Hand over a new checkpoint (returns at once; unsigned ones are not published)."""
        if checkpoint.signed and (self._latest is None or checkpoint.size > self._latest.size):
            self._latest = checkpoint
            for target in self._targets.values():
                target.wake.set()

    def status(self) -> list[TargetStatus]:
        """Each target's delivered size and failures (for /v1/workers, /metrics and logs)."""
        return [t.status for t in self._targets.values()]

    def failing(self) -> list[TargetStatus]:
        """The targets whose last attempt failed."""
        return [t.status for t in self._targets.values() if t.status.failing]

    async def deliver(self) -> bool:
        """One pass, all at once, over the targets behind and out of back-off.

        True when every target has the newest checkpoint.
        """
        checkpoint = self._latest
        if checkpoint is None:
            return True
        now = self.clock.now()
        due = [t for t in self._targets.values() if t.behind(checkpoint) and not t.wait(now)]
        outcomes = await asyncio.gather(
            *(self._attempt(t, checkpoint) for t in due), return_exceptions=True
        )
        for outcome in outcomes:  # all have ended: raise a failure of no target's (the store)
            if isinstance(outcome, BaseException):
                raise outcome
        return not any(t.behind(checkpoint) for t in self._targets.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`: one loop a target, each retried on its own back-off.

        A failure no target can be blamed for (the store does not answer, a bug) ends
        every loop and is raised: the supervisor runs the worker again or stops it.
        """
        loops = [asyncio.ensure_future(self._follow(t, stop)) for t in self._targets.values()]
        if not loops:
            await stop.wait()
            return
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            await cancel_and_wait(loops)
        for loop in done:
            loop.result()  # raises the first failure

    async def _follow(self, target: _Target, stop: asyncio.Event) -> None:
        """One target: the newest checkpoint whenever it is behind and out of back-off."""
        while not stop.is_set():
            target.wake.clear()  # before reading `_latest`: an offer meanwhile wakes it
            checkpoint = self._latest
            if checkpoint is None or not target.behind(checkpoint):
                await self._until(stop, target.wake.wait())
                continue
            delay = target.wait(self.clock.now())
            if delay > 0:  # a new checkpoint does not cut a back-off short
                await self._until(stop, self.clock.sleep(delay))
                continue
            await self._attempt(target, checkpoint)

    @staticmethod
    async def _until(stop: asyncio.Event, waiting: Awaitable[object]) -> None:
        helpers = [asyncio.ensure_future(waiting), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(helpers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(helpers)

    async def _attempt(self, target: _Target, checkpoint: TreeCheckpoint) -> None:
        """Deliver to one target; a failure puts that target (alone) in back-off."""
        status = target.status
        try:
            await self._deliver_one(target.name, checkpoint)
        except (DeliveryFailed, OSError, ProofError, NoteError) as exc:
            status.failures += 1
            status.failing += 1
            status.last_error = describe(exc)
            delay = BACKOFF[min(status.failing, len(BACKOFF)) - 1]
            status.retry_at = self.clock.now() + timedelta(seconds=delay)
            log.warning(
                "checkpoint %d not delivered to %s (failure %d in a row, next try in %gs): %s",
                checkpoint.size,
                shown_target(target.name),
                status.failing,
                delay,
                status.last_error,
            )
        else:
            status.delivered = max(status.delivered, checkpoint.size)
            status.failing = 0
            status.last_error = None
            status.retry_at = None
        if self.on_attempt is not None:
            self.on_attempt(status)

    async def _deliver_one(self, name: str, checkpoint: TreeCheckpoint) -> None:
        if name.startswith("dir:"):
            await asyncio.to_thread(write_to_dir, Path(name[4:]), checkpoint, checkpoint.note)
            return
        witness = next((w for w in self.witnesses if w.url == name), None)
        if witness is None:
            status, _ = await self.post(name, checkpoint.note.encode(), "text/plain; charset=utf-8")
            if not 200 <= status < 300:
                raise DeliveryFailed(f"POST answered {status}")
            return
        await self._witness(witness, checkpoint)

    async def _witness(self, witness: Witness, checkpoint: TreeCheckpoint) -> None:
        for _ in range(2):  # a 409 tells the witness's size: one more try from there
            old = witness.size
            proof = (
                []
                if old in (0, checkpoint.size)
                else await consistency_proof(self.merkle, old, checkpoint.size)
            )
            body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof)
            body += "\n" + checkpoint.note
            status, answer = await self.post(
                witness.url, body.encode(), "text/plain; charset=utf-8"
            )
            if status == 409:
                try:
                    witness.size = int(answer.decode().strip())
                except ValueError as exc:
                    raise DeliveryFailed("the witness's 409 does not name its size") from exc
                continue
            if status != 200:
                raise DeliveryFailed(f"the witness answered {status}: {answer[:200]!r}")
            text, _ = split_note(checkpoint.note)
            lines = [line for line in answer.decode().splitlines() if line.strip()]
            good = 0
            for line in lines:
                try:
                    verify_cosignature(text, line, witness.verifier)
                except NoteError:
                    continue
                await self.merkle.add_cosignature(checkpoint.size, line + "\n")
                good += 1
            if not good:
                raise DeliveryFailed("the witness answered no valid cosignature")
            witness.size = checkpoint.size
            return
        raise DeliveryFailed("the witness keeps naming another size")


async def http_post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """POST with the standard library (in a thread; 15 s timeout; redirects are failures)."""
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(_NoRedirect)

    def send() -> tuple[int, bytes]:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with opener.open(request, timeout=15) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryFailed(f"{url}: {exc}") from exc

    return await asyncio.to_thread(send)


PUBLISH: Final = "publish"


class PublisherWorker:
    """The publisher under the supervisor: `running` while it delivers, each target on its own.

    A failing target is the worker's standing problem (`last_error` in /v1/workers names
    each failing target and its error, `eventstore_worker_problem` reads 1) until it takes
    a checkpoint again; the other targets are served meanwhile. A failure no target can be
    blamed for (the store) is raised: the supervisor shows `retrying` and runs it again.
    """

    kind = PUBLISH

    def __init__(self, publisher: Publisher, origin: str) -> None:
        self.publisher = publisher
        self._name = f"publish:{origin}"

    @property
    def name(self) -> str:
        """`publish:<origin>`."""
        return self._name

    async def run(self, ctx: WorkerContext) -> None:
        """Deliver whenever a checkpoint is offered, until stopped."""
        ctx.report(RUNNING)

        def attempted(status: TargetStatus) -> None:
            if not status.failing:
                ctx.healthy()
            ctx.problem(problem_of(self.publisher.failing()))

        self.publisher.on_attempt = attempted
        ctx.problem(problem_of(self.publisher.failing()))  # as the last run left them
        try:
            await self.publisher.run(ctx.stop)
        finally:
            self.publisher.on_attempt = None

    async def progress(self) -> Progress:
        """The smallest tree size every target has."""
        delivered = [s.delivered for s in self.publisher.status()]
        return Progress(position=min(delivered) if delivered else None)

    async def close(self) -> None:
        """Nothing outlives a run."""


def problem_of(failing: list[TargetStatus]) -> str | None:
    """The standing problem of the failing targets (None: none): each named with its error."""
    if not failing:
        return None
    return "; ".join(
        f"checkpoint not delivered to {shown_target(s.target)}: {s.last_error}" for s in failing
    )


def shown_target(target: str) -> str:
    """A target as shown (errors, metrics): a URL's `user:password@` removed."""
    return re.sub(r"(//)[^/@\s]+@", r"\1***@", target)
