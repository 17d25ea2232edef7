"""The monitor holds a log to its origin: a checkpoint of another log is a finding, never saved.

C2SP tlog-checkpoint: a client checks the origin against the log it expects. One key
may sign several logs; a larger tree of another origin says nothing about this one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.monitor import Fetch, Finding, Seen, check_once
from eventstore.notes import Signer, Verifier, checkpoint_text, sign_note

SIGNER = Signer.generate("grow.example")


def note(origin: str, size: int) -> str:
    return sign_note(checkpoint_text(origin, size, bytes([size % 256]) * 32), SIGNER)


def serving(body: str, asked: list[str]) -> Fetch:
    async def fetch(path: str) -> tuple[int, bytes]:
        asked.append(path)
        return 200, body.encode()

    return fetch


def saved_state(tmp_path: Path) -> tuple[Path, str]:
    state = tmp_path / "monitor"
    state.mkdir()
    saved = note("grow.example/log", 611)
    (state / "checkpoint").write_text(saved)
    (state / "611").write_text(saved)
    return state, saved


async def test_a_larger_checkpoint_of_another_origin_is_a_finding_and_not_saved(
    tmp_path: Path,
) -> None:
    state, saved = saved_state(tmp_path)
    served = note("other.origin/x", 700)
    asked: list[str] = []
    found = await check_once(serving(served, asked), Verifier.parse(SIGNER.verifier_key()), state)
    assert found == Finding(
        finding="other-origin",
        detail="the served checkpoint is of log 'other.origin/x', the saved one of"
        " 'grow.example/log'",
        saved=saved,
        served=served,
    )
    assert asked == ["/v1/checkpoint"]  # no consistency proof asked across logs
    assert (state / "checkpoint").read_text() == saved
    assert sorted(p.name for p in state.iterdir()) == ["611", "checkpoint"]


async def test_the_same_origin_at_the_same_size_is_still_seen(tmp_path: Path) -> None:
    state, saved = saved_state(tmp_path)
    found = await check_once(serving(saved, []), Verifier.parse(SIGNER.verifier_key()), state)
    assert found == Seen(size=611, previous=611)


def test_the_cli_prints_the_evidence_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventstore.cli import monitor as cli_monitor

    state, saved = saved_state(tmp_path)
    served = note("other.origin/x", 700)
    monkeypatch.setattr(cli_monitor, "http_fetch", lambda base, key: serving(served, []))
    out = io.StringIO()
    argv = ["monitor", "http://h", "--key", SIGNER.verifier_key(), "--state", str(state)]
    assert main([*argv, "--once"], out=out) == 2
    evidence = json.loads(out.getvalue())
    assert (evidence["finding"], evidence["saved"], evidence["served"]) == (
        "other-origin",
        saved,
        served,
    )
    assert (state / "checkpoint").read_text() == saved
