"""`create_app(settings)`: the Litestar app over the event log.

Nothing connects at import or at `create_app`: the plugin opens the store in the
app's lifespan. The app keeps `%2F` inside a path segment (an `_id` with a `/`)
from splitting the segment: before routing, each segment of the raw path is
decoded with `%` and `/` kept escaped, and handlers decode their path values once
(`api.params.path_value`).

The OpenAPI document lists, on each operation, every problem+json answer it
can give (`problem_responses`), so a client (or a fuzzer) can rely on it. The
docs pages under `/schema` are fixed paths; any other path there is unrouted,
the same 404 problem as any unknown path (`SchemaPages`).
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import unquote

from litestar import Litestar, Router
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import InitPluginProtocol
from litestar.types import ASGIApp, Message

from api.auth import admin_guard, read_guard
from api.bodies import REQUEST_BODIES, with_body
from api.disconnect import CLIENT_CLOSED, ClientWatch
from api.metrics import Metrics
from api.params import refuse_unknown_parameters
from api.problems import EXCEPTION_HANDLERS, MAX_BODY, PROBLEM_JSON, Problem
from api.requests import JsonSafeRequest
from api.routes import (
    erasures,
    events,
    health,
    projections,
    proofs,
    streams,
    subscriptions,
    workers,
)
from api.schemas import EventsPage, NotReady
from api.services import Services
from api.surface import http_surface
from eventstore.ports import Clock, Store
from eventstore.settings import Settings
from eventstore.supervisor import Supervisor
from projections.orders import ORDER_PROJECTIONS, Projection

access_log = logging.getLogger("eventstore.access")

# The most bytes a POST body may carry (admin requests carry none).
VERSION: Final = "1.0.0"
# Requests that change nothing: cancelled when their client leaves before the answer.
READS: Final = frozenset({"GET", "HEAD"})


# -- the error responses in the OpenAPI document ------------------------------------------------
# Every problem+json answer a client can meet is documented on the operations that give it
# (RFC 9457 bodies, `api.problems.Problem`), so the document is the whole contract.
PROBLEM_CAUSES: Final[dict[int, str]] = {
    400: "Malformed or unknown query parameters, a value out of range, `at` with `version`, "
    "a time without a zone, a cursor of another listing",
    401: "A key is needed (`Authorization: Bearer <key>`) or the one given is not valid",
    403: "Admin is disabled (no ADMIN_KEY) or a read key was used on /v1/admin",
    404: "Unknown stream, entity, version, projection, row, job, worker, subscription or "
    "parked event, or no state yet; no checkpoint (of that size) made yet",
    409: "An ambiguous bare key (`typed_keys` lists the typed keys to use), "
    "a rebuild already queued or running, or a worker that is not failed or stopped",
    413: "The request body is larger than the server takes (64 KiB)",
    422: "Well-formed but impossible: from_version after to_version, since after until; "
    "a rebuild's workers out of 1-16; "
    "a proof's seq or sizes beyond the tree or out of order; a subscription with an unknown "
    "sink kind, URL scheme, placeholder or a bad secret (`errors: [{key, message}]` names each field)",
    503: "The database is not reachable; try again shortly",
}
# Every /v1 read: bad query, missing or wrong key (when READ_KEYS is set), database away.
V1_PROBLEMS: Final = (400, 401, 503)
ADMIN_PROBLEMS: Final = (400, 401, 403, 404, 503)
# What an operation adds to its router's set, by handler name.
ROUTE_PROBLEMS: Final[dict[str, tuple[int, ...]]] = {
    "list_entities": (404,),
    "entity_history": (404, 409, 422),
    "entity_state": (404, 409),
    "entity_diff": (404, 409, 422),
    "verify_entity": (404, 409),
    "verify_stream": (404,),
    "query_events": (404, 409, 422),
    "live_events": (404, 422),
    "projection_rows": (404,),
    "projection_row": (404,),
    "rebuild": (409, 413, 422),
    # every other route that reads its body (Litestar refuses one over MAX_BODY)
    "create_erasure": (413,),
    "pause_subscription": (413,),
    "resume_subscription": (413,),
    "skip_parked": (413,),
    "get_checkpoint": (404, 422),
    "inclusion_proof": (404, 422),
    "consistency_proof": (404, 422),
    "event_proof": (404, 422),
    "entity_proof": (404, 409, 422),
    "restart_worker": (409, 413),
    "put_subscription": (413, 422),
    "replay_parked": (413, 422),
    "reset_subscription": (413, 422),
}


# The bearer keys, so the docs page has an Authorize button (`api.auth` checks them).
SECURITY_SCHEMES: Final[dict[str, SecurityScheme | Reference]] = {
    "readKey": SecurityScheme(
        type="http",
        scheme="bearer",
        description="A key of READ_KEYS (needed for /v1 reads only when READ_KEYS is set)",
    ),
    "adminKey": SecurityScheme(
        type="http",
        scheme="bearer",
        description="ADMIN_KEY: /v1/admin; it reads /v1 too",
    ),
}
READ_SECURITY: Final[list[dict[str, list[str]]]] = [{"readKey": []}, {"adminKey": []}]
ADMIN_SECURITY: Final[list[dict[str, list[str]]]] = [{"adminKey": []}]


def problem_responses(codes: Iterable[int]) -> dict[int, ResponseSpec]:
    """`responses=` of a handler: an application/problem+json body for each status."""
    return {
        code: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=f"{HTTPStatus(code).phrase}: {PROBLEM_CAUSES[code]}",
            generate_examples=False,
        )
        for code in sorted(set(codes))
    }


def _text(description: str) -> OpenAPIMediaType:
    return OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, description=description))


@dataclass
class EventsOperation(Operation):
    """`GET /v1/events`: the same query answers NDJSON or CSV by `Accept`."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        content = getattr(ok, "content", None)
        if isinstance(content, dict):
            content["application/x-ndjson"] = _text("one event JSON per line, every match")
            content["text/csv"] = _text("one row per event, every match, with a header row")


class SchemaPages(SwaggerRenderPlugin):
    """Swagger UI at the docs root; the docs router keeps only the pages its plugins serve.

    Litestar adds a catch-all `/{path:str}` to the docs router that answers an HTML 404
    page. As a route it would also make `/schema/<anything>` a known path (OPTIONS 204,
    POST 405). Without it such a path is unrouted: the same 404 problem+json as any
    unknown path, for every method.
    """

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        # The plugins' pages are fixed paths: a route with a parameter is the catch-all.
        router.routes = [route for route in router.routes if "{" not in route.path]


def _documented(handlers: Iterable[Any], base: Iterable[int]) -> list[Any]:
    """Copies of `handlers` whose OpenAPI operations list their problem responses."""
    documented = []
    for handler in handlers:
        name = getattr(handler, "handler_name", "")
        extra: dict[int, ResponseSpec] = {}
        if name == "query_events":
            extra[200] = ResponseSpec(EventsPage, description="A page of events in seq order")
        if name == "live_events":
            extra[200] = ResponseSpec(
                str, media_type="text/event-stream", description="Server-Sent Events"
            )
        if name == "put_subscription":
            extra[201] = ResponseSpec(
                dict[str, Any],
                description="Created: the configuration (secrets as ***) and its status; "
                "200 when it updated one",
                generate_examples=False,
            )
        if name == "ready":
            extra[503] = ResponseSpec(
                NotReady,
                media_type=PROBLEM_JSON,
                description="Not ready (type .../not-ready): the database is unreachable, or this "
                "process's capture is failed or retrying longer than UNHEALTHY_AFTER, or has not "
                "caught up once; `detail` says why, `workers` lists this process's workers",
                generate_examples=False,
            )
        codes = (*base, *ROUTE_PROBLEMS.get(name, ()))
        clone = copy.copy(handler)
        clone.responses = {**problem_responses(codes), **extra, **(handler.responses or {})}
        if name == "query_events":
            clone.operation_class = EventsOperation
        if name in REQUEST_BODIES:
            clone.operation_class = with_body(REQUEST_BODIES[name])
        documented.append(clone)
    return documented


# The guards only compare keys: as coroutines they run on the event loop (Litestar runs a
# plain function guard in its thread pool, a thread hop on every request).
async def _read_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: Any) -> None:
    read_guard(connection, handler)


async def _admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: Any) -> None:
    admin_guard(connection, handler)


def _explorer_routes(given: Sequence[Any]) -> list[Any]:
    """The web explorer's page and assets (`api.explorer`), unless the caller passes them."""
    if importlib.util.find_spec("api.explorer") is None:
        return []
    from api import explorer

    return [route for route in explorer.ROUTES if route not in given]


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
            # This process's share of the live gauges (worker states) ends with its app.
            services.metrics.process_ended()

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
    """Litestar with segment-preserving paths, request metrics and one JSON access-log line.

    Requests pass `surface` (CORS, OPTIONS/HEAD/405, compression) on their way in. A
    client that disconnects before its whole answer is counted and logged as 499; a
    read (GET, HEAD) is cancelled then, a stream included.

    `drain()` (the server calls it when asked to stop) ends open streams (the live
    tail) as if their clients had gone, so a stop does not wait for them.
    """

    services: Services
    surface: ASGIApp  # api.surface: CORS, methods and compression around Litestar
    _draining: asyncio.Event | None = None

    def drain(self) -> None:
        """Tell streaming responses in flight that the client is gone (call on the app's loop)."""
        if self._draining is None:
            self._draining = asyncio.Event()
        self._draining.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if self._draining is None:
            self._draining = asyncio.Event()
        draining = self._draining
        # The client's messages, read one ahead: a client gone before its answer is a 499.
        watch = ClientWatch(receive, draining)
        raw = scope.get("raw_path")
        if raw and b"%" in raw:
            scope = {**scope, "path": _router_path(raw.split(b"?", 1)[0])}
        # As the client sent it: the methods layer routes a HEAD as GET while it runs.
        method = str(scope["method"])
        started = time.perf_counter()
        self.services.metrics.started()
        status = 500
        open_body = False  # a response started and not finished
        dropped = False  # the client left before the whole answer: nobody reads the rest
        took: list[float] = []  # the request's duration, once counted (at the answer's end)

        def count() -> float:
            """Count the request once (in the metrics), with its status and duration."""
            if not took:
                took.append(time.perf_counter() - started)
                route = _route_template(scope)
                self.services.metrics.observe(method, route, status, took[0])
            return took[0]

        async def sending(message: Message) -> None:
            nonlocal status, open_body, dropped
            if message["type"] == "http.response.body" and message.get("more_body"):
                # A turn for the loop between a stream's parts: one that never waits (over the
                # memory store) would not let the server notice a client that left.
                await asyncio.sleep(0)
            if watch.gone.is_set() and not dropped:
                dropped, status, open_body = True, CLIENT_CLOSED, False
            if dropped:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    count()
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                open_body = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                open_body = False
                # Counted before the client can have the whole response: a scrape made
                # after a response, on any worker, includes it.
                count()
            await send(message)

        try:
            await watch.settle()
            if watch.gone.is_set():  # gone before anything ran: run nothing
                status = CLIENT_CLOSED
            elif method in READS:
                # A read whose client left is cancelled: nothing more is computed or sent.
                app = self.surface(scope, watch.receive, sending)
                if await watch.answer(app, lambda: bool(took)):
                    status = CLIENT_CLOSED
            else:
                # A change runs to its end (half of one would be worse); its answer is dropped.
                await self.surface(scope, watch.receive, sending)
            if open_body and draining.is_set():  # a stream cut short by drain(): end it cleanly
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if draining.is_set() and not took and not open_body:
                status = 503  # cut at the stop before any answer: the server answers it 503
            raise
        finally:
            await watch.close()
            seconds = count()
            route = _route_template(scope)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    json.dumps(
                        {
                            "method": method,
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
    supervisor: Supervisor | None = None,
    capture: str | None = None,
    metrics: Metrics | None = None,
    debug: bool = False,
    extra_routes: Sequence[Any] = (),
) -> EventStoreApp:
    """The API app; pass `store` to serve an already open store (tests, `run`), else it opens one.

    `caught_up` tells readiness whether this process's ingester has caught up once
    (None: this process does not capture). `supervisor` runs this process's workers
    (`run`; the app makes its own for rebuilds otherwise) and `capture` names the
    capture worker whose failure, or retrying past UNHEALTHY_AFTER, makes it unready.
    `metrics`: the figures the app reports (pass the one the background workers'
    supervisor reports to; a new one by default).
    """
    services = Services(
        settings,
        store=store,
        clock=clock,
        projections=projections_,
        caught_up=caught_up,
        supervisor=supervisor,
        capture=capture,
        metrics=metrics,
    )
    v1 = Router(
        "/v1",
        route_handlers=_documented(
            [
                *streams.ROUTES,
                *events.ROUTES,
                *projections.ROUTES,
                *workers.ROUTES,
                *proofs.ROUTES,
            ],
            V1_PROBLEMS,
        ),
        guards=[_read_guard],
        security=READ_SECURITY if settings.read_keys else None,
    )
    # Checkpoints and proofs reveal only hashes: public, whatever READ_KEYS says.
    public = Router("/v1", route_handlers=_documented(proofs.PUBLIC_ROUTES, (400, 503)), guards=[])
    admin = Router(
        "/v1/admin",
        route_handlers=_documented(
            [
                *projections.ADMIN_ROUTES,
                *workers.ADMIN_ROUTES,
                *erasures.ADMIN_ROUTES,
                *subscriptions.ADMIN_ROUTES,
            ],
            ADMIN_PROBLEMS,
        ),
        guards=[_admin_guard],
        security=ADMIN_SECURITY,
    )
    app = EventStoreApp(
        route_handlers=[
            v1,
            public,
            admin,
            *_documented(health.ROUTES, (400,)),
            *_explorer_routes(extra_routes),
            *extra_routes,
        ],
        plugins=[EventStorePlugin(services)],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=JsonSafeRequest,
        before_request=refuse_unknown_parameters,
        request_max_body_size=MAX_BODY,
        openapi_config=OpenAPIConfig(
            title="eventstore: audit log and event store for MongoDB",
            version=VERSION,
            path="/schema",
            components=Components(security_schemes=SECURITY_SCHEMES),
            render_plugins=[SchemaPages(path="/"), RedocRenderPlugin()],
        ),
        debug=debug,
        logging_config=None,
    )
    app.services = services
    app.surface = http_surface(app, settings.cors_origins)
    return app
