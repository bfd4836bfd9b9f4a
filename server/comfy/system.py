"""ComfyUI's catalog and system routes: /object_info, /models, /system_stats, /features, /free."""

from __future__ import annotations

import asyncio
import gc
import platform
import sys

from aiohttp import web

from server.comfy.requests import comfy_format, empty_response, read_body
from server.errors import ApiError
from server.services import services
from server.stats import collect_stats, release_accelerator_memory

COMFYUI_VERSION = "0.3.64"


async def get_object_info(request: web.Request) -> web.Response:
    """GET /object_info: ComfyUI node definitions of the mapped classes."""
    svc = services(request)
    fmt = comfy_format(request)
    info = await asyncio.to_thread(fmt.object_info, svc.executor.registry, svc.paths)
    return web.json_response(info)


async def get_object_info_class(request: web.Request) -> web.Response:
    """GET /object_info/{class}: one definition, or `{}` for a class we do not map."""
    svc = services(request)
    fmt = comfy_format(request)
    info = await asyncio.to_thread(fmt.object_info, svc.executor.registry, svc.paths)
    name = request.match_info["node_class"]
    return web.json_response({name: info[name]} if name in info else {})


async def system_stats(request: web.Request) -> web.Response:
    """GET /system_stats in ComfyUI's shape."""
    svc = services(request)
    counts = svc.jobs.queue_status().data.model_dump()
    stats = await asyncio.to_thread(collect_stats, svc.executor.cache, counts)
    system = {
        "os": platform.system().lower(),
        "ram_total": stats.system.get("ram_total"),
        "ram_free": stats.system.get("ram_available", stats.system.get("ram_free")),
        "comfyui_version": COMFYUI_VERSION,
        "python_version": sys.version,
        "pytorch_version": stats.versions.get("torch"),
        "embedded_python": False,
        "argv": sys.argv,
    }
    devices = [
        {
            "name": d.name,
            "type": d.type,
            "index": d.index,
            "vram_total": d.memory_total or 0,
            "vram_free": d.memory_free or 0,
            "torch_vram_total": d.memory_total or 0,
            "torch_vram_free": d.memory_free or 0,
        }
        for d in stats.devices
    ]
    return web.json_response({"system": system, "devices": devices})


async def get_models(request: web.Request) -> web.Response:
    """GET /models: the model folders."""
    folders = await asyncio.to_thread(comfy_format(request).model_folders, services(request).paths)
    return web.json_response(list(folders))


async def get_model_folder(request: web.Request) -> web.Response:
    """GET /models/{folder}: the files in one model folder; 404 for an unknown folder."""
    folder = request.match_info["folder"]
    folders = await asyncio.to_thread(comfy_format(request).model_folders, services(request).paths)
    if folder not in folders:
        raise ApiError(404, "not_found", f"no model folder {folder!r}")
    return web.json_response(folders[folder])


async def empty_list(request: web.Request) -> web.Response:
    """GET /embeddings, /extensions: none here (no textual inversion, no frontend extensions)."""
    return web.json_response([])


async def features(request: web.Request) -> web.Response:
    """GET /features: the server's feature flags."""
    limit = services(request).settings.max_upload_bytes
    return web.json_response({"supports_preview_metadata": False, "max_upload_size": limit})


async def post_free(request: web.Request) -> web.Response:
    """POST /free: `unload_models` moves cached models to the CPU, `free_memory` drops the cache."""
    svc = services(request)
    body = await read_body(request, 4096, optional=True)
    cache = svc.executor.cache

    def release() -> None:
        if body.get("unload_models") is True:
            cache.offload_models()
        if body.get("free_memory") is True:
            cache.clear()
        gc.collect()
        release_accelerator_memory()

    await asyncio.to_thread(release)
    return empty_response()
