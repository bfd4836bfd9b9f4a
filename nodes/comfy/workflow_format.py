"""ComfyUI's editor ("workflow") format, versions 0.4 and 1, converted the way its frontend queues it.

The editor stores widget values by position (`widgets_values`), links as separate records, and
editor-only nodes: reroutes, primitive nodes (a value shared by several widgets) and notes.
Muted nodes (mode 2) are left out, bypassed nodes (mode 4) pass each consumer the input of the
same type, and what remains becomes an API-format prompt, converted by `api_format`; positions,
titles and groups go to our `editor` layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.formats import ConvertedGraph
from engine.registry import Registry
from nodes.comfy.api_format import convert_api_prompt
from nodes.comfy.mapping import (
    CLASSES,
    CONTROL,
    NOTES,
    PRIMITIVE,
    REROUTE,
    UPLOAD,
    is_control_value,
)
from nodes.comfy.subgraphs import flatten_subgraphs

MODE_MUTED, MODE_BYPASS = 2, 4
_MAX_HOPS = 256


@dataclass(frozen=True)
class _Link:
    origin: str
    slot: int
    type: str


def is_workflow(document: Any) -> bool:
    """Whether a document looks like an editor workflow: a `nodes` list and a `links` list."""
    return (
        isinstance(document, dict)
        and isinstance(document.get("nodes"), list)
        and isinstance(document.get("links", []), list)
    )


def workflow_to_prompt(
    workflow: dict[str, Any], registry: Registry | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API-format prompt the workflow queues, and layout by node id; raises GraphValidationError."""
    workflow = flatten_subgraphs(workflow)
    nodes = {str(n.get("id")): n for n in workflow["nodes"] if isinstance(n, dict)}
    links = _links(workflow.get("links", []))
    errors: list[GraphError] = []
    prompt: dict[str, Any] = {}
    layout: dict[str, Any] = {}
    for node_id, node in nodes.items():
        kind = node.get("type")
        mode = node.get("mode", 0)
        if kind in (REROUTE, PRIMITIVE) or kind in NOTES or mode in (MODE_MUTED, MODE_BYPASS):
            continue
        inputs, node_errors = _node_inputs(node_id, node, nodes, links)
        errors.extend(node_errors)
        entry: dict[str, Any] = {"class_type": kind, "inputs": inputs}
        if isinstance(node.get("title"), str):
            entry["_meta"] = {"title": node["title"]}
        prompt[node_id] = entry
        layout[node_id] = node_layout(node)
    # Inputs pointing at nodes that were not emitted (muted ones) are dropped, as the frontend does.
    for entry in prompt.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in prompt:
                del entry["inputs"][name]
    if errors:
        # Report the rest of the workflow's problems too; widget errors explain missing inputs.
        try:
            convert_api_prompt(prompt, layout, registry)
        except GraphValidationError as exc:
            reported = {(e.node_id, e.input) for e in errors}
            errors.extend(e for e in exc.errors if (e.node_id, e.input) not in reported)
        raise GraphValidationError(errors)
    return prompt, layout


def convert_workflow(workflow: dict[str, Any], registry: Registry | None = None) -> ConvertedGraph:
    """Our graph file for an editor workflow, keeping positions, titles and groups."""
    prompt, layout = workflow_to_prompt(workflow, registry)
    converted = convert_api_prompt(prompt, layout, registry)
    groups = [
        {"title": str(g.get("title", "")), "bounding": list(g["bounding"])[:4]}
        for g in workflow.get("groups", [])
        if isinstance(g, dict) and isinstance(g.get("bounding"), list) and len(g["bounding"]) >= 4
    ]
    if groups:
        converted.document["editor"]["groups"] = groups
    return ConvertedGraph(converted.document, "comfyui-workflow", converted.blame)


def _links(raw: list[Any]) -> dict[int, _Link]:
    links = {}
    for item in raw:
        if isinstance(item, list) and len(item) >= 6:  # 0.4: [id, origin, slot, target, slot, type]
            links[item[0]] = _Link(str(item[1]), int(item[2]), str(item[5]))
        elif isinstance(item, dict) and "id" in item:  # 1 and flattened subgraphs: objects
            links[item["id"]] = _Link(
                str(item.get("origin_id")), int(item.get("origin_slot", 0)), str(item.get("type"))
            )
    return links


def _node_inputs(
    node_id: str, node: dict[str, Any], nodes: dict[str, Any], links: dict[int, _Link]
) -> tuple[dict[str, Any], list[GraphError]]:
    kind = node.get("type")
    mapping = CLASSES.get(kind) if isinstance(kind, str) else None
    errors: list[GraphError] = []
    inputs: dict[str, Any] = {}
    connected: dict[str, int] = {}
    for socket in node.get("inputs") or []:
        if isinstance(socket, dict) and socket.get("link") is not None:
            connected[str(socket.get("name"))] = socket["link"]
    for name, link_id in connected.items():
        resolved = _resolve(link_id, nodes, links)
        if resolved is not None:
            inputs[name] = resolved
    if mapping is None:
        return inputs, errors  # the API conversion reports the unknown class
    values = node.get("widgets_values")
    if isinstance(values, dict):
        for name in mapping.widgets:
            if name in values and name not in inputs:
                inputs[name] = values[name]
        return inputs, errors
    values = list(values or [])
    position = 0
    for name in mapping.widgets:
        if name == CONTROL:
            if position < len(values) and is_control_value(values[position]):
                position += 1
            continue
        if name == UPLOAD:
            position += 1
            continue
        if position >= len(values):
            if name not in mapping.optional and name not in inputs:
                errors.append(
                    GraphError(
                        code=ErrorCode.MISSING_INPUT,
                        message=(
                            f"widget value {name} is missing: widgets_values has "
                            f"{len(values)} value(s)"
                        ),
                        node_id=node_id,
                        input=name,
                    )
                )
            continue
        if name not in inputs:  # a widget turned into a linked input keeps a stale value here
            inputs[name] = values[position]
        position += 1
    return inputs, errors


def _resolve(link_id: Any, nodes: dict[str, Any], links: dict[int, _Link]) -> Any:
    """The API-format value of a linked input: `[origin, slot]` or a primitive's value."""
    for _ in range(_MAX_HOPS):
        link = links.get(link_id)
        if link is None:
            return None
        origin = nodes.get(link.origin)
        if origin is None:
            return [link.origin, link.slot]
        kind, mode = origin.get("type"), origin.get("mode", 0)
        if kind == PRIMITIVE:
            values = origin.get("widgets_values")
            if not isinstance(values, list) or not values:
                return None
            # A list value is wrapped as the API format requires, so it is not read as a link.
            return {"__value__": values[0]} if isinstance(values[0], list) else values[0]
        if kind == REROUTE:
            link_id = _input_link(origin, 0)
        elif mode == MODE_BYPASS:
            link_id = _bypass_input(origin, link.slot, link.type)
        else:
            return [link.origin, link.slot]
        if link_id is None:
            return None
    return None


def _input_link(node: dict[str, Any], slot: int) -> Any:
    sockets = node.get("inputs") or []
    if not isinstance(sockets, list) or slot >= len(sockets) or not isinstance(sockets[slot], dict):
        return None
    return sockets[slot].get("link")


def _bypass_input(node: dict[str, Any], slot: int, kind: str) -> Any:
    """The link a bypassed node passes on: its input at the same slot if the type matches, else
    its first linked input of that type (as ComfyUI's frontend does)."""
    sockets = [s for s in node.get("inputs") or [] if isinstance(s, dict)]
    if slot < len(sockets) and sockets[slot].get("type") == kind and sockets[slot].get("link"):
        return sockets[slot]["link"]
    for socket in sockets:
        if socket.get("type") == kind and socket.get("link") is not None:
            return socket["link"]
    return None


def node_layout(node: dict[str, Any]) -> dict[str, Any]:
    """Where the editor drew a node: position, size, title, collapsed."""
    info: dict[str, Any] = {}
    pos = node.get("pos")
    if isinstance(pos, dict):
        pos = [pos.get("0"), pos.get("1")]
    if (
        isinstance(pos, list)
        and len(pos) >= 2
        and all(isinstance(p, (int, float)) for p in pos[:2])
    ):
        info["position"] = [float(pos[0]), float(pos[1])]
    if isinstance(node.get("title"), str):
        info["title"] = node["title"]
    flags = node.get("flags")
    if isinstance(flags, dict) and flags.get("collapsed"):
        info["collapsed"] = True
    size = node.get("size")
    if isinstance(size, list) and len(size) >= 2:
        info["size"] = list(size[:2])
    return info
