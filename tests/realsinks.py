"""Real components for subscription tests: a `redis-server` process and a webhook receiver.

The Redis server is Debian's `redis-server`, started on a free port in a temporary
directory and stopped after. Without it a local run skips with a message; with `CI`
set the tests fail instead (CI installs it, see .ci/run).

The receiver is an HTTP/1.1 server on loopback that verifies every delivery with
the PyPI package `standardwebhooks` (an independent implementation of the
signature scheme), records what it received, and can be told to fail, hang,
refuse connections, answer 410, or 429 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_path() -> str:
    """`redis-server`'s path; skips (fails when CI is set) when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the Redis tests must run: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


class RedisServer:
    """One `redis-server` process on a free port, its data in `directory`."""

    def __init__(self, directory: Path, *, durable: bool = False) -> None:
        self.binary = redis_server_path()
        self.directory = directory
        self.durable = durable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (what a crash does)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process ends, even without its teardown (a
    mutation run's watchdog ends with `os._exit`, which left servers running)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()

# What the receiver answers a request: (status, headers), or None to hang until the client gives up.
Rule = Callable[[dict[str, Any]], tuple[int, dict[str, str]] | None]


class Receiver:
    """A webhook receiver on loopback that verifies every delivery with `standardwebhooks`."""

    def __init__(self, secret: str = SECRET) -> None:
        self.webhook = Webhook(secret)
        self.port = free_port()
        self.ids: list[str] = []  # webhook-id of each accepted (2xx) delivery, in arrival order
        self.attempts: list[str] = []  # webhook-id of every request that verified
        self.bodies: list[dict[str, Any]] = []  # the accepted payloads
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.invalid = 0  # requests whose signature did not verify
        # Seconds each verified request waits before its answer (or a function of its payload).
        self.delay: float | Callable[[dict[str, Any]], float] = 0.0
        self.rule: Rule = lambda payload: (200, {})
        self.open_ids: set[str] = set()  # verified requests not answered yet
        self.overlaps: list[frozenset[str]] = []  # open_ids as each verified request arrived
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()  # connections kept alive by clients

    @property
    def url(self) -> str:
        """The receiver's URL."""
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        """Listen (again, on the same port)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Stop listening and drop open connections: connections are refused from now on."""
        for writer in list(self._open):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                _, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, extra = await self._answer(path, headers, body)
                head = f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write((head + "\r\n").encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._open.discard(writer)
            writer.close()

    async def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str]]:
        try:
            payload = self.webhook.verify(body, headers)
        except WebhookVerificationError:
            self.invalid += 1
            return 400, {}
        self.attempts.append(headers["webhook-id"])
        delay = self.delay(json.loads(body)) if callable(self.delay) else self.delay
        self.open_ids.add(headers["webhook-id"])
        self.overlaps.append(frozenset(self.open_ids))
        try:
            if delay:
                await asyncio.sleep(delay)
        finally:
            self.open_ids.discard(headers["webhook-id"])
        answer = self.rule(payload)
        if answer is None:
            await asyncio.sleep(3600)  # hang: the client's timeout ends it
            return 500, {}
        status, extra = answer
        if 200 <= status < 300:
            self.ids.append(headers["webhook-id"])
            self.bodies.append(payload)
            self.headers.append(headers)
            self.paths.append(path)
        return status, extra


def entity_of(payload: dict[str, Any]) -> str:
    """The entity key of a delivered payload."""
    return str(payload["data"]["entity_key"])


def seqs_by_entity(bodies: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The delivered seqs of each entity, in arrival order."""
    out: dict[str, list[int]] = {}
    for b in bodies:
        out.setdefault(entity_of(b), []).append(int(b["data"]["seq"]))
    return out


def dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))
