"""System routes: node catalog, graph schema, system stats, free memory, and the API docs."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from aiohttp import web

from engine.graph import graph_json_schema
from engine.subgraph import list_subgraphs
from server.errors import ApiError
from server.payloads import json_response, parse_model, read_json
from server.schemas import FreedMemory, FreeMemory
from server.services import services
from server.stats import collect_stats, release_accelerator_memory

WEBSOCKET_DOC = Path(__file__).resolve().parent.parent / "docs" / "api" / "websocket.md"


async def node_catalog(request: web.Request) -> web.Response:
    """GET /api/v1/nodes: every node type with its inputs, outputs and current choices."""
    svc = services(request)
    catalog = await asyncio.to_thread(svc.executor.registry.catalog, svc.paths)
    # Subgraph files an editor can offer, as {"type": "Subgraph", "subgraph": NAME} nodes.
    catalog["subgraphs"] = await asyncio.to_thread(list_subgraphs, svc.executor.registry)
    return web.json_response(catalog)


async def graph_schema(request: web.Request) -> web.Response:
    """GET /api/v1/schema/graph: the JSON Schema of graph documents."""
    return web.json_response(graph_json_schema())


async def system_stats(request: web.Request) -> web.Response:
    """GET /api/v1/system: versions, memory, devices, cache and queue."""
    svc = services(request)
    counts = svc.jobs.queue_status().data.model_dump()
    stats = await asyncio.to_thread(collect_stats, svc.executor.cache, counts)
    backend = svc.jobs.backend
    stats.backend, stats.workers = backend.kind, backend.workers()  # type: ignore[assignment]
    return json_response(stats)


async def free_memory(request: web.Request) -> web.Response:
    """POST /api/v1/free: move cached models to the CPU and/or drop cached outputs.

    Entries the running job still needs are pinned, so this is safe while a job runs.
    """
    svc = services(request)
    body = parse_model(FreeMemory, await read_json(request, 4096, optional=True))
    cache = svc.executor.cache

    def release() -> FreedMemory:
        offloaded = cache.offload_models() if body.unload_models else 0
        before = len(cache)
        if body.clear_cache:
            cache.clear()
        dropped = before - len(cache)
        gc.collect()
        release_accelerator_memory()
        return FreedMemory(
            offloaded_models=offloaded, dropped_entries=dropped, cache_usage=cache.usage()
        )

    return json_response(await asyncio.to_thread(release))


async def websocket_doc(request: web.Request) -> web.Response:
    """GET /api/v1/docs/websocket: the websocket protocol, as Markdown."""
    try:
        text = await asyncio.to_thread(WEBSOCKET_DOC.read_text, encoding="utf-8")
    except OSError:
        raise ApiError(404, "not_found", "the websocket documentation is not installed") from None
    return web.Response(text=text, content_type="text/markdown", charset="utf-8")
