"""Subscriptions as a user runs them: `EVENTSTORE_SUBSCRIPTIONS=FILE` applied at start, the
deliveries reaching a real receiver, a bad file one line and exit 1, no secret in any output.

`eventstore run` is a real process over an ndjson source. `eventstore subscriptions run`
is a delivery-only process: over `memory://` its own log is empty (the log lives in a
process's memory; sharing one needs MongoDB), so it is run as a process for its start
and stop, and through `main` (the console script's function, argv, environment, signal
handling and all) over a pre-populated store for its deliveries.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstore.cli.main import main
from eventstore.memory.store import MemoryStore
from eventstore.subscriptions.positions import checkpoint_name
from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, clean_env, free_port
from tests.helpers import LogBuilder
from tests.integration.test_ingester_bad_input import line
from tests.realsinks import SECRET, Receiver

HEADER_SECRET = "hdr-process-2c7e90"
CHANGES = 20  # 10 orders created, each updated once


class ThreadedReceiver:
    """A `Receiver` on its own event loop in a thread (the test's main thread runs `main`)."""

    def __init__(self) -> None:
        self.receiver = Receiver()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self.loop).result(10)
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with ThreadedReceiver() as r:
        yield r


def subscriptions_file(tmp: Path, receiver: Receiver, **hook: Any) -> Path:
    path = tmp / "subscriptions.json"
    sink = {
        "kind": "webhook",
        "url": receiver.url,
        "secret": {"env": "HOOK_SECRET"},
        "headers": {"x-token": HEADER_SECRET},
        **hook,
    }
    path.write_text(json.dumps([{"name": "hooks", "sink": sink, "start": "earliest"}]))
    return path


def until(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def run_until(store: MemoryStore, condition: Callable[[], object], poll: float = 0.02) -> int:
    """`eventstore subscriptions run` through `main` until `condition()` holds (at most 30 s),
    then SIGTERM, as a user's Ctrl-C or `kill` sends it: the exit code."""
    done = threading.Event()

    def stopper() -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(poll)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    try:
        return main(["subscriptions", "run", "--uri", "memory://"], store=store)
    finally:
        done.set()
        thread.join(5)


def test_run_applies_the_file_at_start_and_delivers_every_event(
    receiver: Receiver, tmp_path: Path
) -> None:
    changes = tmp_path / "changes.ndjson"
    changes.write_text("\n".join(line(n) for n in range(1, CHANGES + 1)) + "\n")
    path = subscriptions_file(tmp_path, receiver)
    args = ["run", "--uri", "memory://", "--source", f"ndjson:{changes}"]
    args += ["--host", "127.0.0.1", "--port", str(free_port())]
    env = clean_env(EVENTSTORE_SUBSCRIPTIONS=str(path), HOOK_SECRET=SECRET)
    proc = subprocess.Popen(
        [*EVENTSTORE, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        until(lambda: len(set(receiver.ids)) >= CHANGES)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=STOP_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert sorted(set(receiver.ids)) == sorted(f"hooks-{s}" for s in range(1, CHANGES + 1))
    assert receiver.invalid == 0
    assert all(h["x-token"] == HEADER_SECRET for h in receiver.headers)
    logged = (out + err).decode()
    assert "subscriptions applied from" in logged and "hooks" in logged
    assert SECRET not in logged and HEADER_SECRET not in logged


def test_subscriptions_run_process_applies_the_file_runs_the_worker_and_stops_cleanly(
    receiver: Receiver, tmp_path: Path
) -> None:
    path = subscriptions_file(tmp_path, receiver)
    env = clean_env(EVENTSTORE_SUBSCRIPTIONS=str(path), HOOK_SECRET=SECRET)
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [*EVENTSTORE, "subscriptions", "run", "--uri", "memory://"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            until(lambda: '"worker": "subscription:hooks"' in log.read_text())
            until(lambda: '"state": "running"' in log.read_text())
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=STOP_SECONDS)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    text = log.read_text()
    assert code == 0, text
    assert "subscriptions applied from" in text
    assert '"state": "stopped"' in text
    assert SECRET not in text and HEADER_SECRET not in text


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "hooks", "sink": {"kind": "webhook", "url": "ftp://x.test", "secret": SECRET}},
            "subscription 'hooks': sink.url: unsupported URL scheme 'ftp'",
        ),
        (
            {"name": "hooks", "sink": {"kind": "webhook", "url": "https://x.test"}, "lanes": 0},
            "subscription 'hooks': sink.secret: a webhook needs a secret",
        ),
        (
            {
                "name": "leaky",
                "sink": {"kind": "webhook", "url": "https://x.test", "secret": "whsec_!!bad!!"},
            },
            "subscription 'leaky': sink.secret: a webhook secret is whsec_",
        ),
    ],
)
@pytest.mark.parametrize(
    "command", [["subscriptions", "run"], ["run", "--port", "0", "--source", "simulator"]]
)
def test_a_bad_subscriptions_file_is_one_line_naming_the_entry_and_field_and_exit_1(
    tmp_path: Path, entry: dict[str, Any], message: str, command: list[str]
) -> None:
    path = tmp_path / "subscriptions.json"
    path.write_text(json.dumps([entry]))
    proc = subprocess.Popen(
        [*EVENTSTORE, *command, "--uri", "memory://"],
        cwd=ROOT,
        env=clean_env(EVENTSTORE_SUBSCRIPTIONS=str(path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eventstore: error: EVENTSTORE_SUBSCRIPTIONS: ")
    assert message in lines[0], lines[0]
    assert "!!bad!!" not in err + out  # a refused secret is not echoed


def test_subscriptions_run_delivers_a_stored_log_to_a_real_receiver(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    log = LogBuilder()
    asyncio.run(store.events.append([log.next(k) for k in ("a", "b", "a", "c", "b", "a")]))
    path = subscriptions_file(tmp_path, receiver)
    monkeypatch.setenv("EVENTSTORE_SUBSCRIPTIONS", str(path))
    monkeypatch.setenv("HOOK_SECRET", SECRET)

    def settled() -> int:
        # The memory store's `get` is a plain coroutine (no loop of its own): safe from here.
        cp = asyncio.run(store.checkpoints.get(checkpoint_name("hooks")))
        return 0 if cp is None else cp.head.seq

    # Stop once the worker has settled all six, not when the receiver has them: a delivery
    # the stop's drain does not see answered is not recorded and goes out again on the
    # next run (at least once), which would make the counts below a race.
    code = run_until(store, lambda: settled() >= 6)
    assert code == 0
    assert sorted(set(receiver.ids)) == [f"hooks-{s}" for s in range(1, 7)]
    record = asyncio.run(store.subscriptions.get("hooks"))
    assert record is not None and record.delivered == 6
    assert record.config["sink"]["secret"] == {"env": "HOOK_SECRET"}  # a reference stays one
    assert base64.b64decode(SECRET.removeprefix("whsec_"))  # the receiver verified with it
    assert receiver.invalid == 0


def test_a_stop_while_a_webhook_is_in_flight_waits_for_its_answer_and_records_it(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    log = LogBuilder()
    asyncio.run(store.events.append([log.next(k) for k in ("a", "b", "c")]))
    monkeypatch.setenv("EVENTSTORE_SUBSCRIPTIONS", str(subscriptions_file(tmp_path, receiver)))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    receiver.delay = 0.4  # each answer takes that long: the stop comes while one is open
    code = run_until(store, lambda: receiver.open_ids, poll=0.005)
    assert code == 0
    assert receiver.ids  # the delivery open at the stop was answered, not cut off
    # Everything the receiver took is recorded: the next run sends none of it again.
    cp = asyncio.run(store.checkpoints.get(checkpoint_name("hooks")))
    assert cp is not None
    assert receiver.ids == [f"hooks-{s}" for s in range(1, cp.head.seq + 1)]
    record = asyncio.run(store.subscriptions.get("hooks"))
    assert record is not None and record.delivered == len(receiver.ids)
