"""Builds the aiohttp application: middlewares, routes, and the services' start and stop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from engine.executor import Executor
from server.backends.base import Backend
from server.comfy.routes import add_comfy_routes
from server.errors import ApiError, error_code, error_middleware, error_response
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
    add_comfy_routes(app)  # ComfyUI's protocol on the same queue (server/comfy/)
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
        jobs = JobService(
            executor,
            store,
            hub,
            backend,
            history_max_jobs=settings.history_max_jobs,
            history_max_age_s=settings.history_max_age_s,
        )
        await jobs.start()
        app[SERVICES] = Services(settings, paths, executor, store, hub, jobs)
        log.info("job database: %s", store.path)
        try:
            yield
        finally:
            await jobs.stop(settings.shutdown_grace_s)
            await store.close()

    return lifecycle


def make_runner(app: web.Application) -> web.AppRunner:
    """An AppRunner whose protocol-level errors (malformed HTTP that never reaches a handler)
    are answered with our JSON error body rather than aiohttp's text/plain page."""
    return _JsonErrorRunner(app, access_log=None)


class _JsonErrorRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            log.debug("malformed request from %s: %s", request.remote, message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; the connection is closed")
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
        text = reason if status >= 500 else f"{reason}: {message or exc or 'malformed request'}"
        response = error_response(ApiError(status, error_code(status), text[:500]))
        response.force_close()
        return response


class _JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class _JsonErrorRunner(web.AppRunner):
    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself; only its handler factory changes.
        server.__class__ = _JsonErrorServer
        return server


async def _close_websockets(app: web.Application) -> None:
    if SERVICES in app:
        await close_all(app[SERVICES])
