"""`--orders`, `--rate` and `--seed` drive the simulator alone: typed for another source they
are refused (one line, exit 1, nothing opened), never taken and ignored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.memory.store import MemoryStore


@pytest.mark.parametrize("command", ["ingest", "run"])
@pytest.mark.parametrize(
    ("flags", "named", "them"),
    [
        (["--orders", "5"], "--orders", "it"),
        (["--rate", "2", "--seed", "3"], "--rate and --seed", "them"),
    ],
)
def test_simulator_flags_for_another_source_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    flags: list[str],
    named: str,
    them: str,
) -> None:
    source = f"ndjson:{tmp_path / 'changes.ndjson'}"
    argv = [command, "--uri", "memory://", "--source", source, *flags]
    assert main(argv, out=io.StringIO(), store=MemoryStore()) == 1
    err = capsys.readouterr().err
    assert err == (
        f"eventstore: error: {named} drive the simulator, not --source {source}: "
        f"give --source simulator, or leave {them} out\n"
    )


def test_simulator_flags_with_the_simulator_from_the_environment_are_taken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTSTORE_SOURCE", "simulator")
    argv = ["ingest", "--uri", "memory://", "--orders", "3", "--rate", "0", "--until-idle"]
    out = io.StringIO()
    assert main(argv, out=out, store=MemoryStore()) == 0
    assert out.getvalue().startswith("recorded 3 events from 3 changes"), out.getvalue()


def test_other_noted_flags_are_no_workload(tmp_path: Path) -> None:
    """`--port` and `--host` are noted as given too (demo --report refuses them): not these."""
    empty = tmp_path / "none.ndjson"
    empty.write_text("")
    argv = ["ingest", "--uri", "memory://", "--source", f"ndjson:{empty}", "--until-idle"]
    out = io.StringIO()
    assert main(argv, out=out, store=MemoryStore()) == 0
    assert out.getvalue().startswith("recorded 0 events from 0 changes")
