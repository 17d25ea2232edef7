"""project / projections status / projections rebuild, in-process on a pre-populated memory store."""

from __future__ import annotations

import io
import json

import pytest

from eventstore.cli import main
from tests.integration.test_cli_history import populated


def run(store: object, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main([*argv, "--uri", "memory://"], out=out, store=store), out.getvalue()


def test_project_status_and_rebuild(capsys: pytest.CaptureFixture[str]) -> None:
    store = populated()
    code, out = run(store, "projections", "status", "--json")
    assert code == 0 and {r["name"]: r["lag"] for r in json.loads(out)} == {
        "order_summary": 4,
        "orders_by_status": 4,
        "revenue_by_day": 4,
        "customer_totals": 4,
    }
    code, out = run(store, "project", "--until-caught-up")
    assert code == 0 and "order_summary: position 4" in out
    code, out = run(store, "projections", "status", "--json")
    assert all(r["lag"] == 0 and r["state"] == "stopped" for r in json.loads(out))
    code, out = run(store, "projections", "rebuild", "orders_by_status")
    err = capsys.readouterr().err
    assert code == 0 and "orders_by_status: rebuilt from 4 events" in out
    assert "[##############################] 4/4 events" in err
    code, out = run(store, "projections", "status", "--json")
    rebuilt = {r["name"]: r["rebuilt_at"] for r in json.loads(out)}
    # rebuilt here and handed back: nobody follows it until a projector takes the lease
    assert {r["name"]: r["state"] for r in json.loads(out)}["orders_by_status"] == "stopped"
    assert rebuilt["orders_by_status"] is not None and rebuilt["orders_by_status"].endswith("Z")
    assert rebuilt["order_summary"] is None
    rows = store.read_models._tables["rm_orders_by_status"]
    assert {k: r["count"] for k, r in rows.items()} == {"pending": 1, "shipped": 1, "paid": 0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["projections", "rebuild"], "--all"),
        (["projections", "rebuild", "nope"], "unknown projection"),
    ],
)
def test_bad_projection_requests_exit_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(populated(), *argv)
    assert code == 1 and message in capsys.readouterr().err
