"""ComfyUI's websocket: GET /ws?clientId= (and /api/ws) in ComfyUI's dialect on our event hub."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from server.comfy.codec import ComfyCodec
from server.comfy.state import node_ids_for
from server.errors import ApiError
from server.schemas import CLIENT_ID_PATTERN
from server.ws import serve_websocket


async def comfy_websocket(request: web.Request) -> web.StreamResponse:
    """GET /ws?clientId= (and /api/ws): ComfyUI's websocket dialect on our event hub."""
    client_id = request.query.get("clientId") or uuid.uuid4().hex
    if not re.fullmatch(CLIENT_ID_PATTERN, client_id):
        raise ApiError(400, "bad_request", f"clientId must match {CLIENT_ID_PATTERN}")
    codec = ComfyCodec(client_id, lambda job_id: node_ids_for(request, job_id))
    return await serve_websocket(request, codec, client_id, [])
