"""`create_app(settings)`: the Litestar app over the event log.

Nothing connects at import or at `create_app`: the plugin opens the store in the
app's lifespan. The app keeps `%2F` inside a path segment (an `_id` with a `/`)
from splitting the segment: before routing, each segment of the raw path is
decoded with `%` and `/` kept escaped, and handlers decode their path values once
(`api.params.path_value`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import unquote

from litestar import Litestar, Router
from litestar.config.app import AppConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.plugins import InitPluginProtocol
from litestar.types import Message

from api.auth import admin_guard, read_guard
from api.params import refuse_unknown_parameters
from api.problems import EXCEPTION_HANDLERS
from api.routes import events, health, projections, streams
from api.services import Services
from eventstore.ports import Clock, Store
from eventstore.settings import Settings
from projections.orders import ORDER_PROJECTIONS, Projection

access_log = logging.getLogger("eventstore.access")

# The most bytes a POST body may carry (admin requests carry none).
MAX_BODY: Final = 64 * 1024
VERSION: Final = "1.0.0"


class EventStorePlugin(InitPluginProtocol):
    """Wires the store, the history service and the projections into the app as `services`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        services = self.services

        async def provide() -> Services:
            return services

        async def startup(app: Litestar) -> None:
            app.state.services = services
            await services.start()

        async def shutdown(app: Litestar) -> None:
            await services.stop()

        from litestar.di import Provide

        app_config.dependencies["services"] = Provide(provide, use_cache=True)
        app_config.on_startup.append(startup)
        app_config.on_shutdown.append(shutdown)
        app_config.state["services"] = services
        return app_config


def _router_path(raw: bytes) -> str:
    """The path to route on: segments decoded, with `%` and `/` inside a segment kept escaped."""
    text = raw.decode("latin-1")
    return "/".join(
        unquote(seg, encoding="utf-8", errors="replace").replace("%", "%25").replace("/", "%2F")
        if "%" in seg
        else seg
        for seg in text.split("/")
    )


def _route_template(scope: Any) -> str:
    """The matched route's template (`/v1/streams/{stream}/...`): bounded label values."""
    return str(scope.get("path_template") or "unmatched")


class EventStoreApp(Litestar):
    """Litestar with segment-preserving paths, request metrics and one JSON access-log line."""

    services: Services

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if raw and b"%" in raw:
            scope = {**scope, "path": _router_path(raw.split(b"?", 1)[0])}
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = _route_template(scope)
            self.services.metrics.observe(scope["method"], route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    json.dumps(
                        {
                            "method": scope["method"],
                            "path": scope["path"],
                            "route": route,
                            "status": status,
                            "ms": round(seconds * 1000, 2),
                            "client": (scope.get("client") or ("", 0))[0],
                        }
                    )
                )


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    projections_: Sequence[Projection] = ORDER_PROJECTIONS,
    caught_up: Callable[[], bool] | None = None,
    debug: bool = False,
    extra_routes: Sequence[Any] = (),
) -> EventStoreApp:
    """The API app; pass `store` to serve an already open store (tests, `run`), else it opens one.

    `caught_up` tells readiness whether this process's ingester has caught up once
    (None: this process does not capture).
    """
    services = Services(
        settings, store=store, clock=clock, projections=projections_, caught_up=caught_up
    )
    v1 = Router(
        "/v1",
        route_handlers=[*streams.ROUTES, *events.ROUTES, *projections.ROUTES],
        guards=[read_guard],
    )
    admin = Router("/v1/admin", route_handlers=projections.ADMIN_ROUTES, guards=[admin_guard])
    app = EventStoreApp(
        route_handlers=[v1, admin, *health.ROUTES, *extra_routes],
        plugins=[EventStorePlugin(services)],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=refuse_unknown_parameters,
        request_max_body_size=MAX_BODY,
        openapi_config=OpenAPIConfig(
            title="eventstore: audit log and event store for MongoDB",
            version=VERSION,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(path="/"), RedocRenderPlugin()],
        ),
        debug=debug,
        logging_config=None,
    )
    app.services = services
    return app
