"""ComfyUI's history routes: GET /history, GET /history/{prompt_id}, POST /history.

Entries are built from our job store; clearing or deleting only hides them from ComfyUI's view.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from server.comfy.requests import empty_response, id_list, read_body
from server.comfy.state import ComfyState, NodeIds, comfy_state, node_ids_for
from server.errors import ApiError
from server.services import services

TERMINAL = ["finished", "failed", "interrupted"]
HISTORY_CAP = 1000


def _ms(seconds: float | None) -> int:
    return int((seconds or time.time()) * 1000)


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
    body = await read_body(request, 1024 * 1024, optional=True)
    if body.get("clear") is True:
        state.cleared_before = time.time()
    state.hidden.update(id_list(body.get("delete")))
    return empty_response()
