"""A real server on 127.0.0.1 (free port) in a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from engine.config import Paths
from engine.executor import Executor
from engine.registry import Registry
from server.app import create_app, make_runner
from server.backends.base import Backend
from server.messages import parse_preview_frame
from server.services import SERVICES, Services
from server.settings import ServerSettings
from tests.server.nodes import server_registry

T = TypeVar("T")
TIMEOUT = 20.0
API = "/api/v1"


@dataclass
class RunningServer:
    """A started server: its URL, folders and services, and how to stop it."""

    url: str
    paths: Paths
    settings: ServerSettings
    app: web.Application
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: web.AppRunner

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def origin(self) -> str:
        return self.url

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(_wrap(make), self.loop).result(TIMEOUT)

    def stop(self) -> None:
        """Graceful shutdown: close sockets, interrupt the running job, close the store."""
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


async def _wrap(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def start_server(
    root: Path,
    settings: ServerSettings | None = None,
    *,
    registry: Registry | None = None,
    models: Path | None = None,
    backend: Callable[[Paths], Backend] | None = None,
    boot_timeout: float = TIMEOUT,
) -> RunningServer:
    """Start a server whose folders are under `root`, with the test node registry by default.

    `backend` makes the backend jobs run on from the server's folders (in-process if None).
    """
    paths = Paths.resolve(
        models=models or root / "models", input=root / "input", output=root / "output"
    )
    settings = replace(settings or ServerSettings(), host="127.0.0.1", port=0, shutdown_grace_s=5)
    executor = Executor(registry or server_registry(), paths=paths)
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    async def boot() -> None:
        app = create_app(executor, settings, backend(paths) if backend else None)
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        started.update(app=app, runner=runner, port=runner.addresses[0][1])

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(boot())
        except BaseException as exc:
            started["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=serve, name="test-server", daemon=True)
    thread.start()
    if not ready.wait(boot_timeout):
        raise TimeoutError("the server did not start")
    if "error" in started:
        raise started["error"]
    return RunningServer(
        url=f"http://127.0.0.1:{started['port']}",
        paths=paths,
        settings=settings,
        app=started["app"],
        loop=loop,
        thread=thread,
        runner=started["runner"],
    )


class Client:
    """A websocket client that records every message, with helpers to wait for some."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.previews: list[tuple[dict[str, Any], bytes]] = []

    async def next(self) -> dict[str, Any]:
        """The next JSON message (binary preview frames are collected on the side)."""
        while True:
            message = await self.ws.receive(timeout=TIMEOUT)
            if message.type == aiohttp.WSMsgType.BINARY:
                self.previews.append(parse_preview_frame(message.data))
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket ended: {message.type} {message.data!r}")
            data = message.json()
            self.messages.append(data)
            return data

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Read until a message matches."""
        while True:
            message = await self.next()
            if predicate(message):
                return message

    async def until_terminal(self, job_id: str) -> dict[str, Any]:
        """Read until the job's last event."""
        return await self.until(
            lambda m: m["type"] in TERMINAL and m["data"].get("job_id") == job_id
        )

    async def sync(self) -> None:
        """Round-trip a ping: afterwards, everything the server queued before it has arrived."""
        await self.ws.send_json({"type": "ping", "data": {"marker": id(self)}})
        await self.until(lambda m: m["type"] == "pong")

    def job_events(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """The job messages received, optionally of one job."""
        return [
            m
            for m in self.messages
            if "seq" in m["data"] and (job_id is None or m["data"]["job_id"] == job_id)
        ]


TERMINAL = {"job_finished", "job_failed", "job_interrupted", "job_cancelled"}


async def post_job(http: aiohttp.ClientSession, url: str, body: dict) -> dict[str, Any]:
    """Submit a job (`POST /api/v1/jobs`), asserting it was accepted; returns the 201 body."""
    async with http.post(f"{url}{API}/jobs", json=body) as response:
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created


async def submit(http: aiohttp.ClientSession, url: str, body: dict) -> str:
    """Submit a job, asserting it was accepted; returns its id."""
    return str((await post_job(http, url, body))["job_id"])


async def submit_and_wait(http: aiohttp.ClientSession, url: str, document: dict) -> str:
    """Submit a graph and poll its job until it is no longer pending or running; returns its id."""
    job_id = await submit(http, url, {"graph": document})
    for _ in range(400):
        async with http.get(f"{url}{API}/jobs/{job_id}") as r:
            if (await r.json())["status"] not in ("pending", "running"):
                return job_id
        await asyncio.sleep(0.025)
    raise TimeoutError(job_id)


def graph(*, value: int = 2, steps: int = 3, delay: float = 0.0, image: bool = True) -> dict:
    """Constant → SlowSteps → (SaveTestImage | ShowInt)."""
    output = (
        {"type": "SaveTestImage", "links": {"value": "slow.value"}}
        if image
        else {"type": "ShowInt", "links": {"value": "slow.value"}}
    )
    return {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": value}},
            "slow": {
                "type": "SlowSteps",
                "inputs": {"steps": steps, "delay": delay},
                "links": {"x": "a.value"},
            },
            "out": output,
        }
    }


def gate_graph(name: str, value: int = 1) -> dict:
    """Constant → Gate(name) → ShowInt: runs until the test opens the gate."""
    return {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": value}},
            "gate": {"type": "Gate", "inputs": {"name": name}, "links": {"x": "a.value"}},
            "out": {"type": "ShowInt", "links": {"value": "gate.value"}},
        }
    }
