"""`demo --report` says how far its simulation is while it writes the workload.

An outside tester found it silent for minutes at 10,000 orders and 100,000 changes
(DESIGN.md: long work shows progress); capture's own progress came only after.
"""

from __future__ import annotations

import io
import json
import re

import pytest

from eventstore.cli import demo, main


def test_the_simulation_prints_how_many_changes_it_has_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "SIMULATING_EVERY", 0.001)
    out = io.StringIO()
    argv = ["demo", "--report", "--orders", "20", "--changes", "400", "--json"]
    assert main(argv, out=out) == 0
    assert json.loads(out.getvalue())["changes"] == 420
    told = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("demo: ") and "changes written" in line
    ]
    assert told, "no progress line"
    counts = []
    for line in told:
        found = re.fullmatch(r"demo: ([\d,]+) of about 420 changes written \(\d+ s\)", line)
        assert found is not None, line
        counts.append(int(found[1].replace(",", "")))
    assert counts == sorted(counts) and counts[-1] <= 420
