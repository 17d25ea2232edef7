"""`ingest --source simulator --until-idle`: the initial orders captured and an end, never a wait.

The simulator's traffic at a rate (`--rate R`, 5 by default) never ends, and `--until-idle`
waits for the end of the workload before it captures what it wrote: it sat there for ever
with nothing recorded. It is refused before anything starts, with one line saying to use
`--rate 0`, which writes the `--orders`, captures them and stops.
"""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.memory.store import MemoryStore

INGEST = ["ingest", "--uri", "memory://", "--until-idle"]
# Bounds for a command that should end at once: a hang fails instead of holding the suite.
ENDS_WITHIN = 30.0


def ends(argv: list[str], store: MemoryStore | None = None) -> tuple[int, str]:
    """`main(argv)` on a thread of its own: its code and output, or a failure if it never ends."""
    out = io.StringIO()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(main(argv, out=out, store=store)), daemon=True
    )
    thread.start()
    thread.join(ENDS_WITHIN)
    assert not thread.is_alive(), f"eventstore {' '.join(argv)} did not end"
    return result[0], out.getvalue()


@pytest.mark.parametrize(
    "workload",
    [
        ["--source", "simulator", "--orders", "3"],  # the default --rate 5
        ["--source", "simulator", "--orders", "50", "--rate", "100"],
        ["--source", "simulator", "--rate", "0.5"],
    ],
    ids=["default-rate", "rate-100", "rate-0.5"],
)
def test_until_idle_with_a_paced_simulator_is_refused_with_one_line(
    workload: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = MemoryStore()
    code, out = ends([*INGEST, *workload], store)
    assert (code, out) == (1, "")
    err = capsys.readouterr().err
    rate = workload[workload.index("--rate") + 1] if "--rate" in workload else "5"
    assert err.splitlines() == [
        "eventstore: error: --until-idle with --source simulator needs --rate 0: at --rate "
        f"{rate} the simulated traffic never ends, so capture is never idle "
        "(--rate 0 writes the --orders, captures them and stops)"
    ]
    assert "Traceback" not in err


def test_the_simulator_named_by_the_environment_is_refused_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTSTORE_SOURCE", "simulator")
    assert ends([*INGEST, "--orders", "3"], MemoryStore()) == (1, "")
    assert "needs --rate 0" in capsys.readouterr().err


def test_until_idle_at_rate_0_captures_the_initial_orders_and_stops() -> None:
    store = MemoryStore()
    code, out = ends([*INGEST, "--source", "simulator", "--orders", "3", "--rate", "0"], store)
    assert code == 0
    assert out.startswith("recorded 3 events from 3 changes ")
    events = asyncio.run(store.events.read(after_seq=0, limit=10))
    assert [e.type for e in events] == ["created"] * 3


def test_another_source_with_until_idle_is_not_refused_for_the_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "none.ndjson"
    empty.write_text("")
    code, out = ends([*INGEST, "--source", f"ndjson:{empty}"], MemoryStore())
    assert code == 0
    assert out.startswith("recorded 0 events from 0 changes ")
    assert "needs --rate 0" not in capsys.readouterr().err
    # a --rate typed for it is refused as a simulator's flag, not for the rate's value
    code, out = ends([*INGEST, "--source", f"ndjson:{empty}", "--rate", "5"], MemoryStore())
    err = capsys.readouterr().err
    assert code == 1 and "--rate drive the simulator" in err and "needs --rate 0" not in err
