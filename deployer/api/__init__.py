"""The HTTP API: `create_app(settings)` (also `uvicorn --factory deployer.api:create_app`) and `serve`.

It stores requests and queues tasks; it never calls Function Compute and never imports `tasks`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from deployer import __version__
from deployer import celery_app as queue
from deployer.api import docs as api_docs
from deployer.api import problems
from deployer.api.deps import KeyRateLimiter
from deployer.api.hot_cache import ChangeFeed, HotCache
from deployer.api.metrics import ApiMetrics, MetricsMiddleware
from deployer.api.routes import (
    client_config,
    deployments,
    events,
    health,
    logs,
    reads,
    reconcile,
    releases,
    service,
    tasks,
)
from deployer.crypto import Vault
from deployer.settings import Settings, get_settings
from deployer.store import migrate
from deployer.store.db import normalise_url

log = logging.getLogger("deployer.api")


#: The `deployments` routes of deployments.py (writes), reads.py and events.py in the order one module declared
#: them before the split: the first route of a path answers the path's 405s (its methods are the Allow
#: header), and the OpenAPI document lists a path's operations in route order. A route not named goes last.
DEPLOYMENT_ROUTE_ORDER = (
    "create_deployment",
    "list_deployments",
    "read_deployment",
    "redeploy",
    "rotate_token",
    "delete_deployment",
    "cancel_deployment",
    "stream_events",
)


def _deployments_router() -> APIRouter:
    rank = {name: i for i, name in enumerate(DEPLOYMENT_ROUTE_ORDER)}
    routes = [*deployments.router.routes, *reads.router.routes, *events.router.routes]
    router = APIRouter()
    router.routes.extend(sorted(routes, key=lambda route: rank.get(getattr(route, "name", ""), len(rank))))
    return router


def _unique_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def _start(settings: Settings) -> None:
    migrate.upgrade(settings.effective_database_url)
    queue.producer(settings)  # builds the Celery app (and the embedded broker's folders) once


def _start_read_cache(app: FastAPI, settings: Settings) -> ChangeFeed | None:
    """On PostgreSQL, the GET cache and the thread that keeps it exact; on SQLite there is no feed."""
    url = normalise_url(settings.effective_database_url)
    if not settings.read_cache_enabled or not url.startswith("postgresql"):
        return None
    cache = HotCache(ttl_s=settings.read_cache_ttl_s, max_entries=settings.read_cache_max_entries)
    app.state.read_cache = cache  # bypassed until the feed is listening
    app.state.change_feed = ChangeFeed(url, cache).start()
    return app.state.change_feed


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_start, settings)
        feed = _start_read_cache(app, settings)
        log.info(
            "mcp-fc API ready (database migrated, broker %s, read cache %s)",
            settings.effective_broker_url.split("://")[0],
            "on the change feed" if feed else "off",
        )
        try:
            yield
        finally:
            if feed is not None:
                await anyio.to_thread.run_sync(feed.stop)
            app.state.read_cache = app.state.change_feed = None

    app = FastAPI(
        title="mcp-fc",
        version=__version__,
        summary="Deploy stdio MCP servers to Alibaba Cloud Function Compute 3.0",
        lifespan=lifespan,
        docs_url=None,  # deployer/api/docs.py serves a pinned, integrity-checked Swagger UI instead
        redoc_url=None,
        openapi_url="/openapi.json" if settings.effective_docs_enabled else None,
        generate_unique_id_function=_unique_id,
    )
    app.state.settings = settings
    app.state.vault = Vault.from_settings(settings)
    app.state.limiter = KeyRateLimiter(settings.post_rate_limit_per_min)
    app.state.metrics = ApiMetrics()
    app.state.read_cache = None  # deployer/api/hot_cache.py, set up at start-up on PostgreSQL
    app.state.change_feed = None
    app.state.metrics.watch_read_cache(lambda: app.state.read_cache)
    if settings.metrics_enabled:
        app.state.metrics.watch_health(settings)

    problems.install(app)
    if settings.effective_docs_enabled:
        api_docs.install(app)
    app.include_router(health.router)
    if settings.metrics_enabled:
        app.include_router(health.metrics_router)
    app.include_router(_deployments_router())
    app.include_router(client_config.router)
    app.include_router(releases.router)
    app.include_router(logs.router)
    app.include_router(reconcile.router)
    app.include_router(tasks.router)
    app.include_router(service.router)

    # Last added is outermost: metrics see the final status, 500s are produced inside them.
    app.add_middleware(problems.BodyLimitMiddleware, limit=problems.MAX_BODY_BYTES)
    app.add_middleware(problems.UnexpectedErrorMiddleware)
    app.add_middleware(problems.ControlCharacterMiddleware)
    if settings.metrics_enabled:
        app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def serve(settings: Settings | None = None) -> None:
    """Run the API with uvicorn on settings.api_host:api_port (`mcp-fc api`)."""
    import uvicorn

    settings = settings or get_settings()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, proxy_headers=True)
