"""ComfyUI's file routes: GET /view, POST /upload/image and /upload/mask, on our file handlers."""

from __future__ import annotations

import json
import re

from aiohttp import web
from yarl import URL

from server import api_files


async def view(request: web.Request) -> web.StreamResponse:
    """GET /view: ComfyUI's query (annotated names, type temp) served by our view route."""
    query = dict(request.query)
    filename = query.get("filename", "")
    annotated = re.fullmatch(r"(.*) \[(output|input|temp)\]", filename)
    if annotated:
        query["filename"], query["type"] = annotated.group(1), annotated.group(2)
    if query.get("type") == "temp":
        query["type"] = "output"  # previews are written to the output folder here
    allowed = {k: v for k, v in query.items() if k in ("filename", "subfolder", "type", "token")}
    return await api_files.view_file(request.clone(rel_url=URL(request.path).with_query(allowed)))


async def upload_image(request: web.Request) -> web.Response:
    """POST /upload/image: our de-duplicating upload, answered as `{name, subfolder, type}`."""
    response = await api_files.upload_image(request)
    stored = json.loads(response.text or "{}")
    return web.json_response(
        {"name": stored["name"], "subfolder": stored["subfolder"], "type": "input"}
    )


async def upload_mask(request: web.Request) -> web.Response:
    """POST /upload/mask: the uploaded image's alpha put onto `original_ref`, saved as an upload."""
    from server.comfy.masks import upload_mask as store_mask

    return web.json_response(await store_mask(request))
