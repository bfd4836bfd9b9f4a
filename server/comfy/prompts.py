"""ComfyUI's prompt and queue routes: POST/GET /prompt, GET/POST /queue, POST /interrupt.

A ComfyUI prompt id is our job id; validation errors are answered in ComfyUI's error shape.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from aiohttp import web

from engine.errors import ErrorCode, GraphError, GraphValidationError
from server.comfy.requests import comfy_format, empty_response, id_list, read_body
from server.comfy.state import ComfyState, PromptRecord, comfy_node_ids, comfy_state, remember
from server.job_errors import JobNotFound, JobStateConflict
from server.schemas import CLIENT_ID_PATTERN
from server.services import services

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


async def post_prompt(request: web.Request) -> web.Response:
    """POST /prompt: convert and queue an API-format prompt; 400 in ComfyUI's error shape."""
    svc, state = services(request), comfy_state(request)
    body = await read_body(request, svc.settings.max_json_bytes)
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
        converted = comfy_format(request).convert(prompt, svc.executor.registry)
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
    body = await read_body(request, 1024 * 1024, optional=True)
    if body.get("clear") is True:
        await jobs.clear()
    for job_id in id_list(body.get("delete")):
        job = jobs.active(job_id)
        if job is not None and job.status == "pending":
            with contextlib.suppress(JobNotFound, JobStateConflict):
                await jobs.cancel(job.job_id)
    return empty_response()


async def post_interrupt(request: web.Request) -> web.Response:
    """POST /interrupt: stop the running prompt (only if it is `prompt_id`, when one is given)."""
    jobs = services(request).jobs
    body = await read_body(request, 64 * 1024, optional=True)
    running, _ = jobs.queue()
    wanted = body.get("prompt_id")
    if running is not None and (wanted is None or wanted == running.job_id):
        with contextlib.suppress(JobNotFound, JobStateConflict):  # it finished meanwhile
            await jobs.cancel(running.job_id)
    return empty_response()
