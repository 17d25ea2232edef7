"""`eventstore monitor` as an auditor runs it: a subprocess against a service on a real port.

The service is the API app under uvicorn on a loopback port, serving a signed log the
test rewrites between runs (as whoever holds the database and the key could); the
monitor is `python -m eventstore monitor URL --key K --state DIR`, its exit code and
output read as a user reads them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from eventstore.notes import Signer, sign_note
from eventstore.settings import Settings
from tests.e2e.processes import EVENTSTORE, ROOT, STOP_SECONDS, InProcessServer, clean_env, serving
from tests.merkle_helpers import (
    Signed,
    grow,
    replace_log,
    resign,
    resign_keeping_history,
    rewrite_event,
    signed_log,
)


@dataclass
class Service:
    server: InProcessServer
    signed: Signed
    tmp: Path

    @property
    def key(self) -> str:
        return self.signed.signer.verifier_key()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    box: dict[str, Signed] = {}

    async def build() -> Any:
        # The log first holds a signed tree of 13 events (checkpoints at 5 and 13).
        (tmp_path / "service").mkdir()
        box["signed"] = await signed_log(tmp_path / "service", sizes=(5, 13))
        return create_app(Settings(uri="memory://", source="simulator"), store=box["signed"].store)

    with serving(build) as server:
        yield Service(server, box["signed"], tmp_path)


def command(service: Service, state: Path) -> list[str]:
    """`eventstore monitor URL --key K --state DIR`."""
    url = service.server.base
    return [*EVENTSTORE, "monitor", url, "--key", service.key, "--state", str(state)]


def monitor(service: Service, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`eventstore monitor URL --key K --state DIR --once`, run to its end."""
    return subprocess.run(
        [*command(service, state), "--once", *extra],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def evidence(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON evidence a finding prints (exit 2, nothing else on stdout)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def size_of(note: str) -> int:
    return int(note.split("\n")[1])


def first_look(service: Service, state: Path) -> None:
    done = monitor(service, state)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: tree 13 (saved before: None)"
    assert (state / "checkpoint").read_text() == (state / "13").read_text()


def test_an_honest_log_growing_between_runs_passes_and_the_state_follows_it(
    service: Service,
) -> None:
    state = service.tmp / "monitor"
    first_look(service, state)
    again = monitor(service, state)
    assert (again.returncode, again.stdout.strip()) == (0, "ok: tree 13 (saved before: 13)")

    async def grow_and_sign() -> None:
        await grow(service.signed, service.tmp / "grown")
        await resign_keeping_history(service.signed, service.tmp / "service")

    service.server.call(grow_and_sign)
    grown = monitor(service, state)
    assert (grown.returncode, grown.stdout.strip()) == (0, "ok: tree 21 (saved before: 13)")
    assert size_of((state / "checkpoint").read_text()) == 21
    assert sorted(p.name for p in state.iterdir()) == ["13", "21", "checkpoint"]


def test_a_rewritten_event_with_recomputed_chains_and_head_served_at_the_same_size_is_a_fork(
    service: Service,
) -> None:
    state = service.tmp / "monitor"
    first_look(service, state)

    async def rewrite() -> None:
        signed = service.signed
        await replace_log(signed.store, rewrite_event(signed.events, 9))  # chains and head too
        await resign(signed, service.tmp / "fresh-state")  # a key signs the rewritten tree

    service.server.call(rewrite)
    found = evidence(monitor(service, state))
    assert found["finding"] == "fork"
    assert size_of(found["saved"]) == size_of(found["served"]) == 13
    assert found["saved"].split("\n")[2] != found["served"].split("\n")[2]  # two roots
    assert found["saved"] == (state / "13").read_text()
    assert size_of((state / "checkpoint").read_text()) == 13  # the fork is not saved


def test_a_rewritten_event_served_in_a_bigger_tree_is_caught_by_its_proof(
    service: Service,
) -> None:
    state = service.tmp / "monitor"
    first_look(service, state)

    async def rewrite_and_grow() -> None:
        signed = service.signed
        await grow(signed, service.tmp / "grown")
        await replace_log(signed.store, rewrite_event(signed.events, 3))
        await resign(signed, service.tmp / "fresh-state")

    service.server.call(rewrite_and_grow)
    found = evidence(monitor(service, state))
    assert found["finding"] == "refused-proof"
    assert (size_of(found["saved"]), size_of(found["served"])) == (13, 21)
    proof = found["proof"]
    assert (proof["from"], proof["to"]) == (13, 21) and proof["hashes"]
    assert size_of((state / "checkpoint").read_text()) == 13


def test_a_rollback_to_a_smaller_tree_exits_2_with_both_checkpoints(service: Service) -> None:
    state = service.tmp / "monitor"
    first_look(service, state)

    async def roll_back() -> None:
        signed = service.signed
        await replace_log(signed.store, signed.events[:10])
        await resign(signed, service.tmp / "fresh-state")

    service.server.call(roll_back)
    found = evidence(monitor(service, state))
    assert found["finding"] == "rollback"
    assert (size_of(found["saved"]), size_of(found["served"])) == (13, 10)
    assert found["proof"] is None


def test_a_checkpoint_signed_by_another_key_exits_2(service: Service) -> None:
    state = service.tmp / "monitor"
    first_look(service, state)

    async def forge() -> None:
        signed = service.signed
        impostor = Signer.generate(signed.signer.name)  # same name, another key
        await resign(signed, service.tmp / "impostor-state", impostor)

    service.server.call(forge)
    found = evidence(monitor(service, state))
    assert found["finding"] == "bad-signature"
    assert "refused" in found["detail"]
    assert size_of(found["saved"]) == 13 and size_of(found["served"]) == 13
    assert found["saved"] != found["served"]


def _wait_for(path: Path, text: str, proc: subprocess.Popen[str], seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        assert proc.poll() is None, f"the monitor ended: {content}"
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path.read_text()!r}")


def test_without_once_it_keeps_checking_logs_findings_and_stops_on_sigterm(
    service: Service,
) -> None:
    state = service.tmp / "monitor"
    out_path, err_path = service.tmp / "out", service.tmp / "err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [*command(service, state), "--interval", "1"],  # the shortest it takes
            cwd=ROOT,
            env=clean_env(),
            stdout=out,
            stderr=err,
            text=True,
        )
    try:
        # One cycle, then the next: it keeps running between them.
        _wait_for(out_path, "ok: tree 13 (saved before: 13)", proc)

        async def forge() -> None:
            signed = service.signed
            latest = await signed.store.merkle.checkpoint()
            assert latest is not None
            text = latest.note.split("\n\n")[0] + "\n"
            note = sign_note(text, Signer.generate(signed.signer.name))
            await signed.store.merkle.add_checkpoint(
                type(latest)(
                    size=99, root=latest.root, note=note, signed=True, created_at=latest.created_at
                )
            )

        service.server.call(forge)
        logged = _wait_for(err_path, "monitor: bad-signature", proc)
        assert "ERROR" in logged and "Traceback" not in logged
        assert '"finding": "bad-signature"' in out_path.read_text()
        # The next cycle logs it again: it goes on after a finding.
        deadline = time.monotonic() + 30
        while err_path.read_text().count("monitor: bad-signature") < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_SECONDS) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert size_of((state / "checkpoint").read_text()) == 13  # the forgery was never saved
    assert "Traceback" not in err_path.read_text()
