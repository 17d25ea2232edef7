"""`demo --report` takes the settings given (flags, variables) on memory:// with the
simulator, as the serving demo does: a setting taken and ignored would say nothing."""

from __future__ import annotations

import io
import json

import pytest

from eventstore.cli import main


def _report(*flags: str) -> dict[str, object]:
    out = io.StringIO()
    argv = ["demo", "--report", "--orders", "3", "--changes", "5", "--json", *flags]
    assert main(argv, out=out) == 0
    report: dict[str, object] = json.loads(out.getvalue())
    return report


def test_a_setting_given_to_the_report_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = _report()
    assert captured["events"] == captured["changes"] == 8  # 3 orders, 5 changes
    # the simulator writes orders: capturing customers only records none of them
    assert _report("--collections", "customers")["events"] == 0
    monkeypatch.setenv("EVENTSTORE_COLLECTIONS", "customers")
    assert _report()["events"] == 0
