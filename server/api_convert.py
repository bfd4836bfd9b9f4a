"""POST /api/v1/graphs/convert: a workflow in another format (ComfyUI's) as our graph file."""

from __future__ import annotations

import asyncio

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
    body = parse_model(ConvertGraph, await read_json(request, svc.settings.max_json_bytes))
    registry = svc.executor.registry
    try:
        converted = convert_document(body.document, registry)
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
