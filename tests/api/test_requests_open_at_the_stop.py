"""A request still open when the server's grace at a stop is over: a 503, never a 500 traceback.

uvicorn cancels such requests (`timeout_graceful_shutdown`); before, each was answered
500 and its `CancelledError` logged with a traceback as "Exception in ASGI application"
(the probe's F6: requests waiting on a stalled database, cut at the stop).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import get

from api import create_app
from api.server import GracefulServer
from eventstore.memory.store import MemoryStore
from tests.api.conftest import settings
from tests.e2e.processes import free_port
from tests.supervision import until


@get("/slow")
async def slow() -> str:
    """A request that waits longer than any grace (as one on a stalled database does)."""
    await asyncio.sleep(30)
    return "late"


async def test_a_request_open_when_the_grace_ends_is_a_503_and_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(settings(), store=MemoryStore(), extra_routes=[slow])
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=0.3,  # type: ignore[arg-type]  # asyncio.timeout takes it
    )
    server = GracefulServer(config)
    serving = asyncio.create_task(server.serve())
    caplog.set_level(logging.INFO)
    try:
        await until(lambda: server.started)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            request = asyncio.create_task(client.get("/slow"))
            await until(
                lambda: app.services.metrics is not None and bool(server.server_state.tasks)
            )
            server.ask_to_stop()  # as a SIGTERM asks
            r: Any = await asyncio.wait_for(request, 5)
        await asyncio.wait_for(serving, 5)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 5)
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "the service is stopping; try again shortly"
    messages = [rec.getMessage() for rec in caplog.records]
    assert not any("Exception in ASGI application" in m for m in messages), messages
    assert not any(rec.exc_info for rec in caplog.records if rec.levelno >= logging.ERROR)
    assert "GET /slow was still open when the stop's grace ended: answered 503" in messages
    # The access line and the metrics say what the client got.
    logged = [json.loads(m) for m in messages if m.startswith('{"method"')]
    assert [(line["path"], line["status"]) for line in logged] == [("/slow", 503)]
