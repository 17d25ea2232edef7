"""Publishing signed checkpoints and collecting witnesses' cosignatures, off the capture path.

Targets (`PUBLISH_CHECKPOINTS`): `dir:PATH` writes `PATH/<size>` (never rewritten)
and replaces `PATH/latest` atomically; `http(s)://...` POSTs the note. Witnesses
(`WITNESSES`, c2sp.org/tlog-witness): `add-checkpoint` with `old <size>`, the
consistency proof from that size, an empty line and the note; a 409 names the
witness's own latest size, and the request is made again from there. Each returned
cosignature is verified and stored with the checkpoint.

The capturing instance only hands a checkpoint over (`offer`, never blocks); the
worker (`run`) delivers the newest one to each target, retrying failures with
back-off, and reports each target's state (`status`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import msgspec

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
    """What one target has received, and its last failure."""

    target: str
    delivered: int = 0
    failures: int = 0
    last_error: str | None = None


class DeliveryFailed(Exception):
    """This target did not take the checkpoint; it is retried (a transient failure)."""

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
    """Delivers the newest signed checkpoint to every target and witness."""

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
        self._wake = asyncio.Event()
        names = [*targets, *(w.url for w in witnesses)]
        self._status = {name: TargetStatus(target=name) for name in names}

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
            self._wake.set()

    def status(self) -> list[TargetStatus]:
        """Each target's delivered size and failures (for /v1/workers and logs)."""
        return list(self._status.values())

    async def deliver(self) -> bool:
        """One pass over every target still behind; True when all have the newest checkpoint."""
        checkpoint = self._latest
        if checkpoint is None:
            return True
        done = True
        for name in self._status:
            status = self._status[name]
            if status.delivered >= checkpoint.size:
                continue
            try:
                await self._deliver_one(name, checkpoint)
            except (DeliveryFailed, OSError, ProofError, NoteError) as exc:
                status.failures += 1
                status.last_error = str(exc)
                log.warning("checkpoint %d not delivered to %s: %s", checkpoint.size, name, exc)
                done = False
            else:
                status.delivered = checkpoint.size
                status.last_error = None
        return done

    async def wait(self, stop: asyncio.Event) -> None:
        """Until a new checkpoint is offered or `stop` is set."""
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        self._wake.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`, retrying failed targets with back-off."""
        attempt = 0
        while not stop.is_set():
            if await self.deliver():
                attempt = 0
                self._wake.clear()
                waits = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                continue
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            sleeper = asyncio.ensure_future(self.clock.sleep(delay))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stopper.cancel()

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
    """The publisher under the supervisor: a pass that leaves a target behind raises
    `DeliveryFailed`, so the supervisor shows it `retrying` (with the error) in
    /v1/workers and runs it again after its back-off; nothing is lost in between."""

    kind = PUBLISH

    def __init__(self, publisher: Publisher, origin: str) -> None:
        self.publisher = publisher
        self._name = f"publish:{origin}"

    @property
    def name(self) -> str:
        """`publish:<origin>`."""
        return self._name

    async def run(self, ctx: WorkerContext) -> None:
        """Deliver whenever a checkpoint is offered, until stopped; raise when a target fails."""
        ctx.report(RUNNING)
        while not ctx.stop.is_set():
            if not await self.publisher.deliver():
                failing = [s for s in self.publisher.status() if s.last_error]
                raise DeliveryFailed(
                    "; ".join(f"{s.target}: {s.last_error}" for s in failing) or "not delivered"
                )
            ctx.healthy()
            await self.publisher.wait(ctx.stop)

    async def progress(self) -> Progress:
        """The smallest tree size every target has."""
        delivered = [s.delivered for s in self.publisher.status()]
        return Progress(position=min(delivered) if delivered else None)

    async def close(self) -> None:
        """Nothing outlives a run."""
