"""The route table: each route's handler together with what the OpenAPI description says about it.

The app registers exactly these routes and the OpenAPI file is generated from them, so the two
cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aiohttp import web

from server import api_convert, api_editor, api_files, api_jobs, api_system, ws
from server.comfy.websocket import comfy_websocket
from server.openapi import openapi_document
from server.route_types import Body, Route
from server.schemas import (
    CancelResult,
    ConvertedGraphBody,
    ConvertGraph,
    EventPage,
    EventQuery,
    FreedMemory,
    FreeMemory,
    JobCreated,
    JobDeleted,
    JobDetail,
    JobListQuery,
    JobPage,
    JobSummary,
    QueueCleared,
    QueueView,
    SubmitJob,
    SystemStats,
    UploadedImage,
    ViewQuery,
    WebsocketQuery,
)
from server.settings import API_PREFIX as API


@lru_cache(maxsize=1)
def api_description() -> dict[str, Any]:
    """The OpenAPI description of ROUTES, built on first use."""
    return openapi_document(ROUTES)


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json: the OpenAPI 3.1 description of this API."""
    return web.json_response(api_description())


_BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """GET /ws: ComfyUI's dialect for clients that say `?clientId=` (as ComfyUI's own do), else
    the native protocol; the one place that knows both handlers."""
    if "clientId" in request.query:
        return await comfy_websocket(request)
    return await ws.native_websocket(request)


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        f"{API}/jobs",
        api_jobs.submit_job,
        "Validate a graph and queue it; 400 lists every validation error and queues nothing.",
        "jobs",
        {201: JobCreated},
        body=SubmitJob,
        errors=(400, 413),
    ),
    Route(
        "GET",
        f"{API}/jobs",
        api_jobs.list_jobs,
        "List jobs, newest first, filtered by status and client id, paged.",
        "jobs",
        {200: JobPage},
        query=JobListQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        f"{API}/jobs/{{job_id}}",
        api_jobs.get_job,
        "One job, with its graph, outputs and error.",
        "jobs",
        {200: JobDetail},
        errors=(404,),
    ),
    Route(
        "DELETE",
        f"{API}/jobs/{{job_id}}",
        api_jobs.delete_job,
        "Forget a finished job and delete its output files; 409 while it is pending or running.",
        "jobs",
        {200: JobDeleted},
        errors=(404, 409),
    ),
    Route(
        "GET",
        f"{API}/jobs/{{job_id}}/events",
        api_jobs.job_events,
        "A job's event log after a sequence number (the websocket's job messages).",
        "jobs",
        {200: EventPage},
        query=EventQuery,
        errors=(400, 404),
    ),
    Route(
        "POST",
        f"{API}/jobs/{{job_id}}/cancel",
        api_jobs.cancel_job,
        "Cancel a pending job (200) or interrupt the running one at its next step (202).",
        "jobs",
        {200: CancelResult, 202: CancelResult},
        errors=(404, 409),
    ),
    Route(
        "POST",
        f"{API}/jobs/{{job_id}}/front",
        api_jobs.move_to_front,
        "Run a pending job next.",
        "jobs",
        {200: JobSummary},
        errors=(404, 409),
    ),
    Route(
        "POST",
        f"{API}/graphs/convert",
        api_convert.convert_graph,
        "Convert a ComfyUI workflow (API format, editor format, or a PNG's chunks) into a graph.",
        "catalog",
        {200: ConvertedGraphBody},
        body=ConvertGraph,
        errors=(400, 413),
    ),
    Route(
        "GET",
        f"{API}/queue",
        api_jobs.get_queue,
        "The running job and the pending jobs in run order.",
        "queue",
        {200: QueueView},
    ),
    Route(
        "DELETE",
        f"{API}/queue",
        api_jobs.clear_queue,
        "Cancel every pending job; the running job continues.",
        "queue",
        {200: QueueCleared},
    ),
    Route(
        "GET",
        f"{API}/nodes",
        api_system.node_catalog,
        "The node catalog: port types and every node's inputs, outputs and current choices.",
        "catalog",
        {200: api_editor.NodeCatalog},
    ),
    Route(
        "GET",
        f"{API}/schema/graph",
        api_system.graph_schema,
        "The JSON Schema of graph documents.",
        "catalog",
        {200: Body("application/json", "A JSON Schema (draft 2020-12).")},
    ),
    Route(
        "POST",
        f"{API}/uploads",
        api_files.upload_image,
        "Upload an image to the input folder; identical content is stored once.",
        "files",
        {201: UploadedImage, 200: UploadedImage},
        multipart=True,
        errors=(400, 403, 413, 415),
    ),
    Route(
        "GET",
        f"{API}/view",
        api_files.view_file,
        "A file from the output or input folder; names that could leave the folder are refused.",
        "files",
        {
            200: Body(
                "*/*", "The file; images with their type, anything else as a download.", _BINARY
            )
        },
        query=ViewQuery,
        errors=(400, 403, 404),
    ),
    Route(
        "GET",
        f"{API}/system",
        api_system.system_stats,
        "Versions, memory, compute devices, cache usage and queue counts.",
        "system",
        {200: SystemStats},
    ),
    Route(
        "POST",
        f"{API}/free",
        api_system.free_memory,
        "Move cached models to the CPU and/or drop cached outputs (the running job's are kept).",
        "system",
        {200: FreedMemory},
        body=FreeMemory,
        errors=(400,),
    ),
    Route(
        "GET",
        f"{API}/openapi.json",
        openapi_json,
        "This OpenAPI description.",
        "docs",
        {200: Body("application/json", "OpenAPI 3.1.")},
    ),
    Route(
        "GET",
        f"{API}/docs/websocket",
        api_system.websocket_doc,
        "The websocket protocol, in Markdown.",
        "docs",
        {200: Body("text/markdown", "docs/api/websocket.md", {"type": "string"})},
        errors=(404,),
    ),
    Route(
        "GET",
        "/ws",
        websocket_handler,
        "Websocket upgrade; messages are described at /api/v1/docs/websocket.",
        "websocket",
        {101: Body("application/json", "Switching protocols.", {})},
        query=WebsocketQuery,
        errors=(400,),
    ),
    # The browser editor (server/api_editor.py).
    Route(
        "GET",
        f"{API}/graphs",
        api_editor.list_graphs,
        "The example graphs shipped with Latentgraph.",
        "graphs",
        {200: api_editor.ExampleGraphList},
    ),
    Route(
        "GET",
        f"{API}/graphs/{{name}}",
        api_editor.get_graph,
        "One example graph document.",
        "graphs",
        {
            200: Body(
                "application/json", "A graph document.", {"$ref": "#/components/schemas/GraphFile"}
            )
        },
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/",
        api_editor.editor_page,
        "The browser graph editor.",
        "editor",
        {200: Body("text/html", "The editor's page.", {"type": "string"})},
        errors=(404,),
    ),
    Route(
        "GET",
        "/assets/{name}",
        api_editor.editor_asset,
        "A file of the editor's bundle.",
        "editor",
        {200: Body("*/*", "A script, stylesheet or image of the editor.", _BINARY)},
        errors=(404,),
    ),
)
