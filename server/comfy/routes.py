"""ComfyUI's HTTP routes and websocket, each at `/path` and `/api/path`, on our queue and store.

Jobs submitted here are ordinary jobs: they share the cache, the history and the event logs
with /api/v1, and the same security middleware guards them. A ComfyUI prompt id is our job id.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import platform
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from yarl import URL

from engine.errors import ErrorCode, GraphError, GraphValidationError
from server import api_files
from server.comfy.codec import ComfyCodec
from server.comfy.state import (
    COMFY_STATE,
    ComfyState,
    NodeIds,
    PromptRecord,
    comfy_node_ids,
    comfy_state,
    node_ids_for,
    remember,
)
from server.errors import ApiError
from server.jobs import JobNotFound, JobStateConflict
from server.payloads import read_json
from server.schemas import CLIENT_ID_PATTERN
from server.services import services
from server.stats import collect_stats, release_accelerator_memory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TERMINAL = ["finished", "failed", "interrupted"]
HISTORY_CAP = 1000
COMFYUI_VERSION = "0.3.64"
# ComfyUI's error types for our codes, where one exists.
_ERROR_TYPES = {
    ErrorCode.MISSING_INPUT: "required_input_missing",
    ErrorCode.VALUE_NOT_IN_CHOICES: "value_not_in_list",
    ErrorCode.INVALID_TYPE: "invalid_input_type",
    ErrorCode.TYPE_MISMATCH: "return_type_mismatch",
    ErrorCode.INVALID_LINK: "bad_linked_input",
    ErrorCode.CYCLE: "dependency_cycle",
    ErrorCode.NO_OUTPUT_NODE: "prompt_no_outputs",
    ErrorCode.UNKNOWN_NODE_TYPE: "missing_node_type",
}


def _comfy_format(request: web.Request) -> Any:
    """The ComfyUI document format the node packages registered (nodes/comfy/document.py)."""
    for fmt in services(request).executor.registry.formats:
        if fmt.name == "comfyui":
            return fmt
    raise ApiError(404, "not_found", "no node package provides the ComfyUI format")


def _ms(seconds: float | None) -> int:
    return int((seconds or time.time()) * 1000)


def _empty() -> web.Response:
    return web.Response(status=200)


# --- Prompts and the queue. ---


async def _read_body(request: web.Request, limit: int, *, optional: bool = False) -> Any:
    """A JSON body whatever its Content-Type: ComfyUI's own example clients post JSON through
    urllib, which labels it as a form. Origin and Host checks still guard these routes."""
    return await read_json(request, limit, optional=optional, any_media_type=True)


async def post_prompt(request: web.Request) -> web.Response:
    """POST /prompt: convert and queue an API-format prompt; 400 in ComfyUI's error shape."""
    svc, state = services(request), comfy_state(request)
    body = await _read_body(request, svc.settings.max_json_bytes)
    prompt = body.get("prompt")
    if prompt is None:
        return _error_response("no_prompt", "No prompt provided", "the body has no `prompt`")
    client_id = body.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, str) or not re.fullmatch(CLIENT_ID_PATTERN, client_id)
    ):
        return _error_response("invalid_client_id", "Invalid client_id", CLIENT_ID_PATTERN)
    extra_data = body.get("extra_data") if isinstance(body.get("extra_data"), dict) else {}
    number = body.get("number")
    front = body.get("front") is True or (isinstance(number, (int, float)) and number < 0)
    try:
        # An editor workflow is accepted here too (ComfyUI itself takes only the API format).
        converted = _comfy_format(request).convert(prompt, svc.executor.registry)
        document = converted.document
        targets = body.get("partial_execution_targets")
        if isinstance(targets, list):
            ours = {comfy: our for our, (comfy, _) in comfy_node_ids(document).items()}
            document["outputs"] = [ours.get(str(t), f"n{t}") for t in targets]
            if not targets:
                return _error_response(
                    "prompt_no_outputs", "Prompt has no outputs", "partial_execution_targets is []"
                )
        try:
            created = await svc.jobs.submit(document, client_id, front)
        except GraphValidationError as exc:
            raise converted.blamed(exc) from None
    except GraphValidationError as exc:
        return web.json_response(_error_body(exc.errors, prompt), status=400)
    if not isinstance(number, (int, float)) or isinstance(number, bool):
        number = next(state.counter)
    ids = comfy_node_ids(converted.document)
    outputs = [comfy for comfy, kind in ids.values() if kind in ("SaveImage", "PreviewImage")]
    remember(state, created.job_id, PromptRecord(number, prompt, extra_data, outputs), ids)
    return web.json_response({"prompt_id": created.job_id, "number": number, "node_errors": {}})


def _error_response(kind: str, message: str, details: str) -> web.Response:
    error = {"type": kind, "message": message, "details": details, "extra_info": {}}
    return web.json_response({"error": error, "node_errors": {}}, status=400)


def _error_body(errors: list[GraphError], prompt: Any) -> dict[str, Any]:
    """ComfyUI's `{error, node_errors}` for our validation errors (which name ComfyUI ids)."""
    nodes = prompt if isinstance(prompt, dict) else {}
    node_errors: dict[str, Any] = {}
    loose = []
    for error in errors:
        item = {
            "type": _ERROR_TYPES.get(error.code, error.code.value),
            "message": error.message,
            "details": f"{error.input}: {error.message}" if error.input else error.message,
            "extra_info": {"input_name": error.input, "received_value": error.value},
        }
        if error.node_id is not None and isinstance(nodes.get(error.node_id), dict):
            entry = node_errors.setdefault(
                error.node_id,
                {
                    "errors": [],
                    "dependent_outputs": [],
                    "class_type": nodes[error.node_id].get("class_type"),
                },
            )
            entry["errors"].append(item)
        else:
            loose.append(item)
    top = (
        loose[0]
        if loose
        else {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "\n".join(f"{e.node_id}: {e.message}" for e in errors),
            "extra_info": {},
        }
    )
    return {"error": top, "node_errors": node_errors}


async def get_prompt(request: web.Request) -> web.Response:
    """GET /prompt: how many prompts are queued or running."""
    status = services(request).jobs.queue_status().data
    return web.json_response({"exec_info": {"queue_remaining": status.pending + status.running}})


def _queue_item(state: ComfyState, job: Any) -> list[Any]:
    record = state.records.get(job.job_id)
    if record is None:
        return [job.position, job.job_id, job.graph, {}, []]
    return [record.number, job.job_id, record.prompt, record.extra_data, record.outputs]


async def get_queue(request: web.Request) -> web.Response:
    """GET /queue: `{queue_running, queue_pending}` as ComfyUI's 5-item lists."""
    state = comfy_state(request)
    running, pending = services(request).jobs.queue()
    return web.json_response(
        {
            "queue_running": [] if running is None else [_queue_item(state, running)],
            "queue_pending": [_queue_item(state, job) for job in pending],
        }
    )


async def post_queue(request: web.Request) -> web.Response:
    """POST /queue: `{"clear": true}` cancels every pending prompt; `{"delete": [ids]}` some."""
    jobs = services(request).jobs
    body = await _read_body(request, 1024 * 1024, optional=True)
    if body.get("clear") is True:
        await jobs.clear()
    for job_id in _id_list(body.get("delete")):
        job = jobs.active(job_id)
        if job is not None and job.status == "pending":
            with contextlib.suppress(JobNotFound, JobStateConflict):
                await jobs.cancel(job.job_id)
    return _empty()


def _id_list(value: Any) -> list[str]:
    """A `delete` list of prompt ids; anything else deletes nothing."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, "bad_request", "delete must be a list of prompt ids")
    return [v for v in value if isinstance(v, str)]


async def post_interrupt(request: web.Request) -> web.Response:
    """POST /interrupt: stop the running prompt (only if it is `prompt_id`, when one is given)."""
    jobs = services(request).jobs
    body = await _read_body(request, 64 * 1024, optional=True)
    running, _ = jobs.queue()
    wanted = body.get("prompt_id")
    if running is not None and (wanted is None or wanted == running.job_id):
        with contextlib.suppress(JobNotFound, JobStateConflict):  # it finished meanwhile
            await jobs.cancel(running.job_id)
    return _empty()


# --- History. ---


def _history_entry(request: web.Request, row: Any) -> dict[str, Any]:
    state = comfy_state(request)
    ids: NodeIds = node_ids_for(request, row.job_id, row.graph)

    def comfy(node_id: str) -> str:
        return ids.get(node_id, (node_id, ""))[0]

    outputs = {comfy(n): ui for n, ui in row.outputs.items() if ui}
    base = {"prompt_id": row.job_id}
    messages: list[list[Any]] = [
        ["execution_start", {**base, "timestamp": _ms(row.started_at)}],
        [
            "execution_cached",
            {**base, "nodes": [comfy(n) for n in row.cached], "timestamp": _ms(row.started_at)},
        ],
    ]
    end = _ms(row.finished_at)
    if row.status == "finished":
        messages.append(["execution_success", {**base, "timestamp": end}])
    elif row.status == "failed":
        error = row.error or {}
        node_id = error.get("node_id")
        messages.append(
            [
                "execution_error",
                {
                    **base,
                    "node_id": comfy(node_id) if node_id else None,
                    "node_type": ids.get(node_id, ("", error.get("node_type")))[1]
                    if node_id
                    else None,
                    "executed": [comfy(n) for n in row.executed],
                    "exception_message": error.get("message", ""),
                    "exception_type": error.get("exception_type") or error.get("code", ""),
                    "traceback": error.get("traceback", []),
                    "current_inputs": {},
                    "current_outputs": [],
                    "timestamp": end,
                },
            ]
        )
    else:
        node_id = (row.interrupted or {}).get("node_id")
        messages.append(
            [
                "execution_interrupted",
                {
                    **base,
                    "node_id": comfy(node_id) if node_id else None,
                    "node_type": ids.get(node_id, ("", None))[1] if node_id else None,
                    "executed": [comfy(n) for n in row.executed],
                    "timestamp": end,
                },
            ]
        )
    record = state.records.get(row.job_id)
    prompt = (
        [record.number, row.job_id, record.prompt, record.extra_data, record.outputs]
        if record is not None
        else [row.number, row.job_id, row.graph, {}, []]
    )
    meta = {
        n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
        for n in outputs
    }
    return {
        "prompt": prompt,
        "outputs": outputs,
        "status": {
            "status_str": "success" if row.status == "finished" else "error",
            "completed": row.status == "finished",
            "messages": messages,
        },
        "meta": meta,
    }


def _visible(state: ComfyState, row: Any) -> bool:
    return row.job_id not in state.hidden and (row.finished_at or 0) > state.cleared_before


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be a whole number") from None
    if value < 0:
        raise ApiError(400, "bad_request", f"{name} must not be negative")
    return value


async def get_history(request: web.Request) -> web.Response:
    """GET /history?max_items=&offset=: finished prompts, oldest first (the last N by default)."""
    svc, state = services(request), comfy_state(request)
    max_items, offset = _int_query(request, "max_items"), _int_query(request, "offset")
    _, total = await svc.jobs.page(TERMINAL, None, 1, 0)
    count = min(HISTORY_CAP, total if max_items is None else max_items)
    start = max(0, total - count) if offset is None else offset  # index, oldest first
    count = max(0, min(count, total - start))
    rows, _ = await svc.jobs.page(TERMINAL, None, count, max(0, total - start - count))
    entries = {r.job_id: _history_entry(request, r) for r in reversed(rows) if _visible(state, r)}
    return web.json_response(entries)


async def get_history_item(request: web.Request) -> web.Response:
    """GET /history/{prompt_id}: `{prompt_id: entry}`, or `{}` while it is not finished."""
    state = comfy_state(request)
    job_id = request.match_info["prompt_id"]
    row = await services(request).jobs.get(job_id)
    if row is None or row.status not in TERMINAL or not _visible(state, row):
        return web.json_response({})
    return web.json_response({job_id: _history_entry(request, row)})


async def post_history(request: web.Request) -> web.Response:
    """POST /history: clear or delete entries from ComfyUI's view (our job store keeps them)."""
    state = comfy_state(request)
    body = await _read_body(request, 1024 * 1024, optional=True)
    if body.get("clear") is True:
        state.cleared_before = time.time()
    state.hidden.update(_id_list(body.get("delete")))
    return _empty()


# --- Files. ---


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


# --- Catalog and system. ---


async def get_object_info(request: web.Request) -> web.Response:
    """GET /object_info: ComfyUI node definitions of the mapped classes."""
    svc = services(request)
    fmt = _comfy_format(request)
    info = await asyncio.to_thread(fmt.object_info, svc.executor.registry, svc.paths)
    return web.json_response(info)


async def get_object_info_class(request: web.Request) -> web.Response:
    """GET /object_info/{class}: one definition, or `{}` for a class we do not map."""
    svc = services(request)
    fmt = _comfy_format(request)
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
    folders = await asyncio.to_thread(_comfy_format(request).model_folders, services(request).paths)
    return web.json_response(list(folders))


async def get_model_folder(request: web.Request) -> web.Response:
    """GET /models/{folder}: the files in one model folder; 404 for an unknown folder."""
    folder = request.match_info["folder"]
    folders = await asyncio.to_thread(_comfy_format(request).model_folders, services(request).paths)
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
    body = await _read_body(request, 4096, optional=True)
    cache = svc.executor.cache

    def release() -> None:
        if body.get("unload_models") is True:
            cache.offload_models()
        if body.get("free_memory") is True:
            cache.clear()
        gc.collect()
        release_accelerator_memory()

    await asyncio.to_thread(release)
    return _empty()


# --- Websocket. ---


async def comfy_websocket(request: web.Request) -> web.StreamResponse:
    """GET /ws?clientId= (and /api/ws): ComfyUI's websocket dialect on our event hub."""
    from server.ws import serve_websocket

    client_id = request.query.get("clientId") or uuid.uuid4().hex
    if not re.fullmatch(CLIENT_ID_PATTERN, client_id):
        raise ApiError(400, "bad_request", f"clientId must match {CLIENT_ID_PATTERN}")
    codec = ComfyCodec(client_id, lambda job_id: node_ids_for(request, job_id))
    return await serve_websocket(request, codec, client_id, [])


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/prompt", post_prompt),
    ("GET", "/prompt", get_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("POST", "/interrupt", post_interrupt),
    ("GET", "/history", get_history),
    ("POST", "/history", post_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("GET", "/view", view),
    ("POST", "/upload/image", upload_image),
    ("POST", "/upload/mask", upload_mask),
    ("GET", "/object_info", get_object_info),
    ("GET", "/object_info/{node_class}", get_object_info_class),
    ("GET", "/system_stats", system_stats),
    ("GET", "/models", get_models),
    ("GET", "/models/{folder}", get_model_folder),
    ("GET", "/embeddings", empty_list),
    ("GET", "/extensions", empty_list),
    ("GET", "/features", features),
    ("POST", "/free", post_free),
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
