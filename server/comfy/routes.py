"""ComfyUI's HTTP routes and websocket, each at `/path` and `/api/path`, on our queue and store.

Jobs submitted here are ordinary jobs: they share the cache, the history and the event logs
with /api/v1, and the same security middleware guards them. A ComfyUI prompt id is our job id.
This table is the one place that knows every handler; each module of server/comfy/ holds a group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server.comfy import files, history, prompts, system
from server.comfy.state import COMFY_STATE, ComfyState
from server.comfy.websocket import comfy_websocket

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/prompt", prompts.post_prompt),
    ("GET", "/prompt", prompts.get_prompt),
    ("GET", "/queue", prompts.get_queue),
    ("POST", "/queue", prompts.post_queue),
    ("POST", "/interrupt", prompts.post_interrupt),
    ("GET", "/history", history.get_history),
    ("POST", "/history", history.post_history),
    ("GET", "/history/{prompt_id}", history.get_history_item),
    ("GET", "/view", files.view),
    ("POST", "/upload/image", files.upload_image),
    ("POST", "/upload/mask", files.upload_mask),
    ("GET", "/object_info", system.get_object_info),
    ("GET", "/object_info/{node_class}", system.get_object_info_class),
    ("GET", "/system_stats", system.system_stats),
    ("GET", "/models", system.get_models),
    ("GET", "/models/{folder}", system.get_model_folder),
    ("GET", "/embeddings", system.empty_list),
    ("GET", "/extensions", system.empty_list),
    ("GET", "/features", system.features),
    ("POST", "/free", system.post_free),
)


def comfy_paths() -> set[tuple[str, str]]:
    """(method, path) of every facade route, as registered; ComfyUI's protocol, not in our OpenAPI."""
    paths = {(m, p) for m, path, _ in ROUTES for p in (path, f"/api{path}")}
    return paths | {("GET", "/api/ws")}


def add_comfy_routes(app: web.Application) -> None:
    """Install the facade: every route at `/path` and `/api/path`, and `/api/ws`.

    `/ws` itself is our websocket; it hands connections that pass `clientId` to this dialect.
    """
    app[COMFY_STATE] = ComfyState()
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, f"/api{path}", handler)
    app.router.add_route("GET", "/api/ws", comfy_websocket)
