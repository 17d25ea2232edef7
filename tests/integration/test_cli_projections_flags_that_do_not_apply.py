"""`projections status` and `projections rebuild` each refuse the other's flags (exit 1, one
line naming the flag) instead of silently ignoring them: `status --workers 3` rebuilds nothing
and `rebuild --json` prints no JSON."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_cli_history import populated
from tests.integration.test_cli_projections import run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "--workers", "3"], "projections status takes no --workers (rebuild does)"),
        (["status", "--workers", "1"], "projections status takes no --workers (rebuild does)"),
        (["status", "--all"], "projections status takes no --all (rebuild does)"),
        (
            ["status", "--all", "--workers", "2"],
            "projections status takes no --all or --workers (rebuild does)",
        ),
        (
            ["rebuild", "order_summary", "--json"],
            "projections rebuild takes no --json (status does)",
        ),
    ],
)
def test_a_flag_of_the_other_action_is_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = populated()
    code, out = run(store, "projections", *argv)
    assert (code, out) == (1, "")
    assert capsys.readouterr().err == f"eventstore: error: {message}\n"
    # nothing was rebuilt
    assert "rm_order_summary" not in store.read_models._tables


def test_each_action_with_its_own_flags_runs(capsys: pytest.CaptureFixture[str]) -> None:
    store = populated()
    code, out = run(store, "projections", "rebuild", "orders_by_status", "--workers", "2")
    assert code == 0 and "orders_by_status: rebuilt from" in out and "2 workers" in out
    code, out = run(store, "projections", "status", "--json")
    assert code == 0
    assert {r["name"]: r["state"] for r in json.loads(out)}["orders_by_status"] == "stopped"
