"""POST /api/v1/graphs/convert: a workflow in another format (ComfyUI's) as our graph file."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from engine.errors import GraphValidationError
from engine.formats import convert_document
from engine.validate import validate_graph
from server.errors import ApiError
from server.payloads import json_response, parse_model, read_json
from server.schemas import ConvertedGraphBody, ConvertGraph
from server.services import services


async def convert_graph(request: web.Request) -> web.Response:
    """Convert and check a document (no models folder check); 400 lists every error, located in it."""
    svc = services(request)
    registry = svc.executor.registry
    if request.content_type == "image/png":
        document = await _png_document(request, registry, svc.settings.max_upload_bytes)
    else:
        document = parse_model(
            ConvertGraph, await read_json(request, svc.settings.max_json_bytes)
        ).document
    try:
        converted = convert_document(document, registry)
        try:
            validated = await asyncio.to_thread(validate_graph, converted.document, registry)
        except GraphValidationError as exc:
            raise converted.blamed(exc) from None
    except GraphValidationError as exc:
        raise ApiError(
            400,
            "invalid_graph",
            f"the document cannot be converted ({len(exc.errors)} error(s))",
            errors=exc.errors,
        ) from None
    return json_response(ConvertedGraphBody(format=converted.format, graph=validated.document))


async def _png_document(request: web.Request, registry: Any, limit: int) -> Any:
    """The workflow a PNG body carries (ComfyUI's text chunks, say); 400 if it carries none."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    data = await request.read()
    if len(data) > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    for fmt in registry.formats:
        found = await asyncio.to_thread(fmt.read_file, data)
        if found is not None:
            return found
    raise ApiError(400, "bad_request", "the PNG carries no workflow")
