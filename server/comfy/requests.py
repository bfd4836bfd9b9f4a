"""What every ComfyUI handler shares: the request body, prompt-id lists, the ComfyUI format."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.errors import ApiError
from server.payloads import read_json
from server.services import services


def comfy_format(request: web.Request) -> Any:
    """The ComfyUI document format the node packages registered (nodes/comfy/document.py)."""
    for fmt in services(request).executor.registry.formats:
        if fmt.name == "comfyui":
            return fmt
    raise ApiError(404, "not_found", "no node package provides the ComfyUI format")


async def read_body(request: web.Request, limit: int, *, optional: bool = False) -> Any:
    """A JSON body whatever its Content-Type: ComfyUI's own example clients post JSON through
    urllib, which labels it as a form. Origin and Host checks still guard these routes."""
    return await read_json(request, limit, optional=optional, any_media_type=True)


def id_list(value: Any) -> list[str]:
    """A `delete` list of prompt ids; anything else deletes nothing."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, "bad_request", "delete must be a list of prompt ids")
    return [v for v in value if isinstance(v, str)]


def empty_response() -> web.Response:
    """ComfyUI's answer to a request that returns nothing: 200 with no body."""
    return web.Response(status=200)
