"""`run` with a signing key: capture keeps the tree, signs checkpoints and publishes them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from litestar.testing import AsyncTestClient

from eventstore.cli.bootstrap import WorkloadOptions, open_service
from eventstore.merkle import root_of
from eventstore.notes import Verifier, open_note, parse_checkpoint
from eventstore.settings import Settings
from eventstore.signing import load_signer, write_key
from eventstore.tree import event_leaf
from tests.integration.ingest_helpers import all_events


async def test_a_keyed_service_signs_and_publishes_what_it_captures(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    vkey = Verifier.parse(write_key(str(key), "log.test").verifier_key())
    assert load_signer(str(key)).verifier_key() == vkey.key()
    settings = Settings(
        uri="memory://",
        source="simulator",
        lease_seconds=1.0,
        signing_key=str(key),
        checkpoint_interval=0.05,
        publish_checkpoints=(f"dir:{tmp_path / 'pub'}",),
    )
    workload = WorkloadOptions(orders=5, changes=20, rate=0, seed=3)
    async with open_service(settings, capture=True, workload=workload) as service:
        workers = service.workers()
        async with AsyncTestClient(service.app(workers=workers)) as http:
            for _ in range(300):
                r = await http.get("/v1/checkpoint")
                if (
                    r.status_code == 200
                    and "\n25\n" in r.text
                    and (tmp_path / "pub" / "25").exists()
                ):
                    break
                await asyncio.sleep(0.02)
            _, size, root = parse_checkpoint(open_note(r.text, vkey))
        events = await all_events(service.store)
    assert size == 25 and root == root_of([event_leaf(e) for e in events])
    assert (tmp_path / "pub" / "latest").read_text() == (tmp_path / "pub" / "25").read_text()
    assert (tmp_path / "log.key.state").exists()
