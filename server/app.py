"""Builds the aiohttp application: middlewares, routes, and the services' start and stop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from engine.executor import Executor
from server.backends.base import Backend
from server.errors import error_middleware
from server.hub import EventHub
from server.jobs import JobService
from server.routes import ROUTES
from server.security import security_middleware
from server.services import SERVICES, Services
from server.settings import ServerSettings
from server.store import StoreThread, database_path
from server.ws import close_all

log = logging.getLogger(__name__)


def create_app(
    executor: Executor, settings: ServerSettings | None = None, backend: Backend | None = None
) -> web.Application:
    """The server for one executor (and so one registry and one set of folders).

    Jobs run on `backend`; by default in this process, through `executor` and its cache.
    """
    settings = settings or ServerSettings()
    app = web.Application(
        middlewares=[error_middleware, security_middleware(settings)],
        client_max_size=settings.max_request_bytes,
    )
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.cleanup_ctx.append(_lifecycle(executor, settings, backend))
    app.on_shutdown.append(_close_websockets)
    return app


def _lifecycle(
    executor: Executor, settings: ServerSettings, backend: Backend | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        paths = executor.paths
        for folder in (paths.output, paths.input):
            folder.mkdir(parents=True, exist_ok=True)
        store = StoreThread(database_path(paths.output))
        await store.open()
        hub = EventHub()
        jobs = JobService(executor, store, hub, backend)
        await jobs.start()
        app[SERVICES] = Services(settings, paths, executor, store, hub, jobs)
        log.info("job database: %s", store.path)
        try:
            yield
        finally:
            await jobs.stop(settings.shutdown_grace_s)
            await store.close()

    return lifecycle


async def _close_websockets(app: web.Application) -> None:
    if SERVICES in app:
        await close_all(app[SERVICES])
