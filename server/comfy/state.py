"""What the ComfyUI facade remembers beyond our job store: prompt numbers, extra_data, node ids."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from server.services import services

# Prompts (and id maps) kept in memory, oldest dropped first; older ones show our graph instead.
MAX_RECORDS = 1000
NodeIds = dict[str, tuple[str, str]]  # our node id -> (ComfyUI id, ComfyUI class_type)


def comfy_node_ids(graph: dict[str, Any] | None) -> NodeIds:
    """ComfyUI ids and classes of a converted graph, from its editor layer (ours where absent)."""
    nodes = (graph or {}).get("nodes", {})
    layout = ((graph or {}).get("editor") or {}).get("nodes", {})
    ids: NodeIds = {}
    for node_id, entry in nodes.items():
        info = layout.get(node_id) or {}
        ids[node_id] = (
            str(info.get("comfy_id", node_id)),
            str(info.get("comfy_type", entry.get("type", ""))),
        )
    return ids


@dataclass
class PromptRecord:
    """A prompt as ComfyUI clients sent it, kept for /queue and /history."""

    number: float
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]


@dataclass
class ComfyState:
    """Per-server facade state; the jobs themselves live in our store."""

    records: dict[str, PromptRecord] = field(default_factory=dict)
    ids: dict[str, NodeIds] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # history entries "deleted" through the facade
    cleared_before: float = 0.0  # POST /history {"clear": true} hides what finished before this
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def remember(state: ComfyState, job_id: str, record: PromptRecord, ids: NodeIds) -> None:
    """Keep a prompt as sent and its node ids, forgetting the oldest past MAX_RECORDS."""
    state.records[job_id] = record
    state.ids[job_id] = ids
    for kept in (state.records, state.ids):
        while len(kept) > MAX_RECORDS:
            del kept[next(iter(kept))]


COMFY_STATE = web.AppKey("comfy_state", ComfyState)


def comfy_state(request: web.Request) -> ComfyState:
    """The facade state of the app that received `request`."""
    return request.app[COMFY_STATE]


def node_ids_for(request: web.Request, job_id: str, graph: dict[str, Any] | None = None) -> NodeIds:
    """Our -> ComfyUI node ids of a job: from the facade's memory, else from its graph."""
    state = comfy_state(request)
    known = state.ids.get(job_id)
    if known is not None:
        return known
    if graph is None:
        active = services(request).jobs.active(job_id)
        graph = active.graph if active is not None else None
    return comfy_node_ids(graph)
