"""`eventstore run` (ingester, projector and API in one process) and the serving `demo`.

The service comes from the composition root (`bootstrap`); the API's lifespan starts
and stops its workers: SIGINT/SIGTERM stop taking work, leave the checkpoints stored
with each batch, release the leases and exit 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import secrets
from typing import Any, TextIO
from urllib.parse import quote

import msgspec

from eventstore.cli.bootstrap import open_service, projections
from eventstore.cli.capture import refuse_workload_elsewhere, workload_options
from eventstore.cli.common import EXIT_OK, CliError, frozen_gc, settings_from
from eventstore.cli.serve import bind, clean_metrics_dir, stop_serving_on_signals
from eventstore.settings import Settings


async def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore run`: capture, project and serve the API, until SIGINT/SIGTERM."""
    settings = settings_from(args)
    refuse_workload_elsewhere(args, settings.source)
    await serve_all(settings, args, out)
    return EXIT_OK


async def serve_all(
    settings: Settings,
    args: argparse.Namespace,
    out: TextIO,
    *,
    banner: Any = None,
    on_bound: Any = None,
) -> None:
    """Open the service, and serve the API with the workers in its lifespan."""
    from api.server import server

    clean_metrics_dir()  # an operator's PROMETHEUS_MULTIPROC_DIR: no earlier run's counts
    sock = bind(args.host, args.port)  # a port in use is one clear line, before anything starts
    if on_bound is not None:
        on_bound()
    try:
        async with open_service(
            settings, store=args.store, capture=True, workload=workload_options(args)
        ) as service:
            await service.apply_subscriptions()
            workers = service.workers()
            store = service.store

            def started(app: Any) -> None:
                if banner is not None:
                    app.services.spawn(banner(store))

            app = service.app(workers=workers, on_started=started)
            srv = server(app, host=args.host, port=args.port)
            stop_serving_on_signals(srv)
            try:
                with frozen_gc():  # this process is the service's: start-up's objects stay
                    await srv.serve(sockets=[sock])
            except SystemExit:  # uvicorn exits when the app's startup fails; it has logged why
                raise CliError("the service did not start (see the log above)") from None
            if not srv.started:
                raise CliError("the service did not start (see the log above)")
            if workers.failure is not None:
                raise CliError(f"capture failed: {workers.failed_error}")
    finally:
        sock.close()


async def serve_demo(args: argparse.Namespace, out: TextIO) -> int:
    """`eventstore demo`: `run` on memory:// with the simulator, printing where to look."""
    settings = settings_from(args)
    overrides: dict[str, Any] = {"uri": "memory://", "source": "simulator"}
    generated = None
    if not settings.admin_key:
        generated = secrets.token_urlsafe(24)
        overrides["admin_key"] = generated
    settings = msgspec.structs.replace(settings, **overrides)
    projections(settings)  # a plugin that cannot be used is refused before the banner
    base = f"http://{_display_host(args.host)}:{args.port}"
    lines = [
        f"eventstore demo: serving {base} (Ctrl-C to stop)",
        f"  API docs       {base}/schema",
        f"  OpenAPI        {base}/schema/openapi.json",
    ]
    if importlib.util.find_spec("api.explorer") is not None:
        lines.insert(2, f"  explorer       {base}/explorer")
    if generated is not None:
        lines.append(
            f"  admin key      {generated}  (generated; set EVENTSTORE_ADMIN_KEY to choose)"
        )

    def announce() -> None:
        print("\n".join(lines), file=out, flush=True)

    async def example(store: Any) -> None:
        stream = settings.collections[0]
        seen = 0
        while True:
            found = await store.events.entities(stream, limit=1)
            if found:
                key = found[0].entity_key
                path_key = quote(key, safe="")
                print(
                    f"  example order  {base}/v1/streams/{stream}/entities/{path_key}/history",
                    file=out,
                    flush=True,
                )
                return
            await store.events.wait_for_append(seen, 1.0)
            seen = (await store.events.head()).seq

    await serve_all(settings, args, out, banner=example, on_bound=announce)
    return EXIT_OK


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)


__all__ = ["cmd_run", "serve_demo"]
