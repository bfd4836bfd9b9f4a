"""The objects one server instance shares between its handlers, stored on the aiohttp app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from engine.config import Paths
from engine.executor import Executor
from server.hub import EventHub
from server.jobs import JobService
from server.settings import ServerSettings
from server.store import StoreThread


@dataclass
class Services:
    """Settings, folders, the shared executor, the store, the event hub and the job queue."""

    settings: ServerSettings
    paths: Paths
    executor: Executor
    store: StoreThread
    hub: EventHub
    jobs: JobService
    # Uploads choose a free name and then write it; one at a time, so two cannot pick the same.
    upload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    """The services of the app that received `request`."""
    return request.app[SERVICES]
