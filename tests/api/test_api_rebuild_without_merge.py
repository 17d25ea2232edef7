"""A projection without `merge` asked to rebuild with several workers over the admin API
rebuilds with one, and its job says so (an outside tester found `note: null` there, while
the CLI said it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from eventstore.cli.bootstrap import build_app
from tests.api.conftest import ADMIN_KEY, build_log, settings
from tests.api.test_api_projections import _until_done

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PLUGIN = """
from projections import Projection, Write

def apply(rows, change):
    n = (rows.get("all") or {}).get("n", 0)
    return [Write(key="all", row={"n": n + 1})]

NO_MERGE = Projection(
    name="no_merge", collection="rm_no_merge", keys=lambda change: ["all"], apply=apply
)
"""


@pytest.mark.parametrize(("asked", "note"), [(3, True), (1, False)])
async def test_the_job_says_it_rebuilt_with_one_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: int, note: bool
) -> None:
    (tmp_path / "api_no_merge_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "api_no_merge_plugin", raising=False)
    log = await build_log("memory", orders=4, changes=20)
    app = build_app(
        settings(admin_key=ADMIN_KEY, projections=("api_no_merge_plugin:NO_MERGE",)),
        store=log.store,
    )
    async with AsyncTestClient(app) as client:
        r = await client.post(
            "/v1/admin/projections/no_merge/rebuild", headers=ADMIN, json={"workers": asked}
        )
        assert r.status_code == 202, r.text
        done = await _until_done(client, r.json()["job"])
    assert done["state"] == "succeeded" and done["workers"] == 1 and done["partitions"] == []
    assert done["note"] == (
        "no_merge has no merge: rebuilt with one worker (3 asked)" if note else None
    )
    rows = await log.store.read_models.get_many("rm_no_merge", ["all"])
    entity_events = [e for e in log.events if e.entity_key != "$stream"]
    assert rows["all"]["n"] == len(entity_events)
